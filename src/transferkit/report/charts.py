"""The report's charts, drawn with matplotlib and returned as SVG text to inline in the page.

Every chart is a ``matplotlib.figure.Figure`` (no pyplot: no global state, no GUI backend), saved as SVG with
text kept as text, a fixed hash salt and no date, so the same results give the same bytes. The XML header and
the RDF metadata are dropped (the page inlines the SVG without its namespace declarations, so it holds no URL).
Every chart has a title and axis labels; error bars are drawn where a spread is given.
"""
from __future__ import annotations

import io
import math
import re

import numpy as np

WIDTH, HEIGHT = 5.2, 3.2  # inches at 72 dpi in the SVG: about 375 x 230 px
_RC = {"svg.hashsalt": "transferkit", "svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10,
       "axes.spines.top": False, "axes.spines.right": False}


def _figure(width: float = WIDTH, height: float = HEIGHT):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def to_svg(fig) -> str:
    """The figure as SVG text (deterministic; no XML header, no metadata)."""
    buf = io.StringIO()
    with _rc():
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def finite(v) -> bool:
    """A real, finite number (not a bool, None, NaN or inf): what a chart can place."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(text, n: int = 36) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def bars(values: dict, *, title: str, xlabel: str, errors: dict | None = None, highlight=()) -> str:
    """Horizontal bars, one per candidate, with error bars (``errors``: name -> half-width); ``highlight``: the
    winner or the tied candidates, drawn in a darker colour."""
    names = [n for n, v in values.items() if finite(v)]
    if not names:
        return ""
    with _rc():
        fig, ax = _figure(height=max(1.6, 0.45 * len(names) + 1.0))
        y = np.arange(len(names))[::-1]
        err = [(errors or {}).get(n) or 0.0 for n in names]
        ax.barh(y, [values[n] for n in names], xerr=err if any(err) else None, capsize=3,
                color=["#2b6cb0" if n in highlight else "#9fb8d6" for n in names])
        ax.set_yticks(y, [_short(n) for n in names])
        ax.set_xlim(0, max(1.0, max(values[n] + e for n, e in zip(names, err))))
        for yi, n in zip(y, names):
            ax.text(values[n], yi, f" {values[n]:.1%}", va="center", fontsize=8)
        ax.set(title=title, xlabel=xlabel)
        return to_svg(fig)


def lines(series: dict, *, title: str, xlabel: str, ylabel: str, errors: dict | None = None,
          logx: bool = False) -> str:
    """One line per series (``series``: name -> (xs, ys)), with error bars where ``errors`` gives them."""
    drawn = {n: [(x, y) for x, y in zip(xs, ys) if finite(y)] for n, (xs, ys) in series.items()}
    drawn = {n: p for n, p in drawn.items() if p}
    if not drawn:
        return ""
    with _rc():
        fig, ax = _figure()
        for n, pts in drawn.items():
            xs, ys = zip(*pts)
            e = [v if finite(v) else 0.0 for v in (errors or {}).get(n, [])][: len(xs)]
            ax.errorbar(xs, ys, yerr=e if len(e) == len(xs) and any(e) else None, marker="o", markersize=3,
                        capsize=3, label=_short(n))
        if logx:
            ax.set_xscale("log")
        xs_all = [x for pts in drawn.values() for x, _ in pts]
        if all(float(x).is_integer() for x in xs_all):  # shots, labels per class, epochs: whole numbers
            ax.set_xticks(sorted(set(xs_all)), [f"{x:g}" for x in sorted(set(xs_all))])
            ax.minorticks_off()
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        if len(drawn) > 1:  # below the axes, never over the lines
            fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
        return to_svg(fig)


# the curve each panel draws, first key present wins: the total loss and the plain accuracy, never the parts of a
# loss (a DA transfer term, a KD term) or side metrics, which would crowd one run into six lines
CURVE_KEYS = {"loss": {"training": ("train_loss", "train_ce"), "validation": ("val_loss",)},
              "accuracy": {"training": ("train_acc",), "validation": ("val_acc", "val_accuracy")}}


def curves(histories: dict, *, title: str) -> str:
    """Learning curves of several runs on one figure: loss (left) and accuracy (right) per epoch, one colour per
    run, training solid and validation dashed. ``histories``: run name -> its per-epoch dicts (epochs counted in
    order, so the tasks of a continual run follow each other). A run of a single epoch has no curve."""
    panels = {panel: [] for panel in CURVE_KEYS}
    runs = [(name, h) for name, h in histories.items() if len(h) >= 2]
    for i, (name, history) in enumerate(runs):
        for panel, phases in CURVE_KEYS.items():
            for phase, keys in phases.items():
                key = next((k for k in keys if any(finite(h.get(k)) for h in history)), None)
                pts = [(j + 1, h[key]) for j, h in enumerate(history) if key and finite(h.get(key))]
                if len(pts) >= 2:
                    panels[panel].append((i, phase, pts))
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return ""
    with _rc():
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator

        first = runs[0][1]  # a continual run: where a new task starts
        switches = [j + 0.5 for j in range(1, len(first)) if first[j].get("task") != first[j - 1].get("task")]
        fig = Figure(figsize=(4.0 * len(panels) + 0.6, HEIGHT + 0.1 * len(runs)), layout="constrained")
        for ax, (ylabel, lines_) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels.items()):
            for i, phase, pts in lines_:
                ax.plot(*zip(*pts), color=f"C{i % 10}", linestyle="--" if phase == "validation" else "-", marker="o",
                        markersize=2)
            for b in switches:
                ax.axvline(b, color="0.8", linewidth=0.8, linestyle=":")
            ax.set(xlabel="epoch" + (" (tasks one after another, dotted: a new task)" if switches else ""),
                   ylabel=ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = sorted({i for lines_ in panels.values() for i, _, _ in lines_})
        handles = [Line2D([], [], color=f"C{i % 10}", label=_short(runs[i][0], 40)) for i in drawn]
        validation = any(phase == "validation" for lines_ in panels.values() for _, phase, _ in lines_)
        if validation:
            handles += [Line2D([], [], color="0.3", label="training"),
                        Line2D([], [], color="0.3", linestyle="--", label="validation")]
        # below the panels, never over the lines: one entry per run
        fig.legend(handles=handles, loc="outside lower center", ncols=min(3, len(handles)), fontsize=7, frameon=False)
        fig.suptitle(title + (" (training solid, validation dashed)" if validation else " (training)"), fontsize=10)
        return to_svg(fig)


def heatmap(matrix, rows, cols, *, title: str, xlabel: str, ylabel: str, normalize_rows: bool = False,
            fmt: str = ".2f") -> str:
    """A matrix as colours (``None``: not measured), with its values written in the cells when there is room."""
    m = np.array([[v if finite(v) else np.nan for v in row] for row in matrix], dtype=float)
    if m.size == 0 or np.isnan(m).all():
        return ""
    if normalize_rows:
        m = m / np.where(np.nansum(m, 1, keepdims=True) > 0, np.nansum(m, 1, keepdims=True), 1)
    n = max(m.shape)
    with _rc():
        fig, ax = _figure(width=max(WIDTH, 0.35 * n + 2.5), height=max(HEIGHT, 0.3 * n + 1.8))
        image = ax.imshow(np.ma.masked_invalid(m), cmap="Blues", vmin=0, vmax=max(1.0, np.nanmax(m)), aspect="auto")
        fig.colorbar(image, ax=ax, shrink=0.8)
        tilt = {"rotation": 45, "ha": "right"} if n > 4 else {}
        ax.set_xticks(range(m.shape[1]), [_short(c, 28) for c in cols], **tilt)
        ax.set_yticks(range(m.shape[0]), [_short(r, 28) for r in rows])
        if n <= 12:
            for (i, j), v in np.ndenumerate(m):
                if np.isfinite(v):
                    ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=7,
                            color="white" if v > 0.6 * max(1.0, np.nanmax(m)) else "black")
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        return to_svg(fig)


def scatter(points: list, *, title: str, xlabel: str, ylabel: str, logx: bool = False, size_label: str = "") -> str:
    """Labelled points (dicts with x, y, optional size: marker area scales with it, and label)."""
    pts = [p for p in points if finite(p.get("x")) and finite(p.get("y")) and (not logx or p["x"] > 0)]
    if not pts:
        return ""
    sizes = [p.get("size") for p in pts]
    top = max((s for s in sizes if finite(s)), default=None)
    with _rc():
        fig, ax = _figure()
        for i, p in enumerate(pts):
            area = 30 + 400 * (p["size"] / top) ** 0.5 if top and finite(p.get("size")) else 40
            ax.scatter(p["x"], p["y"], s=area, alpha=0.7, color=f"C{i % 10}", label=_short(p.get("label", "")))
        xs, ys = [p["x"] for p in pts], [p["y"] for p in pts]
        pad = 0.15 * (max(ys) - min(ys) or abs(max(ys)) or 1.0)  # room for the largest marker inside the axes
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
        if logx:
            from matplotlib.ticker import FuncFormatter

            ax.set_xscale("log")
            ax.set_xlim(min(xs) / 1.4, max(xs) * 1.4)
            for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
                axis(FuncFormatter(lambda v, _: f"{v:g}"))
        else:
            span = max(xs) - min(xs) or abs(max(xs)) or 1.0
            ax.set_xlim(min(xs) - 0.1 * span, max(xs) + 0.1 * span)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        # below the axes, never over a point
        fig.legend(fontsize=7, frameon=False, title=f"marker area ~ {size_label}" if size_label and top else None,
                   title_fontsize=7, loc="outside lower center", ncols=min(3, len(pts)))
        return to_svg(fig)


def embedding(coords, groups, *, title: str) -> str:
    """A 2-D map of points coloured by group (e.g. source and target domains)."""
    xy = np.asarray(coords, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2 or not len(xy):
        raise ValueError("embedding coordinates must be (N, 2)")
    groups = np.asarray([str(g) for g in groups])
    with _rc():
        fig, ax = _figure(width=4.2, height=3.6)
        for i, g in enumerate(dict.fromkeys(groups)):
            sel = groups == g
            ax.scatter(xy[sel, 0], xy[sel, 1], s=8, alpha=0.6, color=f"C{i % 10}", label=_short(g))
        ax.set(title=title, xlabel="component 1", ylabel="component 2")
        ax.legend(fontsize=7, frameon=False, markerscale=2)
        return to_svg(fig)


def _rc():
    import matplotlib

    return matplotlib.rc_context(_RC)
