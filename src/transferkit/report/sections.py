"""The report's sections: one per tour situation (its question, candidates side by side, verdict, the advisor's
pick and the charts its family needs), or, for a folder of runs that is not a tour, one per group of runs (the
runs of one folder answer one question). Every value is read through the result schema
(:data:`transferkit.engine.results.RESULT_FIELDS`), so a section cannot read a key no run writes.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from ..engine.results import read_field
from ..engine.verdict import decide
from . import charts
from .table import Column, Table


def _num(v):
    return v if charts.finite(v) else None


@dataclass
class Section:
    """A titled part of the page: blocks of (HTML, Markdown), in order."""
    id: str
    title: str
    blocks: list = field(default_factory=list)

    def text(self, s: str, *, muted: bool = False, strong: str = "") -> None:
        if not s and not strong:
            return
        lead_html, lead_md = (f"<b>{escape(strong)}</b> ", f"**{strong}** ") if strong else ("", "")
        self.blocks.append((f"<p{' class=muted' if muted else ''}>{lead_html}{escape(s)}</p>", lead_md + s))

    def table(self, t: Table) -> None:
        self.blocks.append((t.html(), t.markdown()))

    def figures(self, charts: list) -> None:
        """``charts``: (HTML, Markdown) pairs from :class:`Figures`; shown side by side."""
        charts = [c for c in charts if c]
        if charts:
            self.blocks.append(("<div class=figs>" + "".join(h for h, _ in charts) + "</div>",
                                "\n\n".join(m for _, m in charts)))

    def details(self, summary: str, inner: "Section", *, open_: bool = False) -> None:
        body = "".join(h for h, _ in inner.blocks)
        self.blocks.append((f"<details{' open' if open_ else ''}><summary>{escape(summary)}</summary>{body}</details>",
                            f"### {summary}\n\n" + "\n\n".join(m for _, m in inner.blocks)))


class Figures:
    """Writes each chart once under ``figdir`` and gives its inline HTML and its Markdown image link."""

    def __init__(self, figdir: Path):
        self.figdir, self.paths = figdir, []

    def __call__(self, stem: str, content: str):
        if not content:
            return None
        path = self.figdir / f"{stem}.svg"
        path.write_text(content)
        self.paths.append(str(path))
        # inline SVG needs no namespace declaration: the page then holds no URL at all
        return re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", content), f"![{stem}](figures/{stem}.svg)"


def run_name(result: dict, root: Path) -> str:
    try:
        rel = str(Path(result["_path"]).resolve().relative_to(root.resolve()))
    except (KeyError, ValueError):
        rel = ""
    return rel if rel not in ("", ".") else read_field(result, "strategy") or "run"


def headline(result: dict) -> float | None:
    """The run's headline accuracy: ``metrics.accuracy`` (or, for continual runs, the average accuracy)."""
    v = _num(read_field(result, "metrics.accuracy"))
    v = _num(read_field(result, "metrics.average_accuracy")) if v is None else v
    return None if v is None else float(v)


# -- the charts each family needs ----------------------------------------------------------------------------

def curves_chart(runs: list, stem: str, fig: Figures):
    """The learning curves of every run that trained by epochs, on one figure (loss and accuracy)."""
    histories = {name: [h for h in read_field(r, "history") or [] if isinstance(h, dict)] for name, r in runs}
    histories = {n: h for n, h in histories.items() if h}
    return fig(stem, charts.curves(histories, title="learning curves")) if histories else None


def run_charts(r: dict, stem: str, fig: Figures) -> list:
    """The confusion matrix of one run, when it has one."""
    out = []
    cm = read_field(r, "metrics.confusion_matrix")
    if isinstance(cm, list) and cm and len(cm) <= 100:
        classes = read_field(r, "extra.classes") or []
        cls = [str(c) for c in classes] if len(classes) == len(cm) else [str(i) for i in range(len(cm))]
        out.append(fig(f"{stem}_confusion", charts.heatmap(cm, cls, cls, title="confusion matrix (rows sum to 1)",
                                                            xlabel="predicted", ylabel="true", normalize_rows=True)))
    return out


