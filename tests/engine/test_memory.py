"""Training memory bounded by design (engine.memory) and the allocator that keeps freed memory (engine.allocator)."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from transferkit.engine import Trainer
from transferkit.engine.memory import split_batch, training_batch_size, training_bytes_per_image


class _LinearTask:
    """A network without batch statistics under a mean loss: accumulation must give the full batch's gradient."""

    def __init__(self):
        torch.manual_seed(0)
        self.module = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
        self.sizes = []

    def configure_optimizer(self):
        return torch.optim.SGD(self.module.parameters(), lr=0.5)

    def training_step(self, batch):
        x, y = batch
        self.sizes.append(len(x))
        logits = self.module(x)
        return {"loss": nn.functional.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}


def _one_step(micro):
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(10, 3, 2, 2, generator=g), torch.randint(0, 3, (10,), generator=g))
    task = _LinearTask()
    trainer = Trainer(max_epochs=1, accelerator="cpu", scheduler="constant", progress=False, loggers=(),
                      micro_batch_size=micro)
    history = trainer.fit(task, [batch])
    return task, history[0]


def test_accumulated_micro_batches_give_the_full_batch_gradient():
    full, full_logs = _one_step(None)
    split, split_logs = _one_step(3)
    assert full.sizes == [10] and split.sizes == [2, 3, 2, 3]  # the memory of 3 images at a time
    for a, b in zip(full.module.parameters(), split.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # the same update, to float tolerance
    assert split_logs["train_loss"] == pytest.approx(full_logs["train_loss"], rel=1e-5)  # logs of the whole batch
    assert split_logs["train_acc"] == pytest.approx(full_logs["train_acc"], rel=1e-5)


def test_split_batch_keeps_nested_structure_and_refuses_ragged_batches():
    batch = {"x": torch.zeros(5, 2), "y": (torch.arange(5), torch.ones(5))}
    parts = split_batch(batch, 2)
    assert [len(p["x"]) for p in parts] == [1, 2, 2] and torch.equal(parts[2]["y"][0], torch.tensor([3, 4]))
    ragged = (torch.zeros(5, 2), torch.zeros(3))  # source and target of different sizes: not one set of images
    assert split_batch(ragged, 2) == [ragged]


def test_training_batch_follows_the_budget_and_leaves_the_model_as_it_was():
    from transferkit.backbones import create_backbone
    from transferkit.strategies.base import Classifier

    model = Classifier(create_backbone("builtin:small-cnn", pretrained=False), 3).eval()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    per_image = {s: training_bytes_per_image(model, (3, s, s)) for s in (32, 64)}
    assert 3.5 < per_image[64] / per_image[32] < 4.5  # activations scale with the pixels
    assert not model.training and all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())
    budget_mb = 20 * per_image[64] / 2**20
    assert training_batch_size(model, (3, 64, 64), max_batch=64, memory_budget_mb=budget_mb) == 20
    assert training_batch_size(model, (3, 64, 64), max_batch=8, memory_budget_mb=budget_mb) == 8
    assert training_batch_size(model, (3, 64, 64), max_batch=64, memory_budget_mb=1e-3) == 1


def test_finetune_splits_its_batch_under_a_small_budget_and_still_learns(target_split, monkeypatch):
    from transferkit.backbones import create_backbone
    from transferkit.strategies import create_strategy
    from transferkit.strategies.base import Classifier

    train, test = target_split
    bb = create_backbone("builtin:small-cnn", pretrained=False)
    per_image = training_bytes_per_image(Classifier(bb, 5), tuple(bb.data_config["input_size"]))
    monkeypatch.setenv("TRANSFERKIT_TRAIN_MEMORY_MB", str(16.5 * per_image / 2**20))
    m = create_strategy("finetune", backbone="builtin:small-cnn", pretrained=False, epochs=3, batch_size=64, lr=3e-3,
                        progress=False).fit(train)
    assert m.micro_batch_size_ == 16  # 4 micro-batches per step of 64
    assert m.evaluate(test)["accuracy"] > 0.2 + 0.5  # 5 classes: chance 0.2
    monkeypatch.delenv("TRANSFERKIT_TRAIN_MEMORY_MB")
    assert create_strategy("finetune", backbone="builtin:micro-cnn", epochs=1, progress=False).fit(train).micro_batch_size_ is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_keeps_freed_memory_in_every_process_that_imports_transferkit():
    code = "import transferkit.engine as e; print(e.allocator_name())"
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "TRANSFERKIT_MALLOC")}
    run = lambda **extra: subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True,
                                         text=True, check=True).stdout.strip()
    assert run() == "glibc, kept"
    assert run(TRANSFERKIT_MALLOC="default") == "glibc"
