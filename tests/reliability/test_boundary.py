"""The command-line boundary (issue 15): every hostile or mistaken input of the survey, one row each.

A row is ``(id, run, code, message)``: ``run`` is the CLI arguments (a list, or a function of the row's
temporary folder and the shared fitted run that builds its inputs and returns the list), or :class:`Py`,
a Python call that runs inside the CLI's own error wrapper (:func:`transferkit.cli.app.guarded`). Every row
checks what a user sees:

* a user error exits 2 with one line ``error: ...`` that names the culprit (``message``, a substring; ``{tmp}``
  and ``{run}`` stand for the row's folder and the shared run) and no ``Traceback``;
* an input that is accepted on purpose exits 0 and says so visibly (``message`` is then the ``warning:``
  or the note it prints), and ``check`` may look at what was written.

A new case costs one line. The rows follow the issue's two lists, "What was silently accepted" and "What
leaked a raw traceback"; the Python-API side of the same cases (data hygiene, saved-model tampering,
resume, the run lock, file modes) is tested at the end of the file and in ``test_bad_input.py``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from transferkit.cli import _register, app
from transferkit.cli.app import BUG_MESSAGE, guarded
from transferkit.errors import TransferkitError

_register()
runner = CliRunner()

FIT = ["fit", "--strategy", "finetune", "--data", "digits", "--backbone", "builtin:micro-cnn", "--epochs", "1",
       "--no-progress", "-p", "input_size=16"]


def fit(*args, data=None, epochs=True):
    """``transferkit fit`` of a micro CNN at 16 px for one epoch, with ``args`` appended (and --data replaced);
    ``epochs=False`` drops ``--epochs``, which the frozen-feature strategies do not take."""
    base = list(FIT)
    if data is not None:
        base[base.index("--data") + 1] = str(data)
    if not epochs:
        i = base.index("--epochs")
        del base[i:i + 2]
    return [*base, *map(str, args)]


# -- inputs ----------------------------------------------------------------------------------------------

def _folder(root: Path, spec: dict[str, int], size=16) -> Path:
    for k, (cls, n) in enumerate(spec.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.random.default_rng(k * 100 + i).integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def _manifest(tmp: Path, extra_rows=(), drop_last=0) -> Path:
    root = _folder(tmp / "imgs", {"a": 6, "b": 6})
    rows = [f"{c}/{i}.png,{c}" for c in "ab" for i in range(6)]
    rows = rows[:len(rows) - drop_last] + list(extra_rows)
    (root / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root / "m.csv"


_ENV: list = []


def _broken_result(tmp: Path) -> None:
    """A result.json cut short, as a run killed mid-write leaves it."""
    (tmp / "runs" / "a").mkdir(parents=True)
    (tmp / "runs" / "a" / "result.json").write_text('{"kind": "transferkit.result", "metrics": {"accur')


def _truncated_omniglot(tmp: Path) -> Path:
    """A data root whose Omniglot zip is the first half of a real zip (an interrupted download); returns it."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(4):
            png = io.BytesIO()
            Image.fromarray(np.full((8, 8), 255, np.uint8)).save(png, format="PNG")
            z.writestr(f"images_background_small1/Greek/character01/{i}.png", png.getvalue())
    (tmp / "omniglot").mkdir()
    (tmp / "omniglot" / "images_background_small1.zip").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return tmp


def _builtin_with_truncated_jpeg(tmp: Path) -> str:
    """A copy of the built-in 'hymenoptera' layout under $TRANSFERKIT_DATA (restored at teardown) whose train
    split holds a truncated JPEG; returns the built-in name."""
    import io

    root = _folder(tmp / "data" / "hymenoptera_data" / "train", {"ants": 6, "bees": 6})
    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, format="JPEG")
    (root / "bees" / "cut.jpg").write_bytes(buf.getvalue()[:40])
    _set_env("TRANSFERKIT_DATA", tmp / "data")
    return "hymenoptera:train"


def _builtin_hymenoptera(tmp: Path) -> str:
    """A small copy of the built-in 'hymenoptera' layout under $TRANSFERKIT_DATA (restored at teardown)."""
    _folder(tmp / "data" / "hymenoptera_data" / "train", {"ants": 6, "bees": 6})
    _set_env("TRANSFERKIT_DATA", tmp / "data")
    return "hymenoptera:train"


def _set_env(name: str, value) -> None:
    _ENV.append((name, os.environ.get(name)))
    os.environ[name] = str(value)


_RO: list = []


def _read_only(tmp: Path) -> Path:
    """A folder in which no file can be created: mode 0o555 for a normal user; as root, who writes through any
    mode, the read-only /sys when this machine has one; else the row skips."""
    import tempfile

    d = tmp / "ro"
    d.mkdir()
    d.chmod(0o555)
    for cand in (d, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=cand):
                pass
        except OSError:
            _RO[:] = [cand]
            return cand
    pytest.skip("no read-only folder here (root writes through file modes, and /sys is writable)")


def _damaged_weight_cache(tmp: Path, damage) -> Path:
    """Converts the ImageNet Lite0 weights into a fresh cache, damages the file, and asks for it again."""
    from transferkit.backbones import imagenet

    _set_env("TRANSFERKIT_CACHE", tmp / "cache")
    path = imagenet.converted_file("tf_efficientnet_lite0")
    good = path.read_bytes()
    path.write_bytes(damage(good))
    again = imagenet.converted_file("tf_efficientnet_lite0")
    # safetensors writes its metadata in hash-map order, so the bytes may differ: the size and the tensors may not
    assert again == path and again.stat().st_size == len(good), "the damaged cache was not rebuilt"
    from safetensors.torch import load, load_file

    rebuilt, before = load_file(str(again)), load(good)
    assert rebuilt.keys() == before.keys() and all(rebuilt[k].equal(before[k]) for k in before), "other weights"


