"""Hand-built inline SVG charts (no plotting library, no external resources).

Every text that comes from data (class names, strategy names, paths) is escaped here, so a chart can be
pasted into HTML as it is. Each function returns an ``<svg>`` string.
"""
from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FONT = "font-family='system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif'"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _e(text) -> str:
    return escape(str(text), quote=True)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out, v = [], start
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def _tick_labels(ticks: list[float]) -> list[str]:
    """Labels with as many decimals as the tick step needs (0.972, 0.974... not 0.97, 0.97)."""
    if len(ticks) < 2:
        return [_fmt(v) for v in ticks]
    step = abs(ticks[1] - ticks[0])
    if max(abs(t) for t in ticks) >= 1e4:
        return [_fmt(v) for v in ticks]
    dec = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    if any(abs(round(t, dec) - t) > step * 1e-6 for t in ticks):
        dec += 1
    return [f"{t:.{dec}f}" for t in ticks]


class _Axes:
    def __init__(self, width, height, xlim, ylim, *, logx=False, left=56, right=16, top=30, bottom=44):
        self.w, self.h, self.logx = width, height, logx
        self.l, self.r, self.t, self.b = left, right, top, bottom
        tx = (lambda v: math.log10(max(v, 1e-12))) if logx else (lambda v: v)
        self.tx = tx
        x0, x1 = tx(xlim[0]), tx(xlim[1])
        if x1 <= x0:
            x0, x1 = x0 - 0.5, x1 + 0.5
        y0, y1 = ylim
        if y1 <= y0:
            y0, y1 = y0 - 0.5, y1 + 0.5
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1

    def X(self, v):
        return self.l + (self.tx(v) - self.x0) / (self.x1 - self.x0) * (self.w - self.l - self.r)

    def Y(self, v):
        return self.h - self.b - (v - self.y0) / (self.y1 - self.y0) * (self.h - self.t - self.b)

    def frame(self, title, xlabel, ylabel) -> list[str]:
        s = [f"<rect x='{self.l}' y='{self.t}' width='{self.w - self.l - self.r}' height='{self.h - self.t - self.b}' "
             f"fill='#fff' stroke='#bbb'/>"]
        yt = _ticks(self.y0, self.y1)
        for v, txt in zip(yt, _tick_labels(yt)):
            y = self.Y(v)
            s.append(f"<line x1='{self.l}' x2='{self.w - self.r}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>"
                     f"<text x='{self.l - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11' fill='#444'>{txt}</text>")
        if self.logx:
            xt = [10 ** k for k in range(math.floor(self.x0), math.ceil(self.x1) + 1) if self.x0 - 1e-9 <= k <= self.x1 + 1e-9]
        else:
            xt = _ticks(self.x0, self.x1)
        for v, txt in zip(xt, [_fmt(v) for v in xt] if self.logx else _tick_labels(xt)):
            x = self.X(v)
            s.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{self.t}' y2='{self.h - self.b}' stroke='#f2f2f2'/>"
                     f"<text x='{x:.1f}' y='{self.h - self.b + 15}' text-anchor='middle' font-size='11' fill='#444'>{txt}</text>")
        s.append(f"<text x='{self.w / 2:.0f}' y='18' text-anchor='middle' font-size='13' font-weight='600'>{_e(title)}</text>")
        s.append(f"<text x='{(self.l + self.w - self.r) / 2:.0f}' y='{self.h - 8}' text-anchor='middle' font-size='12' fill='#333'>{_e(xlabel)}</text>")
        s.append(f"<text transform='translate(14,{(self.t + self.h - self.b) / 2:.0f}) rotate(-90)' text-anchor='middle' "
                 f"font-size='12' fill='#333'>{_e(ylabel)}</text>")
        return s


def _svg(width, height, body: list[str], label: str) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' viewBox='0 0 {width} {height}' "
            f"role='img' aria-label='{_e(label)}' {FONT}>" + "".join(body) + "</svg>")


