"""`transferkit tour`: the guided walk through the situations transfer learning exists for."""
from pathlib import Path
from typing import List, Optional

import typer

from .app import app


@app.command()
def tour(
    dataset: Optional[str] = typer.Option(None, help="'fashion-mnist' (default when installed) or 'digits' (always available)."),
    quick: bool = typer.Option(False, "--quick", help="A small budget (about two minutes on digits); used by CI."),
    out: Path = typer.Option(Path("runs/tour"), "--out", "-o", help="Where results, tour.md and report.html go."),
    situation: List[str] = typer.Option([], "--situation", help="Run only these situations (repeatable): limited-labels, "
                                         "domain-shift, robustness, few-shot, zero-shot, multi-task, continual, deployment."),
    seed: int = typer.Option(0, help="One seed for everything."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report at the end."),
):
    """Pre-train a backbone on half the classes, then settle each transfer-learning situation by measurement."""
    from ..tour import run_tour
    from .core import check_out_dir

    check_out_dir(out, "--out")
    run_tour(dataset, quick=quick, out=out, seed=seed, situations=situation or None, report=report)