def _omniglot_with_a_junk_png(tmp: Path) -> Path:
    """A data root whose Omniglot zip is whole but holds a member that is not a PNG."""
    import zipfile

    (tmp / "omniglot").mkdir()
    with zipfile.ZipFile(tmp / "omniglot" / "images_background_small1.zip", "w") as z:
        z.writestr("images_background_small1/Greek/character01/0.png", b"<html>not a png</html>")
    return tmp


def _flat_folder(tmp: Path) -> Path:
    """Night photos as they come: images in one folder, no class sub-folders."""
    root = tmp / "night"
    root.mkdir()
    for i in range(12):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _protonet(tmp: Path) -> Path:
    """A few-shot model saved by `transferkit fit -s protonet` (micro CNN, digits, 3 episodes)."""
    r = runner.invoke(app, [str(a) for a in fit("--out", tmp / "pn", "-s", "protonet", "-p", "episodes_per_epoch=3")])
    assert r.exit_code == 0, r.output
    return tmp / "pn" / "model"


def _raise(exc: BaseException):
    raise exc


def _with_bom(manifest: Path) -> Path:
    """The manifest as Excel's "CSV UTF-8" writes it: a UTF-8 byte-order mark before the header."""
    manifest.write_bytes(b"\xef\xbb\xbf" + manifest.read_bytes())
    return manifest


def _with_loop(tmp: Path) -> Path:
    root = _folder(tmp / "imgs", {"a": 6, "b": 6})
    (root / "a" / "again").symlink_to(root / "a")  # a loop back to its own folder
    return root


def _with_escape(tmp: Path) -> Path:
    root = _folder(tmp / "imgs", {"a": 6, "b": 6})
    _folder(tmp / "elsewhere", {"x": 2})
    (root / "b" / "outside").symlink_to(tmp / "elsewhere" / "x")  # a link leaving the data root
    return root


def _with_unreadable(tmp: Path) -> Path:
    root = _folder(tmp / "imgs", {"a": 6, "b": 6})
    (root / "a" / "1.png").write_bytes(b"junk")
    (root / "b" / "2.png").write_bytes(b"<html>404</html>")
    return root


def _image(tmp: Path) -> Path:
    Image.new("L", (8, 8), 255).save(tmp / "x.png")
    return tmp / "x.png"


def _state(spec: str, path: Path) -> Path:
    from transferkit.backbones import create_backbone

    torch.save(create_backbone(spec, pretrained=False).model.state_dict(), path)
    return path


def _resnet34_state(path: Path) -> Path:
    import timm

    torch.save(timm.create_model("resnet34", pretrained=False).state_dict(), path)  # torchvision key layout
    return path


def _saved_backbone(tmp: Path) -> Path:
    from transferkit.backbones import create_backbone
    from transferkit.backbones.factory import save_backbone

    return save_backbone(create_backbone("builtin:micro-cnn", pretrained=False), tmp / "bb")


def _attributes_with_nan(tmp: Path) -> Path:
    from transferkit.data.semantics import digits_semantics

    sem = digits_semantics()
    lines = ["class," + ",".join(sem["attribute_names"])]
    for i, (c, row) in enumerate(zip(sem["classes"], sem["attributes"])):
        lines.append(f"{c}," + ",".join("nan" if (i, j) == (3, 1) else str(v) for j, v in enumerate(row)))
    (tmp / "attributes.csv").write_text("\n".join(lines) + "\n")
    return tmp / "attributes.csv"


def _copy_run(tmp: Path, env) -> Path:
    shutil.copytree(env["run"], tmp / "run")
    return tmp / "run"


def _tampered(tmp: Path, env, edit: Callable[[Path], None]) -> Path:
    d = tmp / "model"
    shutil.copytree(env["run"] / "model", d)
    edit(d)
    return d


def _edit_meta(fn):
    def edit(d: Path):
        meta = json.loads((d / "strategy.json").read_text())
        fn(meta)
        (d / "strategy.json").write_text(json.dumps(meta))
    return edit


def _checkpoint_without_config(tmp: Path, env) -> Path:
    """A checkpoint as an older transferkit wrote it (no recorded configuration): only the weights can tell."""
    run = _copy_run(tmp, env)
    ckpt = run / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    state.pop("config")
    torch.save(state, ckpt)
    return run


_LOCKS = []


def _locked(tmp: Path) -> Path:
    from transferkit.utils import RunLock

    lock = RunLock(tmp / "busy")
    lock.__enter__()  # another run holds OUT (released at teardown)
    _LOCKS.append(lock)
    return tmp / "busy"


# -- the table -------------------------------------------------------------------------------------------

@dataclass
class Py:
    """A Python call (tmp, env) run inside the CLI's error wrapper."""
    fn: Callable


@dataclass
class Case:
    id: str
    run: list | Callable | Py  # CLI args, or (tmp, env) -> CLI args, or Py
    code: int  # 2: a user error; 0: accepted on purpose, visibly
    message: str  # a substring of the output: the culprit (for code 2) or the visible note (code 0)
    check: Callable | None = None  # (tmp) -> None, for accepted inputs


def _result(path: Path) -> dict:
    return json.loads(path.read_text())


