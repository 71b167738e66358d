"""Results -> a self-contained HTML page and a Markdown file.

Reads result records only (``engine.results.read_results``) and renders what they contain:
a summary table of every run, a strategy comparison chart (accuracy vs fit time, circle area = parameters),
learning curves (``history``), confusion matrices and per-class accuracy (``metrics``), embedding maps for
domain shift (``extra["embedding_map"]``: ``coords`` (N, 2), ``domain`` (N,)), few-shot accuracy vs shots
(runs whose metrics carry ``k_shot`` with ``accuracy`` and ``ci95``, or a ``shots`` curve), and the
continual-learning accuracy matrix (``accuracy_matrix``: row i = after training task i, column j = task j).
The HTML has inline CSS and inline SVG only: no scripts, no external URLs; every name and path is escaped.

Example:
    >>> paths = build_report("runs/bench")      # runs/bench/report.html, runs/bench/report.md
"""
from __future__ import annotations

import math
import time
from html import escape
from pathlib import Path

from ..engine.results import read_results
from ..errors import TransferkitError
from ..utils import read_json
from . import svg

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#16324f;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}
main{max-width:1180px;margin:0 auto;padding:12px 32px 48px}nav{margin:8px 0 16px}nav a{margin-right:14px;color:#16324f}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:14px 20px;margin:16px 0;overflow-x:auto}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border-bottom:1px solid #e6e6e6;padding:4px 10px;text-align:right;white-space:nowrap}table.wrap td{white-space:normal;vertical-align:top;min-width:90px}
th{background:#f1f4f7}td.l,th.l{text-align:left}tr.best td{font-weight:600;background:#f4fbf4}
.figs{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.muted{color:#666;font-size:12px}
details{margin:10px 0;border-top:1px solid #eee;padding-top:6px}summary{cursor:pointer;font-weight:600}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""

ACC_KEYS = ("accuracy", "oracle_target_accuracy", "average_accuracy")


def _e(x) -> str:
    return escape(str(x), quote=True)


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _find(result: dict, *names):
    """First value under one of ``names`` in metrics, extra, or one level below them."""
    for where in (result.get("metrics", {}), result.get("extra", {})):
        if not isinstance(where, dict):
            continue
        for n in names:
            if n in where:
                return where[n]
        for v in where.values():
            if isinstance(v, dict):
                for n in names:
                    if n in v:
                        return v[n]
    return None


def run_name(result: dict, root: Path) -> str:
    try:
        rel = str(Path(result["_path"]).resolve().relative_to(root.resolve()))
    except (KeyError, ValueError):
        rel = ""
    return rel if rel not in ("", ".") else result.get("strategy", "run")


def headline(result: dict) -> tuple[str | None, float | None]:
    m = result.get("metrics", {}) or {}
    for k in ACC_KEYS:
        if _num(m.get(k)) is not None:
            return k, float(m[k])
    return None, None


def summary_rows(results: list[dict], root: Path) -> list[dict]:
    rows = []
    for r in results:
        m, extra, t = r.get("metrics", {}) or {}, r.get("extra", {}) or {}, r.get("timings", {}) or {}
        key, acc = headline(r)
        rows.append({"run": run_name(r, root), "strategy": r.get("strategy", "?"), "family": r.get("family", ""),
                     "metric": key, "accuracy": acc, "balanced_accuracy": _num(m.get("balanced_accuracy")),
                     "macro_f1": _num(m.get("macro_f1")), "ece": _num(m.get("ece")),
                     "fit_s": _num(t.get("fit_s")), "n_params": _num(extra.get("n_params")),
                     "n_trainable": _num(extra.get("n_trainable_params"))})
    return rows


def _fmt(v, kind="f"):
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.2%}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "s":
        return f"{v:.1f}"
    return f"{v:.4f}"


def _scalar_metrics(result: dict) -> dict:
    out = {}
    for k, v in (result.get("metrics", {}) or {}).items():
        if _num(v) is not None and k not in ("n",):
            out[k] = v
        elif isinstance(v, dict) and k != "per_class_accuracy":
            for k2, v2 in v.items():
                if _num(v2) is not None and k2 != "n":
                    out[f"{k}.{k2}"] = v2
    return out


def _classes(result: dict, n: int) -> list[str]:
    cls = (result.get("extra", {}) or {}).get("classes") or list(((result.get("metrics", {}) or {}).get("per_class_accuracy") or {}))
    return [str(c) for c in cls] if len(cls) == n else [str(i) for i in range(n)]


def _history_series(history: list[dict]):
    if not history:
        return {}, {}
    xs = [h.get("epoch", i) + 1 for i, h in enumerate(history)]
    loss = {k: (xs, [_num(h.get(k)) for h in history]) for k in history[0] if "loss" in k and k != "loss"}
    acc = {k: (xs, [_num(h.get(k)) for h in history]) for k in history[0] if "acc" in k}
    loss = {k: v for k, v in loss.items() if any(y is not None for y in v[1])}
    acc = {k: v for k, v in acc.items() if any(y is not None for y in v[1])}
    return loss, acc


def _int(v):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None


def _shots_curves(results, root):
    """strategy -> sorted [(shots, accuracy, ci95)] from k-shot runs and from stored curves."""
    curves: dict[str, dict[int, tuple]] = {}
    for r in results:
        m = r.get("metrics", {}) or {}
        params = r.get("params", {}) or {}
        stored = _find(r, "shots_curve", "by_shots", "accuracy_vs_shots")
        if isinstance(stored, dict):
            for k, v in stored.items():
                acc = v.get("accuracy") if isinstance(v, dict) else v
                ci = v.get("ci95") if isinstance(v, dict) else None
                if _num(acc) is not None and _int(k) is not None:
                    curves.setdefault(r.get("strategy", "?"), {})[_int(k)] = (acc, _num(ci))
        elif isinstance(stored, list):
            for v in stored:
                k = _int(v.get("shots", v.get("k_shot"))) if isinstance(v, dict) else None
                if k is not None and _num(v.get("accuracy")) is not None:
                    curves.setdefault(r.get("strategy", "?"), {})[k] = (v["accuracy"], _num(v.get("ci95")))
        k = m.get("k_shot", params.get("k_shot"))
        if _int(k) is not None and _num(m.get("accuracy")) is not None and _num(m.get("ci95")) is not None:
            curves.setdefault(r.get("strategy", "?"), {})[_int(k)] = (m["accuracy"], _num(m.get("ci95")))
    return {s: sorted((k, a, c) for k, (a, c) in d.items()) for s, d in curves.items() if d}


def _run_charts(r: dict, stem: str, fig) -> list[str]:
    """Learning curves, confusion matrix and per-class accuracy of one result (what it holds)."""
    history = r.get("history") or []
    loss, acc = _history_series([h for h in history if isinstance(h, dict)] if isinstance(history, list) else [])
    charts = [fig("run", f"{stem}_loss", svg.line_chart(loss, title="loss", xlabel="epoch", ylabel="loss")) if loss else "",
              fig("run", f"{stem}_acc", svg.line_chart(acc, title="accuracy", xlabel="epoch", ylabel="accuracy")) if acc else ""]
    m = r.get("metrics", {}) or {}
    cm = m.get("confusion_matrix")
    if isinstance(cm, list) and cm and len(cm) <= 100:
        cls = _classes(r, len(cm))
        charts.append(fig("run", f"{stem}_confusion", svg.heatmap(cm, cls, cls, title="confusion matrix",
                                                                  xlabel="predicted", ylabel="true", normalize_rows=True)))
    pca = m.get("per_class_accuracy")
    if isinstance(pca, dict) and pca:
        charts.append(fig("run", f"{stem}_per_class", svg.hbar_chart(
            {k: _num(v) for k, v in list(pca.items())[:60]}, title="per-class accuracy")))
    return [c for c in charts if c]


def _read_tour(root: Path) -> list[dict]:
    """The situation rows of a tour summary (``tour.json``) in ``root``, if any."""
    p = root / "tour.json"
    try:
        rows = read_json(p).get("situations", []) if p.exists() else []
    except (ValueError, AttributeError):
        return []
    return [r for r in rows if isinstance(r, dict)]


def build_report(results_dir, out=None, *, title: str | None = None) -> dict:
    """Render every result under ``results_dir`` to ``report.html`` and ``report.md`` (+ ``figures/*.svg``).

    Args:
        results_dir: a directory holding ``result.json`` files (any depth).
        out: output directory (default: ``results_dir``).
    Returns ``{"html": path, "markdown": path, "runs": n, "figures": [...]}``.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise TransferkitError(f"report: results directory not found: {root}")
    results = read_results(root)
    if not results:
        raise TransferkitError(f"report: no result.json files under {root}; run `transferkit fit` or `transferkit bench` "
                               f"with --out {root} first.")
    out = Path(out) if out is not None else root
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    title = title or f"transferkit report: {root.name or root}"
    rows = summary_rows(results, root)
    figures: list[tuple[str, str, str]] = []  # (section, file stem, svg)
    html_sections, md = [], [f"# {title}", "", f"{len(results)} run(s) from `{root}`, generated "
                                                 f"{time.strftime('%Y-%m-%d %H:%M')}.", ""]

    def fig(section, stem, content):
        if content:
            figures.append((section, stem, content))
            (figdir / f"{stem}.svg").write_text(content)
            md.append(f"![{stem}](figures/{stem}.svg)")
            md.append("")
        # inline SVG needs no namespace attribute: the page then holds no URL at all
        return content.replace(" xmlns='http://www.w3.org/2000/svg'", "")

    # -- situations (a tour's tour.json: the winner of each situation and why) --------------------------
    tour = _read_tour(root)
    if tour:
        head = ["situation", "data", "candidates", "winner", "why", "advisor's pick"]
        md += ["## Situations", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        trs = []
        for t in tour:
            scores = ", ".join(f"{k} {_fmt(v, 'pct')}" for k, v in (t.get("scores") or {}).items())
            advisor = t.get("advisor", "") + (f": {t['advisor_note']}" if t.get("advisor_note") else "")
            cells = [t.get("situation", ""), t.get("data", ""), f"{scores} ({t.get('metric', '')})",
                     t.get("winner", ""), t.get("reason", ""), advisor]
            trs.append("<tr>" + "".join(f"<td class=l>{'<b>' + _e(c) + '</b>' if i == 3 else _e(c)}</td>"
                                        for i, c in enumerate(cells)) + "</tr>")
            md.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        md.append("")
        html_sections.append(("situations", "Situations", "<table class=wrap><tr>" + "".join(f"<th class=l>{_e(h)}</th>" for h in head)
                              + "</tr>" + "".join(trs) + "</table>"))

    # -- summary ---------------------------------------------------------------------------------------
    ranked = sorted(rows, key=lambda r: -(r["accuracy"] if r["accuracy"] is not None else -1))
    best = ranked[0]["run"] if ranked and ranked[0]["accuracy"] is not None else None
    head = ["run", "strategy", "family", "accuracy", "balanced acc.", "macro-F1", "ECE", "fit time (s)", "parameters", "trainable"]
    trs = []
    md += ["## Summary", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in ranked:
        cells = [r["run"], r["strategy"], r["family"],
                 _fmt(r["accuracy"], "pct") + ("" if r["metric"] in (None, "accuracy") else f" ({r['metric']})"),
                 _fmt(r["balanced_accuracy"], "pct"), _fmt(r["macro_f1"]), _fmt(r["ece"]), _fmt(r["fit_s"], "s"),
                 _fmt(r["n_params"], "int"), _fmt(r["n_trainable"], "int")]
        trs.append(f"<tr{' class=best' if r['run'] == best else ''}>" + "".join(
            f"<td{' class=l' if i < 3 else ''}>{_e(c)}</td>" for i, c in enumerate(cells)) + "</tr>")
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    md.append("")
    html_sections.append(("summary", "Summary",
                          "<table><tr>" + "".join(f"<th{' class=l' if i < 3 else ''}>{_e(h)}</th>" for i, h in enumerate(head))
                          + "</tr>" + "".join(trs) + "</table>"
                          + (f"<p class=muted>Best: <b>{_e(best)}</b> (highlighted).</p>" if best else "")))

    # -- comparison chart ------------------------------------------------------------------------------
    pts = [{"x": r["fit_s"], "y": r["accuracy"], "size": r["n_params"], "label": r["run"], "group": i}
           for i, r in enumerate(rows) if r["fit_s"] and r["accuracy"] is not None]
    if pts:
        md += ["## Strategy comparison", ""]
        chart = fig("comparison", "comparison", svg.scatter_chart(
            pts, title="Accuracy vs fit time (circle area ~ parameters)", xlabel="fit time (s, log scale)",
            ylabel="accuracy", logx=True, size_label="parameters"))
        html_sections.append(("comparison", "Strategy comparison", f"<div class=figs>{chart}</div>"
                              "<p class=muted>Up and to the left is better; a small circle means a small model.</p>"))

    # -- few-shot curves ---------------------------------------------------------------------------------
    curves = _shots_curves(results, root)
    if curves and any(len(c) >= 1 for c in curves.values()):
        series = {s: ([k for k, _, _ in c], [a for _, a, _ in c]) for s, c in curves.items()}
        errs = {s: [ci for _, _, ci in c] for s, c in curves.items()}
        md += ["## Few-shot accuracy vs shots", "", "| strategy | shots | accuracy | 95% CI |", "|---|---:|---:|---:|"]
        md += [f"| {s} | {k} | {a:.2%} | {'±' + format(ci, '.2%') if ci is not None else '-'} |" for s, c in curves.items() for k, a, ci in c]
        md.append("")
        chart = fig("fewshot", "fewshot_shots", svg.line_chart(series, errors=errs, title="Few-shot accuracy vs shots (95% CI)",
                                                              xlabel="examples per class (shots)", ylabel="accuracy"))
        html_sections.append(("fewshot", "Few-shot accuracy vs shots", f"<div class=figs>{chart}</div>"))

    # -- continual accuracy matrices ---------------------------------------------------------------------
    cont = []
    for r in results:
        mat = _find(r, "accuracy_matrix")
        if isinstance(mat, list) and mat and all(isinstance(row, list) and row for row in mat):
            n = max(len(row) for row in mat)
            mat = [[(_num(v)) for v in row] + [None] * (n - len(row)) for row in mat]
            tasks = _find(r, "tasks")
            tasks = [str(t) for t in tasks] if isinstance(tasks, list) and len(tasks) == n else [f"task {j + 1}" for j in range(n)]
            name = run_name(r, root)
            chart = fig("continual", f"accuracy_matrix_{len(cont)}", svg.heatmap(
                mat, [f"after {t}" for t in tasks[:len(mat)]], tasks, title=f"{name}: accuracy matrix", fmt=".2f",
                xlabel="evaluated on", ylabel="trained up to"))
            extras = {k: _find(r, k) for k in ("forgetting", "bwt", "average_accuracy")}
            note = ", ".join(f"{k} {v:.3f}" for k, v in extras.items() if _num(v) is not None)
            cont.append(f"<h3>{_e(name)}</h3><div class=figs>{chart}</div>" + (f"<p class=muted>{_e(note)}</p>" if note else ""))
            md += [f"Accuracy matrix of `{name}`" + (f" ({note})" if note else ""), ""]
    if cont:
        html_sections.append(("continual", "Continual learning: accuracy matrix",
                              "<p class=muted>Row i: after training task i; column j: accuracy on task j. "
                              "Below the diagonal is what was remembered.</p>" + "".join(cont)))

    # -- domain shift maps ------------------------------------------------------------------------------
    maps = []
    for r in results:
        emb = _find(r, "embedding_map")
        if isinstance(emb, dict) and emb.get("coords"):
            groups = emb.get("domain") or ["points"] * len(emb["coords"])
            name = run_name(r, root)
            try:
                chart = fig("shift", f"embedding_{len(maps)}", svg.points_map(
                    emb["coords"], groups, title=f"{name}: {str(emb.get('method', 'embedding')).upper()} map by domain"))
            except (TypeError, ValueError, KeyError):  # malformed coordinates: leave the map out
                continue
            shift = _find(r, "shift")
            note = ""
            if isinstance(shift, dict):
                note = ", ".join(f"{k} {v:.3f}" for k, v in shift.items() if _num(v) is not None)
            maps.append(f"<div>{chart}" + (f"<p class=muted>{_e(note)}</p>" if note else "") + "</div>")
    if maps:
        html_sections.append(("shift", "Domain shift: embedding maps",
                              "<p class=muted>Source and target embeddings in 2-D; well-mixed colours mean aligned domains.</p>"
                              f"<div class=figs>{''.join(maps)}</div>"))

    # -- per run ---------------------------------------------------------------------------------------
    per_run = []
    md += ["## Runs", ""]
    for i, r in enumerate(results):
        name = run_name(r, root)
        parts, stem = [], f"run{i}"
        try:
            charts = _run_charts(r, stem, fig)
        except Exception as e:  # an odd record must not take the whole report down
            charts = [f"<p class=muted>figures not rendered: {_e(type(e).__name__)}: {_e(e)}</p>"]
        scal = _scalar_metrics(r)
        table = ("<table><tr><th class=l>metric</th><th>value</th></tr>" + "".join(
            f"<tr><td class=l>{_e(k)}</td><td>{v:.4g}</td></tr>" for k, v in scal.items()) + "</table>") if scal else ""
        params = r.get("params", {}) or {}
        ptxt = ", ".join(f"{k}={v}" for k, v in params.items() if v not in (None, False, "", [], {}))
        parts.append(f"<p class=muted>strategy <code>{_e(r.get('strategy'))}</code> · family {_e(r.get('family', ''))} · "
                     f"path <code>{_e(r.get('_path', ''))}</code></p>")
        if ptxt:
            parts.append(f"<details><summary>parameters</summary><p class=muted>{_e(ptxt)}</p></details>")
        parts.append(f"<div class=figs>{''.join(charts)}{table}</div>")
        per_run.append(f"<details{' open' if i < 3 or name == best else ''}><summary>{_e(name)} "
                       f"({_e(r.get('strategy'))}{', ' + _fmt(headline(r)[1], 'pct') if headline(r)[1] is not None else ''})"
                       f"</summary>{''.join(parts)}</details>")
        md += [f"### {name}", "", f"strategy `{r.get('strategy')}`, path `{r.get('_path', '')}`", ""]
        if scal:
            md += ["| metric | value |", "|---|---:|"] + [f"| {k} | {v:.4g} |" for k, v in scal.items()] + [""]
    html_sections.append(("runs", "Runs", "".join(per_run)))

    env = results[0].get("environment", {}) or {}
    env_txt = ", ".join(f"{k} {v}" for k, v in env.items() if v is not None)
    nav = "".join(f"<a href='#{sid}'>{_e(h)}</a>" for sid, h, _ in html_sections)
    body = "".join(f"<section id='{sid}'><h2>{_e(h)}</h2>{content}</section>" for sid, h, content in html_sections)
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{_e(title)}</title><link rel='icon' href='data:,'><style>{_CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1><p>{len(results)} run(s) from {_e(root)} · generated {_e(time.strftime('%Y-%m-%d %H:%M'))}</p></header>"
            f"<main><nav>{nav}</nav>{body}<p class=muted>Environment: {_e(env_txt)}</p></main></body></html>")
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(page, encoding="utf-8")
    md.append(f"Environment: {env_txt}")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return {"html": str(html_path), "markdown": str(md_path), "runs": len(results),
            "figures": [str(figdir / f"{stem}.svg") for _, stem, _ in figures]}