def _legend(names, x, y, *, markers="line") -> list[str]:
    s = []
    for i, n in enumerate(names):
        yy = y + 16 * i
        mark = (f"<line x1='{x}' x2='{x + 16}' y1='{yy}' y2='{yy}' stroke='{color(i)}' stroke-width='2.5'/>" if markers == "line"
                else f"<circle cx='{x + 8}' cy='{yy}' r='4.5' fill='{color(i)}'/>")
        s.append(mark + f"<text x='{x + 22}' y='{yy + 4}' font-size='11'>{_e(n)}</text>")
    return s


def line_chart(series: dict, *, title: str, xlabel: str, ylabel: str, width: int = 460, height: int = 280,
               ylim=None, errors: dict | None = None) -> str:
    """``series``: name -> (xs, ys); optional ``errors``: name -> half-widths (drawn as bars)."""
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return ""
    xs_all, ys_all = [p[0] for p in pts], [p[1] for p in pts]
    lo, hi = ylim or (min(ys_all), max(ys_all))
    if errors:
        for name, errs in errors.items():
            for y, e in zip(series[name][1], errs):
                if y is not None and e is not None and math.isfinite(e):
                    lo, hi = min(lo, y - e), max(hi, y + e)
    pad = (hi - lo) * 0.05 or 0.05
    legend_w = 130
    xpad = (max(xs_all) - min(xs_all)) * 0.03
    ax = _Axes(width, height, (min(xs_all) - xpad, max(xs_all) + xpad), (lo - pad, hi + pad), right=16 + legend_w)
    s = ax.frame(title, xlabel, ylabel)
    for i, (name, (xs, ys)) in enumerate(series.items()):
        p = [(ax.X(x), ax.Y(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
        if len(p) > 1:
            s.append(f"<polyline fill='none' stroke='{color(i)}' stroke-width='2' points='"
                     + " ".join(f"{a:.1f},{b:.1f}" for a, b in p) + "'/>")
        for (a, b), (x, y) in zip(p, [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]):
            s.append(f"<circle cx='{a:.1f}' cy='{b:.1f}' r='3' fill='{color(i)}'><title>{_e(name)}: {x:g}, {y:.4g}</title></circle>")
        for x, y, e in zip(xs, ys, (errors or {}).get(name, [])):
            if y is not None and e is not None and math.isfinite(e):
                s.append(f"<line x1='{ax.X(x):.1f}' x2='{ax.X(x):.1f}' y1='{ax.Y(y - e):.1f}' y2='{ax.Y(y + e):.1f}' "
                         f"stroke='{color(i)}' stroke-width='1.5'/>")
    if legend_w:
        s += _legend(list(series), width - legend_w + 4, ax.t + 10)
    return _svg(width, height, s, title)


def scatter_chart(points: list[dict], *, title: str, xlabel: str, ylabel: str, logx: bool = False,
                  width: int = 560, height: int = 340, size_label: str = "") -> str:
    """``points``: dicts with x, y, optional size (area-scaled), label, group (colour index key)."""
    pts = [p for p in points if p.get("x") is not None and p.get("y") is not None
           and math.isfinite(p["x"]) and math.isfinite(p["y"]) and (not logx or p["x"] > 0)]
    if not pts:
        return ""
    xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
    if logx:
        xlim = (10 ** math.floor(math.log10(min(xs))), 10 ** math.ceil(math.log10(max(xs)) + 1e-9))
    else:
        pad = (max(xs) - min(xs)) * 0.08 or 0.5
        xlim = (min(xs) - pad, max(xs) + pad)
    ypad = (max(ys) - min(ys)) * 0.12 or 0.05
    ax = _Axes(width, height, xlim, (min(ys) - ypad, max(ys) + ypad), logx=logx)
    s = ax.frame(title, xlabel, ylabel)
    sizes = [p.get("size") or 0 for p in pts]
    smax = max(sizes) or 1
    placed: list[tuple[float, float, float]] = []
    for i, p in enumerate(pts):
        r = 5 + 13 * math.sqrt((p.get("size") or 0) / smax)
        c = color(p.get("group", i))
        x, y = ax.X(p["x"]), ax.Y(p["y"])
        tip = f"{p.get('label', '')}: {ylabel} {p['y']:.4g}, {xlabel} {p['x']:.4g}" + (
            f", {size_label} {p['size']:,}" if p.get("size") else "")
        s.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='{r:.1f}' fill='{c}' fill-opacity='0.55' stroke='{c}'>"
                 f"<title>{_e(tip)}</title></circle>")
        anchor = "end" if x > width * 0.75 else "start"
        dx = -(r + 3) if anchor == "end" else r + 3
        text = str(p.get("label", ""))
        x0 = x + dx - (6.2 * len(text) if anchor == "end" else 0)
        ly = y + 4
        for _ in range(8):  # move a label down until it overlaps no earlier label
            if not any(abs(ly - py) < 13 and x0 < px1 and px0 < x0 + 6.2 * len(text) for px0, px1, py in placed):
                break
            ly += 13
        placed.append((x0, x0 + 6.2 * len(text), ly))
        s.append(f"<text x='{x + dx:.1f}' y='{ly:.1f}' font-size='11' text-anchor='{anchor}'>{_e(text)}</text>")
    if size_label:
        s.append(f"<text x='{width - ax.r - 4}' y='{height - ax.b - 6}' text-anchor='end' font-size='10' fill='#666'>"
                 f"circle area ~ {_e(size_label)}</text>")
    return _svg(width, height, s, title)


def _cell_color(v: float) -> str:
    """White -> blue for v in [0, 1]."""
    v = min(max(v, 0.0), 1.0)
    r, g, b = (int(255 + (t - 255) * v) for t in (31, 119, 180))
    return f"rgb({r},{g},{b})"


def heatmap(matrix, row_labels, col_labels, *, title: str, xlabel: str = "", ylabel: str = "",
            normalize_rows: bool = False, fmt: str = "d", max_cells: int = 40) -> str:
    """A matrix as coloured cells with values; rows/cols beyond ``max_cells`` are cut (noted in the title)."""
    m = [list(r) for r in matrix]
    n_r, n_c = len(m), len(m[0]) if m else 0
    if not n_r or not n_c:
        return ""
    cut = n_r > max_cells or n_c > max_cells
    m = [r[:max_cells] for r in m[:max_cells]]
    row_labels, col_labels = list(row_labels)[:len(m)], list(col_labels)[:len(m[0])]
    n_r, n_c = len(m), len(m[0])
    vals = [[(v if v is not None else float("nan")) for v in r] for r in m]
    if normalize_rows:
        shade = [[v / s if s else 0.0 for v in r] for r in vals for s in [sum(x for x in r if math.isfinite(x))]]
    else:
        finite = [v for r in vals for v in r if math.isfinite(v)]
        hi = max(finite) if finite else 1.0
        shade = [[(v / hi if hi and math.isfinite(v) else 0.0) for v in r] for r in vals]
    cell = max(14, min(38, int(420 / max(n_r, n_c))))
    lab_w = min(140, 40 + 7 * max((len(str(x)) for x in row_labels), default=1))
    top = 40 + min(110, 7 * max((len(str(x)) for x in col_labels), default=1))
    width, height = lab_w + cell * n_c + 30, top + cell * n_r + 30
    s = [f"<text x='{width / 2:.0f}' y='18' text-anchor='middle' font-size='13' font-weight='600'>"
         f"{_e(title + (' (first ' + str(max_cells) + ')' if cut else ''))}</text>"]
    for j, c in enumerate(col_labels):
        x = lab_w + cell * j + cell / 2
        s.append(f"<text transform='translate({x + 4:.1f},{top - 6}) rotate(-60)' font-size='11'>{_e(_short(c))}</text>")
    for i, r in enumerate(row_labels):
        y = top + cell * i
        s.append(f"<text x='{lab_w - 6}' y='{y + cell / 2 + 4:.1f}' text-anchor='end' font-size='11'>{_e(_short(r))}</text>")
        for j in range(n_c):
            v, sh = vals[i][j], shade[i][j]
            txt = "" if not math.isfinite(v) else (f"{int(v)}" if fmt == "d" else format(v, fmt))
            s.append(f"<rect x='{lab_w + cell * j}' y='{y}' width='{cell}' height='{cell}' fill='{_cell_color(sh)}' stroke='#fff'>"
                     f"<title>{_e(r)} / {_e(col_labels[j])}: {_e(txt or 'n/a')}</title></rect>")
            if cell >= 22 and txt:
                fill = "#fff" if sh > 0.55 else "#222"
                s.append(f"<text x='{lab_w + cell * j + cell / 2:.1f}' y='{y + cell / 2 + 4:.1f}' text-anchor='middle' "
                         f"font-size='{10 if len(txt) > 3 else 11}' fill='{fill}'>{_e(txt)}</text>")
    if xlabel:
        s.append(f"<text x='{lab_w + cell * n_c / 2:.0f}' y='{height - 8}' text-anchor='middle' font-size='12'>{_e(xlabel)}</text>")
    if ylabel:
        s.append(f"<text transform='translate(12,{top + cell * n_r / 2:.0f}) rotate(-90)' text-anchor='middle' font-size='12'>{_e(ylabel)}</text>")
    return _svg(width, height, s, title)


def _short(text, n: int = 18) -> str:
    text = str(text)
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def hbar_chart(values: dict, *, title: str, xmax: float | None = 1.0, width: int = 460, fmt: str = ".0%") -> str:
    """Horizontal bars, one per label (``None`` values are shown as 'n/a')."""
    items = list(values.items())
    if not items:
        return ""
    bar, lab_w = 18, min(150, 14 + 7 * max(len(str(k)) for k, _ in items))
    height = 36 + (bar + 4) * len(items) + 10
    finite = [v for _, v in items if v is not None and math.isfinite(v)]
    hi = xmax if xmax is not None else (max(finite) if finite else 1.0) or 1.0
    span = width - lab_w - 60
    s = [f"<text x='{width / 2:.0f}' y='18' text-anchor='middle' font-size='13' font-weight='600'>{_e(title)}</text>"]
    for i, (k, v) in enumerate(items):
        y = 30 + (bar + 4) * i
        s.append(f"<text x='{lab_w - 6}' y='{y + bar - 5}' text-anchor='end' font-size='11'>{_e(_short(k, 22))}</text>")
        s.append(f"<rect x='{lab_w}' y='{y}' width='{span}' height='{bar}' fill='#f3f3f3'/>")
        if v is None or not math.isfinite(v):
            s.append(f"<text x='{lab_w + 4}' y='{y + bar - 5}' font-size='11' fill='#888'>n/a</text>")
            continue
        w = max(0.0, min(1.0, v / hi)) * span
        s.append(f"<rect x='{lab_w}' y='{y}' width='{w:.1f}' height='{bar}' fill='{color(0)}'><title>{_e(k)}: {format(v, fmt)}</title></rect>"
                 f"<text x='{lab_w + w + 4:.1f}' y='{y + bar - 5}' font-size='11'>{format(v, fmt)}</text>")
    return _svg(width, height, s, title)


def points_map(coords, groups, *, title: str, width: int = 460, height: int = 400, markers=None) -> str:
    """A 2-D embedding map: ``coords`` (N, 2), ``groups`` (N,) names coloured by group (legend)."""
    pts = [(float(x), float(y)) for x, y in coords]
    if not pts:
        return ""
    names = list(dict.fromkeys(str(g) for g in groups))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    legend_w = 120
    px, py = (max(xs) - min(xs)) * 0.04 or 1.0, (max(ys) - min(ys)) * 0.04 or 1.0
    ax = _Axes(width, height, (min(xs) - px, max(xs) + px), (min(ys) - py, max(ys) + py), left=20, right=16 + legend_w,
               bottom=20)
    s = [f"<rect x='{ax.l}' y='{ax.t}' width='{width - ax.l - ax.r}' height='{height - ax.t - ax.b}' fill='#fff' stroke='#bbb'/>",
         f"<text x='{width / 2:.0f}' y='18' text-anchor='middle' font-size='13' font-weight='600'>{_e(title)}</text>"]
    index = {n: i for i, n in enumerate(names)}
    for (x, y), g in zip(pts, groups):
        s.append(f"<circle cx='{ax.X(x):.1f}' cy='{ax.Y(y):.1f}' r='2.6' fill='{color(index[str(g)])}' fill-opacity='0.7'/>")
    s += _legend(names, width - legend_w + 4, ax.t + 10, markers="dot")
    return _svg(width, height, s, title)
