"""Core commands: fit, evaluate, predict, pretrain, backbones, strategies, datasets."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import TransferkitError
from .app import app


def _fail(msg: str, code: int = 2):
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _parse_params(pairs: List[str]) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars/lists (``lr=3e-4``, ``layers=[1,2]``)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param expects key=value; got {pair!r}.")
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def load_recipe(path) -> dict:
    """A YAML recipe: data only (``yaml.safe_load``), keys like the ``fit`` options plus ``params:``."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise TransferkitError(f"Recipe not found: {p}")
    try:
        recipe = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise TransferkitError(f"Recipe {p} is not valid YAML: {e}") from None
    if not isinstance(recipe, dict):
        raise TransferkitError(f"Recipe {p} must be a mapping of options; got {type(recipe).__name__}.")
    return recipe


def _load_role(role: str, value):
    from ..data import load_dataset

    if value is None:
        return None
    if role in ("target", "val", "test"):
        return load_dataset(value)
    if role == "teacher":
        from ..strategies import Strategy

        return Strategy.load(value)
    return value


def _run(fn):
    """Run a command body, turning transferkit errors and interruptions into clean exits."""
    from ..engine import TrainingInterrupted

    try:
        return fn()
    except TrainingInterrupted as e:
        typer.secho(str(e), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130)
    except TransferkitError as e:
        _fail(str(e))