CASES = [
    # --- what was silently accepted -------------------------------------------------------------------
    Case("weights-of-another-network", lambda t, e: fit("--backbone", f"file:{_state('builtin:micro-cnn', t / 'w.pth')}?arch=timm:resnet18"),
         2, "{tmp}/w.pth does not fit timm:resnet18: only 0 of its 120 tensors match"),
    Case("transferkit-file-with-another-arch", lambda t, e: fit("--backbone", f"file:{_saved_backbone(t)}?arch=timm:resnet18"),
         2, "records that it was saved from builtin:micro-cnn"),
    Case("torchvision-arch-given-a-deeper-net", lambda t, e: fit("--backbone", f"file:{_resnet34_state(t / 'r34.pth')}?arch=torchvision:resnet18"),
         2, "{tmp}/r34.pth does not fit torchvision:resnet18 (0 tensors with another shape, 96 unexpected"),
    Case("csv-duplicate-rows", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["a/0.png,a", "b/1.png,b"])),
         2, "{tmp}/imgs/m.csv: 2 duplicate row(s) repeat an earlier image: line 14 (= line 2)"),
    Case("csv-same-image-two-labels", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["a/0.png,b"])),
         2, "line 14: the image {tmp}/imgs/a/0.png is also on line 2 with another label"),
    Case("csv-utf8-with-byte-order-mark", lambda t, e: fit("--out", t / "o", data=_with_bom(_manifest(t))),
         0, "", check=lambda t: _result(t / "o" / "result.json")["data"]["n_train"] > 0
         or pytest.fail("the manifest was not read")),
    Case("pretrain-classes-the-data-lacks", lambda t, e: ["pretrain", "--data", "digits", "--classes", "Foo,Bar,3",
                                                          "--arch", "builtin:micro-cnn", "--out", t / "o"],
         2, "pretrain: classes ['Foo', 'Bar'] are not in digits; its classes are ['0', '1', '2'"),
    Case("on-error-raise-wins-over-a-builtin-default", lambda t, e: fit("--out", t / "o", "--on-error", "raise",
                                                                        data=_builtin_with_truncated_jpeg(t)),
         2, "Cannot read image {tmp}/data/hymenoptera_data/train/bees/cut.jpg"),
    Case("csv-empty-label", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["b/5.png,"], drop_last=1)),
         2, "{tmp}/imgs/m.csv, line 13: no label (the 'label' column is '')"),
    Case("csv-nan-label", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["b/5.png,NaN"], drop_last=1)),
         2, "line 13: no label (the 'label' column is 'NaN')"),
    Case("resume-other-dataset", lambda t, e: fit("--out", _copy_run(t, e), "--resume", data=_folder(t / "imgs", {"a": 6, "b": 6})),
         2, "Cannot resume from {tmp}/run/checkpoints/last.ckpt: it was written by a run with another configuration (classes:"),
    Case("two-runs-into-one-out", lambda t, e: fit("--out", _locked(t)),
         2, f"Another transferkit run (pid {os.getpid()}) is writing to {{tmp}}/busy"),
    Case("every-unreadable-image-named", lambda t, e: fit("--out", t / "o", data=_with_unreadable(t)),
         2, "2 of 12 images are unreadable: Cannot read image {tmp}/imgs/a/1.png"),
    Case("unreadable-image-hint-is-a-cli-option", lambda t, e: fit("--out", t / "o", data=_with_unreadable(t)),
         2, "(on the command line: --on-error skip)"),
    Case("on-error-skip-is-visible", lambda t, e: fit("--out", t / "o", "--on-error", "skip", data=_with_unreadable(t)),
         0, "warning: imgs: skipped 2 unreadable image(s) of 12"),
    Case("folder-symlink-loop-skipped-visibly", lambda t, e: fit("--out", t / "o", data=_with_loop(t)),
         0, "skipped 1 symbolic link(s) or folder(s) that form a loop: {tmp}/imgs/a/again",
         check=lambda t: _result(t / "o" / "result.json")["data"]["n_train"] + _result(t / "o" / "result.json")["data"]["n_test"] == 12
         or pytest.fail("the loop was read as images")),
    Case("folder-link-leaving-the-root-skipped", lambda t, e: fit("--out", t / "o", data=_with_escape(t)),
         0, "that leave the root: {tmp}/imgs/b/outside -> {tmp}/elsewhere/x"),
    Case("out-inside-the-data-folder", lambda t, e: fit("--out", _folder(t / "imgs", {"a": 6, "b": 6}) / "runs", data=t / "imgs"),
         2, "--out {tmp}/imgs/runs is inside the data folder {tmp}/imgs"),
    Case("recipe-unknown-top-level-key", lambda t, e: ((t / "r.yaml").write_text("strategy: finetune\ndata: digits\nepoch: 1\n"),
                                                       ["fit", "--recipe", t / "r.yaml"])[1],
         2, "Recipe {tmp}/r.yaml: unknown key 'epoch'. Did you mean 'epochs'?"),
    Case("predict-top-k-0", lambda t, e: ["predict", e["run"] / "model", _image(t), "--top-k", "0"], 2, "--top-k must be an integer >= 1; got 0"),
    Case("predict-top-k-negative", lambda t, e: ["predict", e["run"] / "model", _image(t), "--top-k", "-1"], 2, "--top-k must be an integer >= 1; got -1"),
    Case("eszsl-nan-in-attribute-file", lambda t, e: ["fit", "--strategy", "eszsl", "--data", "digits", "--semantics", _attributes_with_nan(t),
                                                      "--backbone", "builtin:micro-cnn", "--out", t / "o", "--no-progress"],
         2, "{tmp}/attributes.csv, line 5 (class '3'): attribute values must be finite numbers; got seg_upper_right='nan'"),
    Case("progressive-tasks-0", ["fit", "--strategy", "progressive", "--data", "digits", "--tasks", "0"], 2, "--tasks must be an integer >= 1; got 0"),
    Case("tasks-for-a-one-task-strategy", fit("--tasks", "3"), 2, "--tasks 3: strategy 'finetune' learns one task"),
    Case("precision-16-mixed-on-cpu-recorded-as-run", lambda t, e: fit("--out", t / "o", "--precision", "16-mixed", "--accelerator", "cpu"),
         0, "warning: --precision 16-mixed is not supported on the CPU",
         check=lambda t: _result(t / "o" / "result.json")["params"]["precision"] == "bf16-mixed"
         or pytest.fail(f"recorded {_result(t / 'o' / 'result.json')['params']['precision']}")),
    # --- what leaked a raw traceback ------------------------------------------------------------------
    Case("param-not-a-number", fit("-p", "lr=abc"), 2, "The 'lr' parameter of FineTune must be a number; got 'abc'"),
    Case("param-nan", fit("-p", "lr=nan"), 2, "The 'lr' parameter of FineTune must be a finite number; got nan"),
    Case("param-inf", fit("-p", "lr=inf"), 2, "The 'lr' parameter of FineTune must be a finite number; got inf"),
    Case("param-unknown-name", fit("-p", "lrr=0.1"), 2, "Unknown parameter 'lrr' for strategy 'finetune'. Did you mean 'lr'?"),
    Case("param-out-of-range", fit("-p", "batch_size=0"), 2, "The 'batch_size' parameter of FineTune must be in [1, None]; got 0"),
    Case("param-without-value", fit("-p", "lr"), 2, "--param expects key=value"),
    Case("recipe-params-a-list", lambda t, e: ((t / "r.yaml").write_text("strategy: finetune\ndata: digits\nparams:\n  - lr: 0.1\n"),
                                               ["fit", "--recipe", t / "r.yaml"])[1],
         2, "Recipe {tmp}/r.yaml: 'params' must be a mapping of strategy parameters"),
    Case("empty-pth", lambda t, e: ((t / "e.pth").write_bytes(b""), fit("--backbone", f"file:{t / 'e.pth'}?arch=timm:resnet18"))[1],
         2, "Weights file {tmp}/e.pth is empty (0 bytes)"),
    Case("weights-of-another-architecture-size-mismatch",
         lambda t, e: fit("--backbone", f"file:{_state('builtin:micro-cnn', t / 'w.pth')}?arch=builtin:small-cnn"),
         2, "{tmp}/w.pth does not fit builtin:small-cnn: only 3 of its 30 tensors match (15 with another shape"),
    Case("arch-hint-keeps-the-builtin-scheme",  # issue 29: no ?arch=timm:NAME hint for a builtin: network
         lambda t, e: fit("--backbone", f"file:{_state('builtin:micro-cnn', t / 'w.pth')}?arch=builtin:small-cnn"),
         2, "pass the arch it was trained with (file:{tmp}/w.pth?arch=builtin:NAME)"),
    Case("bare-state-dict-wrong-arch-never-hangs", lambda t, e: fit("--backbone", f"file:{_state('timm:resnet18', t / 'r18.pth')}?arch=timm:resnet34"),
         2, "{tmp}/r18.pth does not fit timm:resnet34: only 120 of its 216 tensors match"),
    Case("resume-other-backbone", lambda t, e: fit("--out", _copy_run(t, e), "--resume", "--backbone", "builtin:small-cnn"),
         2, "configuration (backbone: 'builtin:micro-cnn' then, 'builtin:small-cnn' now)"),
    Case("resume-old-checkpoint-other-backbone", lambda t, e: fit("--out", _checkpoint_without_config(t, e), "--resume", "--backbone", "builtin:small-cnn"),
         2, "{tmp}/run/checkpoints/last.ckpt: its weights do not fit the current model"),
    Case("saved-model-without-weights", lambda t, e: ["evaluate", _tampered(t, e, lambda d: (d / "model.safetensors").unlink()), "--data", "digits"],
         2, "{tmp}/model/model.safetensors is missing"),
    Case("saved-model-broken-json", lambda t, e: ["evaluate", _tampered(t, e, lambda d: (d / "strategy.json").write_text("{oops")), "--data", "digits"],
         2, "{tmp}/model/strategy.json is not valid JSON"),
    Case("saved-model-missing-keys", lambda t, e: ["evaluate", _tampered(t, e, _edit_meta(lambda m: m.pop("params"))), "--data", "digits"],
         2, "{tmp}/model/strategy.json lacks the key(s) ['params']"),
    Case("saved-model-edited-classes", lambda t, e: ["predict", _tampered(t, e, _edit_meta(lambda m: m.update(classes=m["classes"][:3]))), _image(t)],
         2, "{tmp}/model/model.safetensors does not fit {tmp}/model/strategy.json: head.weight has shape [10, 32]"),
    Case("saved-model-not-a-directory", lambda t, e: ["evaluate", t / "nowhere", "--data", "digits"], 2, "Saved model not found: {tmp}/nowhere"),
    Case("devices-0", fit("--devices", "0"), 2, "--devices must be an integer >= 1; got 0"),
    Case("devices-negative", fit("--devices", "-1"), 2, "--devices must be an integer >= 1; got -1"),
    Case("accelerator-gpu-without-gpu", fit("--accelerator", "gpu"), 2, "--accelerator gpu: no CUDA GPU is available"),
    Case("accelerator-misspelt", fit("--accelerator", "tpuu"), 2, "--accelerator must be one of auto, cpu, gpu, cuda, mps; got 'tpuu'"),
    Case("precision-unknown", fit("--precision", "64"), 2, "--precision must be one of"),
    Case("out-is-an-existing-file", lambda t, e: ((t / "f.txt").write_text("x"), fit("--out", t / "f.txt"))[1],
         2, "--out {tmp}/f.txt is an existing file"),
    Case("evaluate-out-an-existing-file", lambda t, e: ((t / "f.txt").write_text("x"), ["evaluate", e["run"] / "model", "--data", "digits", "--out", t / "f.txt"])[1],
         2, "--out {tmp}/f.txt is an existing file"),
    Case("evaluate-out-a-json-file", lambda t, e: ["evaluate", e["run"] / "model", "--data", "digits", "--out", t / "r.json"],
         0, '"accuracy"', check=lambda t: "metrics" in _result(t / "r.json") or pytest.fail("no metrics in r.json")),
    Case("predict-output-into-a-missing-folder", lambda t, e: ["predict", e["run"] / "model", _image(t), "--output", t / "new" / "p.csv"],
         0, "wrote 1 rows to {tmp}/new/p.csv",
         check=lambda t: (t / "new" / "p.csv").read_text().startswith("path,label,probability") or pytest.fail("no CSV")),
    Case("predict-output-a-directory", lambda t, e: ["predict", e["run"] / "model", _image(t), "--output", t],
         2, "--output {tmp} is a directory"),
    Case("predict-missing-image", lambda t, e: ["predict", e["run"] / "model", t / "gone.png"], 2, "image file(s) not found: {tmp}/gone.png"),
    Case("pretrain-lr-nan", ["pretrain", "--data", "digits", "--lr", "nan", "--out", "pre"], 2, "--lr must be a finite number > 0; got nan"),
    Case("pretrain-epochs-0", ["pretrain", "--data", "digits", "--epochs", "0", "--out", "pre"], 2, "--epochs must be an integer >= 1; got 0"),
    Case("pretrain-out-an-existing-file", lambda t, e: ((t / "f.txt").write_text("x"), ["pretrain", "--data", "digits", "--out", t / "f.txt"])[1],
         2, "--out {tmp}/f.txt is an existing file"),
    Case("pretrain-into-a-locked-out", lambda t, e: ["pretrain", "--data", "digits", "--arch", "builtin:micro-cnn", "--epochs", "1", "--out", _locked(t)],
         2, f"Another transferkit run (pid {os.getpid()}) is writing to {{tmp}}/busy"),
    Case("python-api-error-through-the-wrapper", Py(lambda t, e: __import__("transferkit.data", fromlist=["x"]).from_csv(t / "no.csv")),
         2, "CSV manifest not found: {tmp}/no.csv"),
    # issue 29: a damaged file the user has is named, never "a bug in transferkit"
    Case("report-on-a-broken-result-json", lambda t, e: [_broken_result(t), "report", t / "runs"][1:],
         2, "{tmp}/runs/a/result.json is not a readable result record (JSONDecodeError"),
    Case("features-one-image-per-class", lambda t, e: [
        "fit", "--strategy", "features", "--data", _folder(t / "one", {"a": 1, "b": 1}), "--test", t / "one",
        "--backbone", "builtin:micro-cnn", "--no-progress", "-p", "input_size=16", "--out", t / "o"],
         0, "warning: FeatureExtraction: the smallest class of one has 1 labelled image(s), too few for "
            "cross-validation; C=1 was used without selection"),
    Case("omniglot-truncated-zip", Py(lambda t, e: __import__("transferkit.data.real.omniglot", fromlist=["x"])
                                      .load_omniglot("background_small1", root=_truncated_omniglot(t), download=False)),
         2, "omniglot: {tmp}/omniglot/images_background_small1.zip is not a readable zip"),
    Case("omniglot-junk-png-named-without-internals", Py(lambda t, e: __import__("transferkit.data.real.omniglot", fromlist=["x"])
                                                         .load_omniglot("background_small1", root=_omniglot_with_a_junk_png(t), download=False)),
         2, "cannot decode {tmp}/omniglot/images_background_small1.zip/Greek/character01/0.png (not a readable PNG image)"),
    Case("out-inside-a-builtin-datasets-folder", lambda t, e: fit("--out", t / "data" / "hymenoptera_data" / "train" / "run",
                                                                  data=_builtin_hymenoptera(t)),
         2, "--out {tmp}/data/hymenoptera_data/train/run is inside the data folder {tmp}/data/hymenoptera_data "
            "(where hymenoptera:train is stored)",
         check=lambda t: not (t / "data" / "hymenoptera_data" / "train" / "run").exists() or pytest.fail("wrote into the data")),
    Case("fit-out-in-a-read-only-folder", lambda t, e: fit("--out", _read_only(t) / "run"),
         2, "--out {ro}/run cannot be written: {ro} refuses new files"),
    Case("pretrain-out-in-a-read-only-folder", lambda t, e: ["pretrain", "--data", "digits", "--out", _read_only(t) / "pre"],
         2, "--out {ro}/pre cannot be written"),
    Case("export-torchscript-into-a-read-only-folder", lambda t, e: ["export", e["run"] / "model", "-f", "torchscript",
                                                                     "--out", _read_only(t) / "m.pt"],
         2, "--out {ro}/m.pt cannot be written: {ro} refuses new files"),
    Case("read-only-cache-runs-without-it", lambda t, e: (_set_env("TRANSFERKIT_CACHE", _read_only(t) / "cache"),
                                                          ["fit", "-s", "features", "--data", "digits", "--backbone",
                                                           "builtin:micro-cnn", "--no-progress", "-p", "input_size=16",
                                                           "--out", t / "o"])[1],
         0, "warning: The feature cache {ro}/cache/features cannot be written",
         check=lambda t: (t / "o" / "result.json").exists() or pytest.fail("no result")),
    Case("weight-cache-cut-in-half-is-rebuilt", Py(lambda t, e: _damaged_weight_cache(t, lambda b: b[:len(b) // 2])),
         0, "warning: The cached ImageNet weights {tmp}/cache/weights/tf_efficientnet_lite0.in1k-"),
    Case("weight-cache-of-0-bytes-is-rebuilt", Py(lambda t, e: _damaged_weight_cache(t, lambda b: b"")),
         0, "are damaged (0 bytes); converting them again"),
    Case("flat-folder-as-an-unlabelled-target", lambda t, e: fit("--out", t / "o", "-s", "dann", "--target", _flat_folder(t)),
         0, "saved {tmp}/o/model"),
    Case("flat-folder-as-labelled-data-says-where-it-fits", lambda t, e: fit("--out", t / "o", data=_flat_folder(t)),
         2, "{tmp}/night has no class sub-folders; expected the layout {tmp}/night/<class>/<image files> (a flat folder "
            "of images is read only where unlabelled images are expected"),
    Case("csv-duplicates-hint-is-a-cli-option", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["a/0.png,a"])),
         2, "(on the command line: --data '{tmp}/imgs/m.csv?duplicates=drop')"),
    Case("csv-duplicates-dropped-from-the-cli", lambda t, e: fit("--out", t / "o", data=f"{_manifest(t, ['a/0.png,a'])}?duplicates=drop"),
         0, "warning: {tmp}/imgs/m.csv: dropped 1 duplicate row(s) repeating an earlier image: line 14 (= line 2)"),
    Case("csv-empty-label-hint-is-a-cli-option", lambda t, e: fit("--out", t / "o", data=_manifest(t, ["b/5.png,"], drop_last=1)),
         2, "(on the command line: --data '{tmp}/imgs/m.csv?unlabelled=true'"),
    Case("dataset-option-misspelt", fit(data="omniglot:background_small1?inverted=true"),
         2, "Data 'omniglot:background_small1': unknown dataset option(s) ['inverted']; its options are ['root', "
            "'download', 'image_size', 'invert', 'alphabets', 'exclude_alphabets', 'on_error']. Did you mean 'invert'?"),
    Case("dataset-option-for-a-dataset-without-options", fit(data="digits?size=8"),
         2, "Data 'digits': unknown dataset option(s) ['size']; it takes no options."),
    Case("advise-with-nothing-to-go-on", ["advise", "--new-class-shots", "0", "--unseen-classes", "none"],
         0, "N1: no strategy can recognise a class it has neither seen nor had described. Collect 1-5 labelled images"),
    # issue 28 stage 1: few-shot as a user uses it
    Case("predict-few-shot-with-a-support-folder", lambda t, e: ["predict", _protonet(t), _image(t), "--top-k", "2",
                                                                 "--support", _folder(t / "sup", {"kanji": 2, "rune": 2})],
         0, "{tmp}/x.png,"),
    Case("predict-few-shot-without-support-says-it-needs-one", lambda t, e: ["predict", _protonet(t), _image(t)],
         2, "{tmp}/pn/model is a few-shot model (protonet): it classifies images among new classes it is shown"),
    Case("predict-support-for-a-classifier", lambda t, e: ["predict", e["run"] / "model", _image(t), "--support", t],
         2, "--support is for few-shot models; {run}/model is a 'finetune' model"),
    Case("episodes-that-cannot-be-drawn-name-the-setting",
         lambda t, e: fit("--out", t / "o", "-s", "protonet", data=_folder(t / "imgs", {c: 8 for c in "abcdef"})),
         2, "Set q_queries=",
         check=lambda t: not (t / "o").exists() or pytest.fail(f"left {sorted(p.name for p in (t / 'o').iterdir())}")),
    Case("frozen-features-on-a-random-backbone-warn", fit("-s", "simpleshot", "--out", "o", epochs=False),
         0, "warning: SimpleShot: the backbone builtin:micro-cnn has random weights"),
    Case("permission-error-on-a-user-path-is-not-a-bug", Py(lambda t, e: _raise(PermissionError(13, "Permission denied", str(t / "x")))),
         2, "Cannot use {tmp}/x: Permission denied (you do not have permission there"),
    Case("full-disk-is-not-a-bug", Py(lambda t, e: _raise(OSError(28, "No space left on device"))),
         2, "Cannot write: No space left on device (the disk is full"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One finished run (digits, micro CNN, one epoch) with OUT/model and OUT/checkpoints/last.ckpt."""
    run = tmp_path_factory.mktemp("boundary") / "run"
    r = runner.invoke(app, fit("--out", run))
    assert r.exit_code == 0, r.output
    assert (run / "checkpoints" / "last.ckpt").exists() and (run / "model" / "strategy.json").exists()
    return {"run": run}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _invoke(case: Case, tmp: Path, env, capsys) -> tuple[int, str]:
    if isinstance(case.run, Py):
        try:
            guarded(case.run.fn)(tmp, env)
            code = 0
        except BaseException as e:  # typer.Exit from the wrapper
            code = getattr(e, "exit_code", None)
            if code is None:
                raise
        captured = capsys.readouterr()
        return code, captured.out + captured.err
    args = case.run(tmp, env) if callable(case.run) else case.run
    r = runner.invoke(app, [str(a) for a in args])
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        pytest.fail(f"{case.id}: an exception escaped the CLI wrapper:\n"
                    + "".join(traceback.format_exception(type(r.exception), r.exception, r.exception.__traceback__)))
    return r.exit_code, r.output


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_boundary(case: Case, tmp_path, env, capsys, monkeypatch):
    if case.id == "accelerator-gpu-without-gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    tmp = tmp_path.resolve()
    monkeypatch.chdir(tmp)  # a run without --out writes runs/fit here, never in the repository
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(120)  # a row that hangs (the bare-state-dict case once did) fails instead of blocking the suite
    try:
        code, output = _invoke(case, tmp, env, capsys)
    except _Hang:
        pytest.fail(f"{case.id}: did not finish within 120 s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        while _LOCKS:
            _LOCKS.pop().__exit__(None, None, None)
        while _ENV:
            name, value = _ENV.pop()
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    expected = case.message.replace("{tmp}", str(tmp)).replace("{run}", str(env["run"]))
    expected = expected.replace("{ro}", str(_RO.pop()) if _RO else "{ro}")
    assert "Traceback" not in output, f"{case.id}: a traceback reached the screen:\n{output}"
    assert code == case.code, f"{case.id}: exit {code}, expected {case.code}:\n{output[-3000:]}"
    flat = " ".join(output.split())  # the CLI wraps nothing, but rich/terminal widths must not matter
    assert " ".join(expected.split()) in flat, f"{case.id}: {expected!r} not in the output:\n{output[-3000:]}"
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if case.code == 2:
        assert len(errors) == 1, f"{case.id}: expected one 'error:' line, got {errors}:\n{output}"
        assert output.rstrip().splitlines()[-1].startswith("error:"), f"{case.id}: the error is not one paragraph:\n{output}"
        assert " ".join(expected.split()) in errors[0], f"{case.id}: the error line does not name the culprit: {errors[0]}"
    else:
        assert not errors, f"{case.id}: accepted input printed an error: {errors}"
    if case.check is not None:
        case.check(tmp)


def test_table_covers_the_issue():
    """Each bullet of the issue's two lists is at least one row."""
    required = {
        "weights-of-another-network", "csv-duplicate-rows", "resume-other-dataset", "two-runs-into-one-out",
        "every-unreadable-image-named", "csv-empty-label", "csv-nan-label", "folder-symlink-loop-skipped-visibly",
        "out-inside-the-data-folder", "recipe-unknown-top-level-key", "predict-top-k-0", "predict-top-k-negative",
        "eszsl-nan-in-attribute-file", "progressive-tasks-0", "precision-16-mixed-on-cpu-recorded-as-run",
        "param-not-a-number", "param-nan", "recipe-params-a-list", "empty-pth",
        "weights-of-another-architecture-size-mismatch", "bare-state-dict-wrong-arch-never-hangs",
        "resume-other-backbone", "saved-model-without-weights", "saved-model-broken-json", "saved-model-missing-keys",
        "saved-model-edited-classes", "devices-0", "devices-negative", "accelerator-gpu-without-gpu",
        "accelerator-misspelt", "out-is-an-existing-file", "evaluate-out-an-existing-file",
        "predict-output-into-a-missing-folder"}
    assert not required - {c.id for c in CASES}


def test_a_reader_that_stops_reading_is_not_a_bug(tmp_path):
    """`transferkit strategies | head -1`: the pipe closes before the command has written; it ends quietly with
    SIGPIPE's exit code, no 'this is a bug' and no crash log."""
    import subprocess

    env = {**os.environ, "TRANSFERKIT_CACHE": str(tmp_path)}
    p = subprocess.Popen([sys.executable, "-m", "transferkit", "strategies"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.close()  # before the child has imported anything, let alone written
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141 and err == "", err
    assert not list(tmp_path.rglob("crash-*.log"))


def test_a_bug_is_reported_as_a_bug_with_a_log(tmp_path, capsys, monkeypatch):
    """Any exception that is not a TransferkitError: one paragraph 'this is a bug', the traceback in a log file."""
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path))

    def broken():
        return {}["missing"]

    with pytest.raises(BaseException) as info:
        guarded(broken)()
    assert getattr(info.value, "exit_code", None) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {BUG_MESSAGE} (KeyError: 'missing')") and "Traceback" not in err
    log = Path(err.split("The full traceback is in ")[1].strip().rstrip("."))
    assert log.is_file() and log.is_relative_to(tmp_path)
    text = log.read_text()
    assert "Traceback" in text and "broken" in text


# -- the Python API side -----------------------------------------------------------------------------

def test_run_lock_names_the_holder(tmp_path):
    from transferkit.utils import RunLock

    with RunLock(tmp_path / "out"):
        with pytest.raises(TransferkitError, match=rf"Another transferkit run \(pid {os.getpid()}\) is writing to "
                                                   rf"{tmp_path}/out"):
            with RunLock(tmp_path / "out"):
                pass
    with RunLock(tmp_path / "out"):  # released: the next run takes it
        pass


def test_run_lock_across_processes(tmp_path):
    """A lock held by another process (a second `transferkit fit` into the same --out) is refused."""
    import subprocess
    import sys

    code = ("import sys, time; from transferkit.utils import RunLock\n"
            f"with RunLock({str(tmp_path / 'out')!r}):\n    print('locked', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        from transferkit.utils import RunLock

        with pytest.raises(TransferkitError, match=rf"pid {holder.pid}\)"):
            with RunLock(tmp_path / "out"):
                pass
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path / "out"):  # the kernel dropped the dead process's lock
        pass


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_saved_files_honour_the_umask(tmp_path, umask, mode):
    from transferkit.utils import atomic_path, write_json

    old = os.umask(umask)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
        with atomic_path(tmp_path / "w.bin", ".bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    for name in ("r.json", "w.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_saved_model_is_readable_by_the_group_under_umask_027(tmp_path, digits):
    from transferkit.strategies import create_strategy

    m = create_strategy("finetune", backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=64,
                        input_size=16, progress=False).fit(digits.subset(np.arange(100)))
    old = os.umask(0o027)
    try:
        m.save(tmp_path / "model")
    finally:
        os.umask(old)
    files = sorted(p for p in (tmp_path / "model").iterdir() if p.is_file())
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files]


_TAMPER = [
    ("no-weights", lambda d: (d / "model.safetensors").unlink(), r"model\.safetensors is missing"),
    ("broken-json", lambda d: (d / "strategy.json").write_text("{oops"), r"strategy\.json is not valid JSON"),
    ("not-an-object", lambda d: (d / "strategy.json").write_text("[1, 2]"), r"strategy\.json must hold a JSON object"),
    ("missing-keys", _edit_meta(lambda m: m.pop("classes")), r"lacks the key\(s\) \['classes'\]"),
    ("missing-state", _edit_meta(lambda m: m.pop("state")), r"lacks 'arch' in its 'state'"),
    ("edited-classes", _edit_meta(lambda m: m.update(classes=m["classes"] + ["extra"])),
     r"head\.weight has shape \[10, 32\] in the weights but \[11, 32\] for the 11 classes"),
    ("unknown-strategy", _edit_meta(lambda m: m.update(name="finetun")), r"finetun"),
    ("truncated-weights", lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100]),
     r"Cannot read safetensors file .*model\.safetensors"),
]