def shots_chart(runs: list, stem: str, fig: Figures):
    """Accuracy against shots with 95% CIs: the tour's few-shot cells, or single few-shot evaluations."""
    curves = defaultdict(dict)
    for name, r in runs:
        cells = read_field(r, "metrics.cells")
        if isinstance(cells, dict):
            for cell in cells.values():
                curves[f"{name} {cell['n_way']}-way"][cell["k_shot"]] = (cell["accuracy"], cell.get("ci95"))
        elif _num(read_field(r, "metrics.k_shot")) is not None and headline(r) is not None:
            curves[f"{read_field(r, 'strategy')} {read_field(r, 'metrics.n_way')}-way"][
                read_field(r, "metrics.k_shot")] = (headline(r), _num(read_field(r, "metrics.ci95")))
    if not curves:
        return None
    series = {s: (sorted(c), [c[k][0] for k in sorted(c)]) for s, c in curves.items()}
    errors = {s: [c[k][1] for k in sorted(c)] for s, c in curves.items()}
    return fig(stem, charts.lines(series, errors=errors, title="accuracy against shots (95% CI)",
                                  xlabel="examples per class (shots)", ylabel="accuracy"))


def matrix_charts(runs: list, stem: str, fig: Figures) -> list:
    """The accuracy matrix of each continual run (row i: after task i; column j: task j)."""
    out = []
    for i, (name, r) in enumerate(runs):
        mat = read_field(r, "metrics.accuracy_matrix")
        if isinstance(mat, list) and mat and all(isinstance(row, list) and row for row in mat):
            n = max(len(row) for row in mat)
            mat = [[_num(v) for v in row] + [None] * (n - len(row)) for row in mat]
            tasks = [f"task {j + 1}" for j in range(n)]
            out.append(fig(f"{stem}_matrix{i}", charts.heatmap(mat, [f"after {t}" for t in tasks[:len(mat)]], tasks,
                                                               title=f"{name}: accuracy matrix", fmt=".2f",
                                                               xlabel="evaluated on", ylabel="trained up to")))
    return out


def embedding_charts(runs: list, stem: str, fig: Figures) -> list:
    """The 2-D map of source and target embeddings of each domain-adaptation run that stored one: the source-only
    run first (before alignment), then each method (after)."""
    out = []
    order = sorted(enumerate(runs), key=lambda t: read_field(t[1][1], "strategy") != "source-only")
    for i, (name, r) in order:
        emb = read_field(r, "extra.embedding_map")
        if isinstance(emb, dict) and emb.get("coords"):
            groups = emb.get("domain") or ["points"] * len(emb["coords"])
            when = "before alignment" if read_field(r, "strategy") == "source-only" else "after alignment"
            try:
                out.append(fig(f"{stem}_map{i}", charts.embedding(
                    emb["coords"], groups, title=f"{name} ({when}): {str(emb.get('method', 'embedding')).upper()} map")))
            except (TypeError, ValueError, KeyError):  # malformed coordinates: leave the map out
                continue
    return out


def labels_chart(runs: list, stem: str, fig: Figures):
    """Accuracy against labelled images per class (limited labels), one line per candidate."""
    curves = defaultdict(dict)
    for name, r in runs:
        k, acc = _num(read_field(r, "extra.labels_per_class")), headline(r)
        if k is not None and acc is not None:
            curves[read_field(r, "tour.candidate") or read_field(r, "strategy")][k] = acc
    if not any(len(c) > 1 for c in curves.values()):
        return None
    series = {s: (sorted(c), [c[k] for k in sorted(c)]) for s, c in curves.items()}
    return fig(stem, charts.lines(series, title="accuracy against labels per class", logx=True,
                                  xlabel="labelled images per class (log scale)", ylabel="accuracy"))


def latency_chart(runs: list, stem: str, fig: Figures):
    """Accuracy against batch-1 CPU latency, marker area by parameters (deployment)."""
    pts = [{"x": _num(read_field(r, "metrics.latency_ms_b1")), "y": headline(r),
            "size": _num(read_field(r, "metrics.params")), "label": name} for name, r in runs]
    pts = [p for p in pts if p["x"] is not None and p["y"] is not None]
    if len(pts) < 2:
        return None
    return fig(stem, charts.scatter(pts, title="accuracy against batch-1 CPU latency", ylabel="accuracy",
                                    xlabel="latency (ms, log scale)", logx=True, size_label="parameters"))


def family_charts(runs: list, stem: str, fig: Figures) -> list:
    """Every family chart ``runs`` (a list of (name, result)) hold data for."""
    return [curves_chart(runs, f"{stem}_curves", fig), labels_chart(runs, f"{stem}_labels", fig),
            shots_chart(runs, f"{stem}_shots", fig),
            latency_chart(runs, f"{stem}_latency", fig), *matrix_charts(runs, stem, fig),
            *embedding_charts(runs, stem, fig)]