@app.command()
def fit(
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy name (see `transferkit strategies`)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Training data: a folder (ImageFolder layout), a .csv manifest, 'digits' or 'fashion-mnist'."),
    test: Optional[str] = typer.Option(None, "--test", help="Labelled test data; default: a stratified --test-fraction of --data."),
    test_fraction: float = typer.Option(0.2, help="Fraction of --data held out for the test metrics when --test is not given."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Backbone spec: builtin:NAME, timm:NAME, hf-hub:ORG/NAME, torchvision:NAME or file:PATH."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    lr: Optional[float] = typer.Option(None, help="Base learning rate."),
    target: Optional[str] = typer.Option(None, help="Unlabelled target-domain data (domain adaptation)."),
    semantics: Optional[str] = typer.Option(None, help="Class semantics file: attributes CSV or descriptions (zero-shot)."),
    teacher: Optional[str] = typer.Option(None, help="A saved transferkit model directory to distil from."),
    tasks: Optional[int] = typer.Option(None, help="Split --data by class into this many tasks learned one after "
                                                 "another (progressive, sequential-finetune, ewc)."),
    param: List[str] = typer.Option([], "--param", "-p", help="Any strategy parameter as key=value (repeatable)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="YAML recipe with these options (command-line options win)."),
    out: Path = typer.Option(Path("runs/fit"), "--out", "-o", help="Output directory: model/, result.json, checkpoints/."),
    devices: Optional[int] = typer.Option(None, help="Processes/devices; >1 runs DDP (gloo on CPU)."),
    accelerator: Optional[str] = typer.Option(None, help="'cpu', 'gpu' or 'auto'."),
    precision: Optional[str] = typer.Option(None, help="'auto', '32-true', 'bf16-mixed' or '16-mixed'."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt after an interruption."),
    seed: Optional[int] = typer.Option(None, help="One seed for everything (same seed, same metrics on CPU)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
):
    """Train a strategy on your images, evaluate it on a test split and save model + result.json."""
    def body():
        from ..data import load_dataset, stratified_split
        from ..strategies import create_strategy, get_strategy_class

        cfg = load_recipe(recipe) if recipe else {}
        params = dict(cfg.get("params", {}) or {})
        opts = {k: v for k, v in dict(strategy=strategy, data=data, test=test, target=target, semantics=semantics,
                                      teacher=teacher).items() if v is not None}
        cfg = {**{k: v for k, v in cfg.items() if k != "params"}, **opts}
        name = cfg.get("strategy")
        if not name or not cfg.get("data"):
            _fail("fit needs --strategy and --data (or a --recipe that sets them).")
        for key, val in dict(backbone=backbone, epochs=epochs, batch_size=batch_size, lr=lr, devices=devices,
                             accelerator=accelerator, precision=precision, seed=seed).items():
            if val is not None:
                params[key] = val
        params.update(_parse_params(param))
        klass = get_strategy_class(name)
        valid = klass._get_param_names()
        if "checkpoint_dir" in valid:
            params.setdefault("checkpoint_dir", str(out / "checkpoints"))
            params["resume"] = resume
        if "progress" in valid:
            params["progress"] = progress
        model = create_strategy(name, **params)
        train = load_dataset(cfg["data"])
        if cfg.get("test"):
            test_ds = load_dataset(cfg["test"])
        else:
            train, test_ds = stratified_split(train, test_fraction, seed=params.get("seed", 0))
        if "tasks" in klass.data_roles:
            return _fit_task_sequence(model, train, test_ds, tasks or cfg.get("tasks") or 5, out)
        roles = {r: _load_role(r, cfg.get(r)) for r in klass.data_roles if r not in ("train", "val") and cfg.get(r)}
        missing = [r for r in klass.data_roles if r not in ("train", "val") and r not in roles]
        if missing:
            _fail(f"strategy {name!r} needs data role(s) {missing}: pass --{missing[0]} (see `transferkit strategies`).")
        model.fit(train, **roles)
        metrics = model.evaluate(test_ds)
        if _is_main_process():
            model.save(out / "model")
            from ..engine import write_result

            write_result(out, model.result(metrics, data={"train": train.name, "n_train": len(train),
                                                          "test": test_ds.name, "n_test": len(test_ds)}))
            typer.echo(json.dumps({k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece") if k in metrics}, indent=2))
            typer.echo(f"saved {out / 'model'} and {out / 'result.json'}")
    _run(body)


def _fit_task_sequence(model, train, test, n_tasks: int, out: Path) -> None:
    """Continual strategies: learn class-incremental tasks in order; report the accuracy matrix."""
    from ..data.fashion_tasks import task_sequence
    from ..engine import write_result

    model.fit(task_sequence(train, int(n_tasks)), eval_tasks=task_sequence(test, int(n_tasks)))
    metrics = {**model.continual_metrics_, "accuracy": model.continual_metrics_["average_accuracy"],
               "accuracy_matrix": model.accuracy_matrix_.tolist()}
    if _is_main_process():
        model.save(out / "model")
        write_result(out, model.result(metrics, data={"train": train.name, "tasks": int(n_tasks)}))
        typer.echo(json.dumps({k: metrics[k] for k in ("average_accuracy", "forgetting", "bwt")}, indent=2))
        typer.echo(f"saved {out / 'model'} and {out / 'result.json'}")


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="A saved model directory (OUT/model of `fit`)."),
    data: str = typer.Option(..., "--data", "-d", help="Labelled data to evaluate on (folder, .csv, 'digits', 'fashion-mnist:test')."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write result.json here."),
):
    """Evaluate a saved model: accuracy, balanced accuracy, macro-F1, per-class accuracy, ECE."""
    def body():
        from ..data import load_dataset
        from ..engine import write_result
        from ..strategies import Strategy

        m = Strategy.load(model)
        metrics = m.evaluate(load_dataset(data))
        if out:
            write_result(out, m.result(metrics, data={"test": data}))
        typer.echo(json.dumps({k: v for k, v in metrics.items() if k not in ("confusion_matrix",)}, indent=2))
    _run(body)


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A saved model directory."),
    images: List[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(1, help="How many classes to print per image."),
    output: Optional[Path] = typer.Option(None, "--output", help="Write predictions as CSV here instead of stdout."),
):
    """Predict classes of new images with a saved model (CSV: path, label, probability)."""
    def body():
        import csv

        import numpy as np

        from ..data import IMAGE_EXTENSIONS, ImageDataset
        from ..strategies import Strategy

        paths = []
        for p in images:
            if p.is_dir():
                paths += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)
            else:
                paths.append(str(p))
        if not paths:
            _fail("no image files given.")
        m = Strategy.load(model)
        ds = ImageDataset(paths, [-1] * len(paths), m.classes_, name="predict")
        proba = m.predict_proba(ds)
        rows = []
        for path, p in zip(paths, proba):
            for k in np.argsort(-p)[:top_k]:
                rows.append((path, m.classes_[k], f"{p[k]:.4f}"))
        fh = open(output, "w", newline="") if output else sys.stdout
        w = csv.writer(fh)
        w.writerow(["path", "label", "probability"])
        w.writerows(rows)
        if output:
            fh.close()
    _run(body)


@app.command()
def pretrain(
    data: str = typer.Option(..., "--data", "-d", help="Source dataset (folder, .csv, 'digits', 'fashion-mnist')."),
    arch: str = typer.Option("builtin:small-cnn", "--arch", "-a", help="Architecture to train from scratch (builtin:/timm:/torchvision:)."),
    classes: Optional[str] = typer.Option(None, help="Comma-separated source classes to train on (default: all)."),
    epochs: int = typer.Option(10, help="Epochs."),
    batch_size: int = typer.Option(128, help="Batch size."),
    lr: float = typer.Option(2e-3, help="Learning rate (AdamW, cosine schedule)."),
    augment: str = typer.Option("none", help="'none', 'light', 'flip' or 'strong'."),
    input_size: Optional[int] = typer.Option(None, help="Input size override (pixels)."),
    out: Path = typer.Option(Path("runs/pretrain"), "--out", "-o", help="Output directory (backbone.safetensors, result.json)."),
    devices: int = typer.Option(1, help="Processes/devices; >1 runs DDP."),
    accelerator: str = typer.Option("auto", help="'cpu', 'gpu' or 'auto'."),
    resume: bool = typer.Option(False, "--resume", help="Resume an interrupted pre-training."),
    seed: int = typer.Option(0, help="Seed."),
):
    """Pre-train a backbone on a source dataset; load it afterwards as `file:OUT`."""
    def body():
        from ..data import load_dataset
        from ..pretrain import pretrain_backbone

        path = pretrain_backbone(load_dataset(data), out, arch=arch, classes=classes.split(",") if classes else None,
                                 epochs=epochs, batch_size=batch_size, lr=lr, augment=augment, input_size=input_size,
                                 seed=seed, devices=devices, accelerator=accelerator, resume=resume)
        typer.echo(f"saved {path}\nuse it as: --backbone file:{out}")
    _run(body)


@app.command()
def backbones():
    """List the builtin backbones and how to name any other model."""
    from ..backbones import list_builtins

    typer.echo("Builtin backbones (CPU-sized, no download):")
    for name, desc in list_builtins().items():
        typer.echo(f"  builtin:{name:<14} {desc}")
    typer.echo(
        "\nAny other model by spec:\n"
        "  timm:NAME              any timm model, e.g. timm:resnet50.a1_in1k, timm:convnext_tiny, timm:vit_small_patch16_224\n"
        "                         (list: python -c \"import timm; print(timm.list_models('*resnet*', pretrained=True))\")\n"
        "  hf-hub:ORG/NAME        a timm model on the Hugging Face hub, e.g. hf-hub:timm/resnet18.a1_in1k\n"
        "  torchvision:NAME       e.g. torchvision:resnet18, torchvision:efficientnet_b0\n"
        "  file:PATH              weights saved by transferkit (pretrain/save_backbone), or a bare state dict\n"
        "                         as file:PATH?arch=timm:NAME")


@app.command()
def strategies(family: Optional[str] = typer.Option(None, help="Only this family.")):
    """List the registered strategies with their family, data roles and summary."""
    from ..strategies import list_strategies

    for name, cls in list_strategies(family).items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        typer.echo(f"{name:<16} {cls.family:<14} roles={','.join(cls.data_roles):<22} {doc}")


@app.command()
def datasets():
    """List the built-in datasets and the other ways to give data."""
    from ..data import BUILTIN_DATASETS

    for name, desc in BUILTIN_DATASETS.items():
        typer.echo(f"  {name:<15} {desc}")
    typer.echo("\nYour own data:\n  a folder            ImageFolder layout: ROOT/<class>/<image>\n"
               "  a .csv manifest     columns path,label[,domain][,extra label columns]; paths relative to the CSV's folder")