@pytest.mark.parametrize("edit,match", [t[1:] for t in _TAMPER], ids=[t[0] for t in _TAMPER])
def test_saved_model_tampering(tmp_path, env, edit, match):
    from transferkit.strategies import Strategy

    d = tmp_path / "model"
    shutil.copytree(env["run"] / "model", d)
    edit(d)
    with pytest.raises(TransferkitError, match=match):
        Strategy.load(d)


def test_resume_with_another_configuration_is_refused_before_loading(tmp_path, digits):
    from transferkit.strategies import create_strategy

    kw = dict(backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=64, input_size=16, progress=False,
              checkpoint_dir=str(tmp_path / "ckpt"))
    create_strategy("finetune", **kw).fit(digits.subset(np.arange(100)))
    for change, match in [(dict(lr=0.5), r"lr: 0\.003 then, 0\.5 now|lr: .* then, 0\.5 now"),
                          (dict(backbone="builtin:small-cnn"), r"backbone: 'builtin:micro-cnn' then, 'builtin:small-cnn' now")]:
        with pytest.raises(TransferkitError, match=rf"Cannot resume from .*last\.ckpt: .*{match}"):
            create_strategy("finetune", **{**kw, **change, "resume": True}).fit(digits.subset(np.arange(100)))
    with pytest.raises(TransferkitError, match=r"data: 'digits \(100 images.* then, 'digits \(120 images"):
        create_strategy("finetune", **{**kw, "resume": True}).fit(digits.subset(np.arange(120)))
    # the same configuration resumes
    create_strategy("finetune", **{**kw, "resume": True}).fit(digits.subset(np.arange(100)))


