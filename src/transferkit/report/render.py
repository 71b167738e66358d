"""Results -> a self-contained HTML page and a Markdown file (``report.html``, ``report.md``, ``figures/``).

``build_report`` only assembles sections (``sections.py``) into the one page template (``page.py``):

* a tour's folder (``tour.json``): one section per situation, with its question, its candidates side by side,
  the verdict and its reason, the advisor's pick beside it, and the charts its family needs;
* any other folder of runs: one section per group of runs (the runs of one folder answer one question), with
  the runs side by side and each run's learning curves and confusion matrix; a single ``fit`` gives one section.

There is no cross-section ranking: two sections answer different questions on different data.

Example:
    >>> paths = build_report("runs/bench")      # runs/bench/report.html, runs/bench/report.md
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from ..engine.results import read_field, read_results
from ..errors import TransferkitError
from ..utils import read_json
from . import page
from .sections import Figures, group_runs, group_section, run_name, situation_section


def _read_tour(root: Path) -> list[dict]:
    """The situation rows of a tour summary (``tour.json``) in ``root``, if any."""
    p = root / "tour.json"
    try:
        rows = read_json(p).get("situations", []) if p.exists() else []
    except (ValueError, AttributeError):
        return []
    return [r for r in rows if isinstance(r, dict) and r.get("situation")]


def report_sections(root: Path, results: list, fig: Figures) -> list:
    """One section per tour situation (from ``tour.json``), then one per group of the other runs."""
    tour = _read_tour(root)
    names = {row["situation"] for row in tour}
    by_situation, rest = defaultdict(list), []
    for r in results:
        situation = read_field(r, "tour.situation")
        if situation in names:
            by_situation[situation].append((Path(run_name(r, root)).name, r))
        else:
            rest.append(r)
    sections = [situation_section(row, by_situation[row["situation"]], fig) for row in tour]
    groups = group_runs(rest, root) if rest else {}
    return sections + [group_section(key, runs, fig, i) for i, (key, runs) in enumerate(groups.items())]


def build_report(results_dir, out=None, *, title: str | None = None) -> dict:
    """Render every result under ``results_dir`` to ``report.html`` and ``report.md`` (+ ``figures/*.svg``).

    Args:
        results_dir: a directory holding ``result.json`` files (any depth), and ``tour.json`` for a tour.
        out: output directory (default: ``results_dir``).
    Returns ``{"html": path, "markdown": path, "runs": n, "figures": [...]}``.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise TransferkitError(f"report: results directory not found: {root}")
    results = read_results(root)
    if not results:
        raise TransferkitError(f"report: no result.json files under {root}; run `transferkit fit` or `transferkit "
                               f"bench` with --out {root} first.")
    out = Path(out) if out is not None else root
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fig = Figures(out / "figures")
    sections = report_sections(root, results, fig)
    env = read_field(results[0], "environment") or {}
    html, md = page.render(title or f"transferkit report: {root.name or root}",
                           f"{len(results)} run(s) from {root} · generated {time.strftime('%Y-%m-%d %H:%M')}",
                           sections, "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v is not None))
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(html, encoding="utf-8")
    md_path.write_text(md, encoding="utf-8")
    return {"html": str(html_path), "markdown": str(md_path), "runs": len(results), "figures": fig.paths}
