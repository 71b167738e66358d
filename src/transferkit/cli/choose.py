"""Choosing a strategy: ``transferkit advise``, ``transferkit bench``, ``transferkit report``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import app, fail


def _split_names(text: Optional[str]) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


@app.command()
def advise(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Your labelled images: a folder (ImageFolder layout), a .csv manifest, or a built-in dataset as NAME[:SPLIT] (see `transferkit datasets`). Profiled and measured; optional if you only state constraints."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="The pre-trained backbone you would start from (spec); measures probe accuracy, LogME, parameters and latency on --data."),
    backbones: Optional[str] = typer.Option(None, help="Comma-separated candidate backbones to rank without training (LogME, N-LEEP, kNN and linear probes on --data)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Unlabelled images from the deployment domain (folder/CSV); its distance to --data is measured."),
    labels_per_class: Optional[float] = typer.Option(None, help="Labelled images per class (default: measured from --data)."),
    new_class_shots: Optional[int] = typer.Option(None, help="New classes will arrive with this many examples each (e.g. 1-5; 0: none at all)."),
    unseen_classes: str = typer.Option("none", help="Classes without any images, described by 'attributes' or 'descriptions' ('none')."),
    tasks: str = typer.Option("single", help="'single' task, several related tasks labelled 'together', or tasks arriving 'sequential'ly."),
    max_params: Optional[int] = typer.Option(None, help="Deployment budget: at most this many parameters."),
    max_latency_ms: Optional[float] = typer.Option(None, help="Deployment budget: at most this many milliseconds per image (measured on this CPU)."),
    compute: str = typer.Option("medium", help="Compute budget for training: 'low', 'medium' or 'high'."),
    robust: bool = typer.Option(False, "--robust", help="Robustness to adversarial perturbations is required."),
    measure_data: bool = typer.Option(True, "--measure/--no-measure", help="Measure the data and backbone (probe, LogME, domain distance) instead of relying on the stated constraints only."),
    max_samples: int = typer.Option(1000, help="Images used for the measurements (stratified subsample)."),
    seed: int = typer.Option(0, help="Seed of the subsampling and probes."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the advice (and measurements) to this JSON file."),
):
    """Recommend strategies for your data and constraints, ranked, with the reasons in plain words."""
    from ..advisor import Constraints, advise as _advise, measure, profile_dataset, score_backbones
    from ..data import load_dataset, load_unlabelled
    from ..utils import write_json

    c = Constraints(labels_per_class=labels_per_class, has_target=target is not None, new_class_shots=new_class_shots,
                    unseen_classes=unseen_classes, tasks=tasks, max_params=max_params, max_latency_ms=max_latency_ms,
                    compute=compute, robustness=robust).validate()
    ds = load_dataset(data) if data else None
    tgt = load_unlabelled(target) if (target and ds is not None and measure_data) else None
    m = {}
    if ds is not None:
        if measure_data:
            m = measure(ds, backbone=backbone, target=tgt, max_samples=max_samples, seed=seed, progress=True)
        else:
            p = profile_dataset(ds, duplicates=False)
            m = {"profile": p.to_dict(), "labels_per_class": p.median_per_class, "min_per_class": p.min_per_class}
        from ..advisor.profile import DatasetProfile

        prof = DatasetProfile(**{k: v for k, v in m["profile"].items() if k != "regime"})
        typer.echo(f"Dataset {prof.name}:")
        for line in prof.summary():
            typer.echo(f"  {line}")
        typer.echo("")
    elif backbone or backbones:
        fail("--backbone and --backbones are measured on your data: give --data too.")
    advice = _advise(c, m)
    typer.echo(advice.to_text())
    rows = None
    if backbones:
        rows = score_backbones(_split_names(backbones), ds, max_samples=max_samples, seed=seed, progress=True)
        typer.echo("\nBackbones ranked without training (LogME; N-LEEP; cross-validated kNN / linear probe):")
        for r in rows:
            typer.echo(f"  {r['rank']}. {r['backbone']}: LogME {r['logme']:.3f}, N-LEEP {r['nleep']:.3f}, "
                       f"kNN {r['knn']:.1%}, linear {r['linear']:.1%} ({r['n_params']:,} parameters)")
    if json_out:
        write_json(json_out, {**advice.to_dict(), "backbones": rows})
        typer.echo(f"\nwrote {json_out}")


def _parse_params(pairs: List[str]) -> dict:
    """``strategy.key=value`` pairs -> {strategy: {key: value}} (values parsed as YAML scalars)."""
    import yaml

    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        name, dot, k = key.partition(".")
        if not sep or not dot or not name or not k:
            fail(f"--param expects strategy.key=value (e.g. lora.r=4); got {pair!r}.")
        out.setdefault(name.strip(), {})[k.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


@app.command()
def bench(
    data: str = typer.Option(..., "--data", "-d", help="Labelled images: a folder (ImageFolder layout), a .csv manifest, or a built-in dataset as NAME[:SPLIT] (see `transferkit datasets`)."),
    strategies: str = typer.Option(..., "--strategies", "-s", help="Comma-separated strategy names to compare (see `transferkit strategies`)."),
    test: Optional[str] = typer.Option(None, "--test", help="Labelled test images; default: a stratified --test-fraction of --data."),
    test_fraction: float = typer.Option(0.3, help="Fraction of --data held out as the test set when --test is not given."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Unlabelled target-domain images for domain adaptation (default: the test images without labels)."),
    backbone: str = typer.Option("builtin:small-cnn", "--backbone", "-b", help="Backbone spec shared by every candidate."),
    epochs: int = typer.Option(3, help="Training epochs for every candidate (the shared budget)."),
    batch_size: int = typer.Option(64, help="Batch size for every candidate."),
    seed: int = typer.Option(0, help="One seed for the split and every candidate: the same seed gives the same ranking."),
    param: List[str] = typer.Option([], "--param", "-p", help="Per-strategy parameter as strategy.key=value (repeatable), e.g. lora.r=4."),
    time_budget_s: Optional[float] = typer.Option(None, help="Stop starting new candidates after this many seconds."),
    rank_by: str = typer.Option("accuracy", help="Rank by 'accuracy' (ties: fewer parameters), 'time' or 'size'."),
    out: Path = typer.Option(Path("runs/bench"), "--out", "-o", help="Output directory: <strategy>/result.json, bench.json, bench.md, report.html."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html and report.md into --out afterwards."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Load hub weights for hub backbone specs."),
    progress: bool = typer.Option(False, "--progress/--no-progress", help="Show each candidate's training progress bars."),
):
    """Run candidate strategies under one budget and seed on your data; rank them by accuracy, time and size."""
    from ..advisor import bench as _bench
    from ..data import load_dataset, load_unlabelled, stratified_split
    from .core import check_out_dir

    check_out_dir(out, "--out", [data, test, target])
    ds = load_dataset(data)
    if test:
        train, test_ds = ds, load_dataset(test)
    else:
        train, test_ds = stratified_split(ds, test_fraction, seed=seed)
    roles = {"target": load_unlabelled(target)} if target else None
    names = _split_names(strategies)
    typer.echo(f"bench: {', '.join(names)} on {ds.name} ({len(train)} train / {len(test_ds)} test), "
               f"backbone {backbone}, {epochs} epochs, seed {seed}")
    summary = _bench(train, test_ds, names, backbone=backbone, epochs=epochs, batch_size=batch_size, seed=seed,
                     out=out, params=_parse_params(param), roles=roles, time_budget_s=time_budget_s,
                     rank_by=rank_by, pretrained=pretrained, progress=progress)
    typer.echo((out / "bench.md").read_text())
    if report and summary["ranking"]:
        from ..report import build_report

        paths = build_report(out, title=f"transferkit bench: {ds.name}")
        typer.echo(f"report: {paths['html']}")
    if not summary["ranking"]:
        fail("no candidate finished; see the reasons above.", code=1)


@app.command()
def report(
    results: Path = typer.Argument(..., help="Directory holding result.json files (any depth), e.g. the --out of fit or bench."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to write report.html, report.md and figures/ (default: the results directory)."),
    title: Optional[str] = typer.Option(None, help="Page title."),
):
    """Write a self-contained HTML page and a Markdown report from result.json files."""
    from ..report import build_report
    from ..utils import check_writable

    check_writable(out or results, "--out" if out is not None else "the results folder (the default --out)")
    paths = build_report(results, out, title=title)
    typer.echo(f"{paths['runs']} run(s) -> {paths['html']} and {paths['markdown']} ({len(paths['figures'])} figures)")