# -- bounded inference memory ----------------------------------------------------------------------------

def test_inference_batch_is_sized_from_the_model_and_input():
    """An ImageNet backbone at 224 px or more gets a small batch (its activations fit the budget); a builtin
    CNN at 32 px keeps the batch asked for; the batch falls as the input grows; inf switches the budget off."""
    from transferkit.backbones import create_backbone
    from transferkit.engine.features import activation_bytes_per_image, inference_batch_size

    lite0 = create_backbone("timm:tf_efficientnet_lite0", pretrained=False).eval()
    by_size = {s: inference_batch_size(lite0, (3, s, s), max_batch=256, memory_budget_mb=128) for s in (160, 224, 320)}
    assert 1 <= by_size[320] <= by_size[224] <= by_size[160] < 256, by_size
    assert by_size[224] * activation_bytes_per_image(lite0, (3, 224, 224)) <= 128 * 2**20
    assert inference_batch_size(lite0, (3, 224, 224), max_batch=256, memory_budget_mb=float("inf")) == 256
    micro = create_backbone("builtin:micro-cnn", pretrained=False)
    assert inference_batch_size(micro, (3, 32, 32), max_batch=256) == 256


def test_predict_and_evaluate_use_the_bounded_batch(digits, monkeypatch):
    """Strategy inference loaders (predict_proba, evaluate: batch 256) go through the same budget."""
    from transferkit.strategies import create_strategy

    m = create_strategy("finetune", backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=64,
                        input_size=16, progress=False).fit(digits.subset(np.arange(100)))
    assert m.loader(digits, train=False, batch_size=256).batch_size == 256  # a tiny CNN keeps 256
    monkeypatch.setenv("TRANSFERKIT_INFERENCE_MEMORY_MB", "0.01")  # a budget that fits one image's activations
    assert m.loader(digits, train=False, batch_size=256).batch_size == 1
    assert m.loader(digits, train=True).batch_size == 64  # training batches are the user's


