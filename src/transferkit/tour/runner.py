"""``run_tour``: pre-train on the source half (cached), run each situation on the target half, print and write the
summary, put the advisor's pick beside each verdict, and render the report."""
from __future__ import annotations

import time
from pathlib import Path

from ..data import load_fashion_mnist, restrict_classes
from ..errors import DataError, check_choice
from ..utils import cache_dir, fingerprint, seed_everything, write_json
from .context import SHARED, Context
from .situation import Outcome, Situation, list_situations


def pretrained_backbone(ctx: Context) -> str:
    """Pre-train (or reuse the cached) backbone on the source classes; returns its ``file:`` spec."""
    from ..pretrain import pretrain_backbone

    b = ctx.budget
    key = fingerprint(ctx.train.name, ctx.source_classes, b["arch"], b["pretrain_per_class"], b["pretrain_epochs"],
                      ctx.seed)
    out = cache_dir() / "tour" / f"{ctx.train.name}-{key}"
    path = out / "backbone.safetensors"
    if not path.exists():
        source = ctx.cap(restrict_classes(ctx.train, [ctx.train.classes.index(c) for c in ctx.source_classes]),
                         b["pretrain_per_class"])
        pretrain_backbone(source, out, arch=b["arch"], epochs=b["pretrain_epochs"], lr=3e-3, batch_size=128,
                          val_fraction=0.0, seed=ctx.seed, progress=ctx.progress)
    return f"file:{path}"


def advisor_beside(situation: Situation, settings: dict, ctx: Context, outcome: Outcome) -> None:
    """Put the advisor's pick beside the measured verdict: its top approach from what a practitioner in this
    situation would tell it and what it measures of the target data, and, where the two disagree, which evidence
    wins and why."""
    from ..advisor.rules import Constraints, advise

    top = advise(Constraints(**situation.constraints(settings)), ctx.measurements(*outcome.evidence)).top
    outcome.advisor = f"{top.approach} ({', '.join(top.rules)})"
    measured = {situation.candidates.get(n) for n in outcome.tied or [outcome.winner]} - {None}
    if top.approach in measured:
        outcome.advisor_note = ("agrees with the measurement" if len(measured) == 1 else
                                "among the tied candidates' approaches (" + ", ".join(sorted(measured)) + ")")
    else:
        outcome.advisor_note = (f"disagrees: the measurement favours {', '.join(sorted(measured)) or outcome.winner}. "
                                f"The measurement wins: the rules are priors from published results, the measurement "
                                f"is this data under this budget")


def run_tour(dataset: str | None = None, *, quick: bool = False, out="runs/tour", seed: int = 0,
             situations=None, progress: bool = True, report: bool = True) -> dict:
    """Run the tour; returns the summary (also written to ``out/tour.json`` and ``out/report.html``)."""
    if dataset is None:
        try:
            load_fashion_mnist("test", download=False)
            dataset = "fashion-mnist"
        except DataError:
            dataset = "digits"
    check_choice("tour", "dataset", dataset, ("fashion-mnist", "digits"))
    registry = list_situations()
    names = list(situations or registry)
    for n in names:
        check_choice("tour", "situations", n, registry)
    seed_everything(seed)
    out = Path(out)
    t_start = time.perf_counter()
    ctx = Context(dataset, SHARED["quick" if quick else "full"], out, seed, progress)
    ctx.log(f"transferkit tour on {dataset} ({'quick' if quick else 'full'}): source classes {ctx.source_classes}, "
            f"target classes {ctx.target_classes}")
    t0 = time.perf_counter()
    ctx.backbone = pretrained_backbone(ctx)
    ctx.log(f"pre-trained {ctx.budget['arch']} on the source classes ({time.perf_counter() - t0:.0f} s, cached): "
            f"{ctx.backbone}")
    outcomes = []
    for name in names:
        situation, t0 = registry[name], time.perf_counter()
        ctx.log(f"\n== {name}: {situation.question}")
        settings = situation.settings(quick)
        outcome = situation.run(ctx, settings)
        outcome.data = outcome.data or f"{dataset}, {ctx.budget['arch']} pre-trained on its source classes"
        advisor_beside(situation, settings, ctx, outcome)
        outcome.details["time_s"] = time.perf_counter() - t0
        outcomes.append(outcome)
        ctx.log(f"   winner: {outcome.winner} - {outcome.reason} ({outcome.details['time_s']:.0f} s)")
    summary = {"dataset": dataset, "quick": quick, "seed": seed, "backbone": ctx.backbone,
               "total_s": time.perf_counter() - t_start, "situations": [o.row() for o in outcomes]}
    write_json(out / "tour.json", summary)
    (out / "tour.md").write_text(summary_markdown(summary))
    if progress:
        print("\n" + summary_markdown(summary))
    if report:
        from ..report import build_report

        summary["report"] = build_report(out, title=f"transferkit tour - {dataset}")
        ctx.log(f"report: {summary['report'].get('html', out / 'report.html')}")
    return summary


def summary_markdown(summary: dict) -> str:
    lines = [f"## transferkit tour - {summary['dataset']} ({'quick' if summary['quick'] else 'full'}, "
             f"seed {summary['seed']}, {summary['total_s']:.0f} s)", "",
             "| situation | data | candidates (metric) | winner | why | advisor's rule-based pick |",
             "|---|---|---|---|---|---|"]
    for r in summary["situations"]:
        cands = ", ".join(f"{k} {v:.1%}" for k, v in r["scores"].items())
        note = f": {r['advisor_note']}" if r.get("advisor_note") else ""
        lines.append(f"| {r['situation']} | {r['data']} | {cands} ({r['metric']}) | "
                     f"**{r['winner']}** | {r['reason']} | {r['advisor']}{note} |")
    return "\n".join(lines) + "\n"