def runs_table(runs: list, bold=()) -> Table:
    """One row per run: accuracy, balanced accuracy, macro-F1, ECE, fit time, parameters."""
    cols = ["run", "strategy", Column("accuracy", "pct"), Column("balanced acc.", "pct"), Column("macro-F1", "g"),
            Column("ECE", "g"), Column("fit (s)", "s"), Column("parameters", "int")]
    rows = [[name, read_field(r, "strategy"), headline(r), _num(read_field(r, "metrics.balanced_accuracy")),
             _num(read_field(r, "metrics.macro_f1")), _num(read_field(r, "metrics.ece")),
             _num(read_field(r, "timings.fit_s")), _num(read_field(r, "extra.n_params"))] for name, r in runs]
    return Table(cols, rows, bold=[i for i, (name, _) in enumerate(runs) if name in bold])


def run_details(section: Section, runs: list, stem: str, fig: Figures) -> None:
    """Each run's confusion matrix and metrics, folded."""
    for i, (name, r) in enumerate(runs):
        inner = Section(f"{stem}-{i}", name)
        scal = {k: v for k, v in (read_field(r, "metrics") or {}).items() if _num(v) is not None and k != "n"}
        try:
            inner.figures(run_charts(r, f"{stem}_run{i}", fig))
        except (TypeError, ValueError, KeyError, IndexError) as e:  # an odd record must not take the page down
            inner.text(f"figures not rendered: {type(e).__name__}: {e}", muted=True)
        if scal:
            inner.table(Table(["metric", Column("value", "g")], [[k, v] for k, v in scal.items()]))
        acc = headline(r)
        section.details(f"{name} ({read_field(r, 'strategy')}{f', {acc:.1%}' if acc is not None else ''})", inner,
                        open_=len(runs) == 1)


def situation_section(row: dict, runs: list, fig: Figures) -> Section:
    """One tour situation: its question, candidates side by side, verdict and reason, the advisor's pick beside
    it, and the charts of its family. ``row``: its line of ``tour.json``; ``runs``: its (name, result) pairs."""
    name = row.get("situation", "situation")
    s, stem = Section(name, name), name.replace(" ", "_")
    if row.get("question"):
        s.text(row["question"], strong="Question:")
    s.text(row.get("data", ""), muted=True)
    scores, spread = row.get("scores") or {}, row.get("spread") or {}
    winners = set(row.get("tied") or [row.get("winner")])
    s.table(Table(["candidate", Column(row.get("metric", "score"), "pm")],
                  [[c, (v, spread.get(c))] for c, v in scores.items()],
                  bold=[i for i, c in enumerate(scores) if c in winners]))
    s.figures([fig(f"{stem}_scores", charts.bars({c: _num(v) for c, v in scores.items()}, errors=spread,
                                                 highlight=winners, title="the candidates side by side",
                                                 xlabel=row.get("metric", "score")))])
    s.text(row.get("reason", ""), strong=f"Verdict: {row.get('winner', '')}.")
    advisor = row.get("advisor", "") + (f": {row['advisor_note']}" if row.get("advisor_note") else "")
    if advisor:
        s.text(advisor, strong="Advisor's rule-based pick:")
    s.figures(family_charts(runs, stem, fig))
    if runs:
        s.table(runs_table(runs, bold=set()))
        run_details(s, runs, stem, fig)
    return s


def group_section(key: str, runs: list, fig: Figures, index: int) -> Section:
    """The runs of one folder, side by side: a table (the best run and any tied with it under the tie rule in
    bold), the family charts they hold and each run folded."""
    s = Section(f"group{index}", key)
    scores = {n: headline(r) for n, r in runs if headline(r) is not None}
    tied = decide(scores, spread={n: _num(read_field(r, "metrics.ci95")) for n, r in runs}).tied \
        if len(scores) > 1 else []
    s.table(runs_table(runs, bold=set(tied)))
    if tied:
        s.text("In bold: the most accurate run and any within one point or the runs' 95% CI of it (a tie).",
               muted=True)
    s.figures(family_charts(runs, f"group{index}", fig))
    run_details(s, runs, f"group{index}", fig)
    return s


def group_runs(results: list, root: Path) -> dict:
    """Runs grouped by the folder above their own (relative to ``root``): each group answers one question."""
    groups = defaultdict(list)
    for r in results:
        name = run_name(r, root)
        parent = str(Path(name).parent) if "/" in name else ""
        groups[parent or "runs"].append((name, r))
    return dict(groups)