def test_progress_bars_stay_off_a_terminal(tmp_path):
    """Off a terminal (a log file, CI) no bar is redrawn with carriage returns; one summary line per epoch prints."""
    args = [a for a in fit("--out", tmp_path / "o", "--epochs", "2") if a != "--no-progress"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output, "a progress bar was drawn into a non-terminal stream"
    assert [line.split()[:2] for line in r.output.splitlines() if line.startswith("epoch ")] == [["epoch", "1"], ["epoch", "2"]]


def test_the_bug_message_is_reachable_only_outside_user_io():
    """Issue 29's grep, kept: "this is a bug" is written in one function of the CLI wrapper, reached only after a
    user error (TransferkitError) and user I/O (an OSError naming a path, a full disk) have been told apart."""
    import transferkit

    src = Path(transferkit.__file__).parent
    hits = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if "BUG_MESSAGE" in line or "this is a bug" in line]
    assert hits and all(h.startswith("cli/app.py:") for h in hits), hits
    wrapper = (src / "cli" / "app.py").read_text()
    body = wrapper[wrapper.index("def guarded("):wrapper.index("def _bug(")]
    assert body.count("_bug(") == 1
    assert body.index("except TransferkitError") < body.index("is_user_io(e)") < body.index("_bug(")


def test_predict_with_support_labels_images_with_the_support_classes(tmp_path):
    """`predict --support DIR` on a few-shot model: every image gets a class of DIR, with probabilities over them."""
    import csv
    import io

    model = _protonet(tmp_path)
    _folder(tmp_path / "sup", {"kanji": 2, "rune": 2})
    queries = _folder(tmp_path / "q", {"x": 3})
    r = runner.invoke(app, ["predict", str(model), str(queries), "--top-k", "2", "--support", str(tmp_path / "sup")])
    assert r.exit_code == 0, r.output
    rows = [row for row in csv.DictReader(io.StringIO(r.stdout)) if row.get("path")]
    assert len(rows) == 6 and {row["label"] for row in rows} == {"kanji", "rune"}
    for path in {row["path"] for row in rows}:
        assert sum(float(row["probability"]) for row in rows if row["path"] == path) == pytest.approx(1, abs=1e-3)
