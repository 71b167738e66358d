"""Interruptions (issue 8): SIGTERM saves a checkpoint and exits cleanly, a kill -9 mid-epoch loses at
most the current epoch, and ``--resume`` reaches exactly the metrics and weights of an uninterrupted run
with the same seed (CPU).

The runs are real ``python -m transferkit fit`` processes (FineTune, builtin:micro-cnn, digits, 2 epochs
of 45 batches). The test follows each run's progress bar on stderr to signal it in the middle of an epoch.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

EPOCHS = 2
FIT = ["-m", "transferkit", "fit", "--strategy", "finetune", "--data", "digits", "--backbone", "builtin:micro-cnn",
       "--epochs", str(EPOCHS), "--batch-size", "32", "--lr", "0.003", "--seed", "0", "--accelerator", "cpu"]
_BAR = re.compile(r"epoch (\d+)/\d+:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


class Run:
    """A ``transferkit fit`` subprocess whose progress bar is parsed as it goes."""

    def __init__(self, out: Path, *extra: str, env=None):
        self.out = out
        self.proc = subprocess.Popen([sys.executable, *FIT, "--out", str(out), *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.stderr, self.stdout, self.position = "", "", (0, 0)
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self):
        buf = b""
        while chunk := self.proc.stderr.read1(4096):
            buf += chunk
            text = buf.decode(errors="replace")
            self.stderr = text
            for m in _BAR.finditer(text[-400:]):
                self.position = (int(m.group(1)), int(m.group(2)))  # (epoch 1-based, batches done)

    def _read_out(self):
        self.stdout = self.proc.stdout.read().decode(errors="replace")

    def wait_for(self, epoch: int, batch: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.position < (epoch, batch):
            if self.proc.poll() is not None:
                pytest.fail(f"run ended (rc={self.proc.returncode}) before epoch {epoch} batch {batch}:\n{self.stderr[-2000:]}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no progress to epoch {epoch} batch {batch} in {timeout}s; at {self.position}")
            time.sleep(0.05)

    def finish(self, timeout: float = 180) -> int:
        rc = self.proc.wait(timeout)
        for t in self._threads:
            t.join(10)
        return rc


def _env(tmp_path):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TRANSFERKIT_CACHE=str(tmp_path / "cache"), PYTHONHASHSEED="0",
               TRANSFERKIT_PROGRESS="always")  # the bar is drawn into the pipe the test reads
    return env


def _ckpt(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def _weights(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "model" / "model.safetensors"))


def test_sigterm_and_kill9_then_resume_match_an_uninterrupted_run(tmp_path):
    env = _env(tmp_path)
    ref = Run(tmp_path / "ref", env=env)  # the uninterrupted run, alongside
    run = Run(tmp_path / "run", env=env)

    # 1. SIGTERM in the middle of epoch 1: a checkpoint at that batch, a message, exit code 130.
    run.wait_for(1, 8)
    run.proc.send_signal(signal.SIGTERM)
    rc = run.finish()
    assert rc == 130, f"SIGTERM should exit with 130, got {rc}:\n{run.stderr[-2000:]}"
    assert "interrupted by signal SIGTERM" in run.stderr and "rerun with resume=True (--resume)" in run.stderr
    assert "Traceback" not in run.stderr
    state = _ckpt(tmp_path / "run")
    assert state["epoch"] == 0 and 8 <= state["batch"] < 45, (state["epoch"], state["batch"])  # mid-epoch 1
    assert state["partial"]["count"] == state["batch"]
    assert not (tmp_path / "run" / "result.json").exists()

    # 2. Resume, then kill -9 in the middle of epoch 2: the epoch-1 checkpoint survives intact.
    run = Run(tmp_path / "run", "--resume", env=env)
    run.wait_for(2, 8)
    os.kill(run.proc.pid, signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    assert "resuming from" in run.stdout + run.stderr
    state = _ckpt(tmp_path / "run")  # readable: written atomically, never half-written
    assert (state["epoch"], state["batch"]) == (1, 0), "kill -9 mid-epoch 2 must lose at most epoch 2"
    progress = json.loads((tmp_path / "run" / "checkpoints" / "progress.json").read_text())
    assert progress["epoch"] == 1 and len(progress["history"]) == 1

    # 3. Resume to the end and compare with the uninterrupted run.
    run = Run(tmp_path / "run", "--resume", env=env)
    assert run.finish() == 0, run.stderr[-2000:]
    assert ref.finish() == 0, ref.stderr[-2000:]
    got = json.loads((tmp_path / "run" / "result.json").read_text())
    want = json.loads((tmp_path / "ref" / "result.json").read_text())
    assert got["metrics"]["accuracy"] == want["metrics"]["accuracy"]
    assert got["metrics"]["confusion_matrix"] == want["metrics"]["confusion_matrix"]
    assert want["metrics"]["accuracy"] > 0.3  # it learned (10 classes: chance is 0.1)
    assert len(got["history"]) == len(want["history"]) == EPOCHS
    for g, w in zip(got["history"], want["history"]):
        assert g["train_loss"] == pytest.approx(w["train_loss"], rel=1e-6, abs=1e-7), (g, w)
    a, b = _weights(tmp_path / "run"), _weights(tmp_path / "ref")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"


def test_truncated_checkpoint_is_refused_with_a_message(tmp_path, digits):
    """A half-written last.ckpt (a copy truncated by a crash outside transferkit) is never read as valid."""
    from transferkit.errors import TransferkitError
    from transferkit.strategies.reuse.finetune import FineTune

    ckdir = tmp_path / "ck"
    small = digits.subset(range(120))
    kw = dict(backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=32, progress=False,
              checkpoint_dir=str(ckdir), accelerator="cpu")
    FineTune(**kw).fit(small)
    ckpt = ckdir / "last.ckpt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 3])
    with pytest.raises(TransferkitError, match=r"Cannot resume from .*last\.ckpt: the checkpoint is unreadable.*Delete it"):
        FineTune(**kw, resume=True).fit(small)


def test_atomic_path_keeps_the_old_file_when_a_write_fails(tmp_path):
    from transferkit.utils import atomic_path, write_json

    target = write_json(tmp_path / "result.json", {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target, ".json") as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temp file left behind


def test_truncated_feature_cache_is_ignored_and_recomputed(tmp_path, digits):
    import numpy as np

    from transferkit.backbones import create_backbone
    from transferkit.engine import extract_features

    bb = create_backbone("builtin:micro-cnn", pretrained=False)
    data = digits.subset(range(300))
    first = np.array(extract_features(bb, data, cache=tmp_path, progress=False, batch_size=64))
    (cache_file,) = tmp_path.glob("*.npy")
    raw = cache_file.read_bytes()
    cache_file.write_bytes(raw[: len(raw) // 2])  # a truncated cache (e.g. copied while being written)
    again = extract_features(bb, data, cache=tmp_path, progress=False, batch_size=64)
    assert again.shape == (300, bb.num_features)
    np.testing.assert_allclose(np.asarray(again), first, rtol=1e-5, atol=1e-6)
    assert cache_file.stat().st_size == len(raw)  # rewritten whole
    cache_file.write_bytes(b"not a numpy file")
    np.testing.assert_allclose(np.asarray(extract_features(bb, data, cache=tmp_path, progress=False)), first,
                               rtol=1e-5, atol=1e-6)


def test_results_and_checkpoints_go_through_atomic_writes():
    """Every writer of checkpoints, caches and results in the core uses utils.atomic_path."""
    import inspect

    from transferkit import utils
    from transferkit.backbones import factory
    from transferkit.engine import features, trainer
    from transferkit.strategies import base

    for fn in (trainer.Trainer.save_checkpoint, features.extract_features, utils.write_json, factory.save_backbone,
               base.Strategy.save):
        src = inspect.getsource(fn)
        assert "atomic_path" in src or "write_json" in src or "_cache_file" in src, fn.__qualname__
    assert "atomic_path" in inspect.getsource(features._cache_file)
