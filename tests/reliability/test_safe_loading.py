"""Safe loading (issue 8): weights only through safetensors or ``torch.load(weights_only=True)``; a pickle
that would run code is refused with a message and never runs; recipes are data (``yaml.safe_load``).

Every malicious file here tries to create a marker file when unpickled; each test asserts the marker
never appears.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.backbones.factory import load_weights, save_backbone
from transferkit.errors import TransferkitError

SRC = Path(__file__).resolve().parents[2] / "src" / "transferkit"


class _Exploit:
    """Unpickling this calls os.system (a stand-in for any code a hostile checkpoint could run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(tmp_path: Path, name="evil.pt", wrap=lambda e: {"weight": torch.zeros(2), "x": e}) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / name
    torch.save(wrap(_Exploit(marker)), path)
    return path, marker


def test_the_exploit_is_real(tmp_path):
    """Control: an unsafe torch.load of the file does run its code (so the refusals below mean something)."""
    path, marker = _evil_checkpoint(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_weights_refuses_a_code_running_pickle(tmp_path):
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(TransferkitError, match=rf"Refusing to load {re.escape(str(path))}: it is not a plain tensor "
                                               r"checkpoint.*weights_only=True"):
        load_weights(path)
    assert not marker.exists()


@pytest.mark.parametrize("arch", ["builtin:micro-cnn", "timm:resnet18", "torchvision:resnet18"])
def test_file_backbone_refuses_a_code_running_pickle(tmp_path, arch):
    """``file:PATH`` with a bare checkpoint goes through timm or torchvision: the gate comes first."""
    path, marker = _evil_checkpoint(tmp_path)
    with pytest.raises(TransferkitError, match=r"Refusing to load .*evil\.pt"):
        create_backbone(f"file:{path}", arch=arch)
    assert not marker.exists()


def test_bare_state_dict_still_loads(tmp_path):
    """Control: a plain tensor state dict (timm layout) loads through torch.load(weights_only=True)."""
    src = create_backbone("builtin:micro-cnn", pretrained=False)
    torch.save(src.model.state_dict(), tmp_path / "plain.pth")
    bb = create_backbone(f"file:{tmp_path / 'plain.pth'}", arch="builtin:micro-cnn")
    for (k, a), b in zip(src.model.state_dict().items(), bb.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_safetensors_round_trip_and_corrupt_file(tmp_path):
    bb = create_backbone("builtin:micro-cnn", pretrained=False)
    path = save_backbone(bb, tmp_path)
    again = create_backbone(f"file:{path}")
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(bb.eval()(x), again.eval()(x))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TransferkitError, match=rf"Cannot read safetensors file {re.escape(str(path))}"):
        load_weights(path)
    path.write_bytes(b"\x00" * 3)
    with pytest.raises(TransferkitError, match=r"Cannot read safetensors file"):
        create_backbone(f"file:{path}")


def test_missing_weights_file(tmp_path):
    with pytest.raises(TransferkitError, match=r"Weights file not found: .*none\.pt"):
        load_weights(tmp_path / "none.pt")
    with pytest.raises(TransferkitError, match=r"Backbone file not found"):
        create_backbone(f"file:{tmp_path / 'none.safetensors'}")


def test_resume_refuses_a_code_running_checkpoint(tmp_path, digits):
    from transferkit.strategies.reuse.finetune import FineTune

    ck = tmp_path / "ck"
    ck.mkdir()
    _, marker = _evil_checkpoint(tmp_path, "ck/last.ckpt", wrap=lambda e: {"epoch": 1, "module": e})
    with pytest.raises(TransferkitError, match=r"Cannot resume from .*last\.ckpt: the checkpoint is unreadable"):
        FineTune(backbone="builtin:micro-cnn", pretrained=False, epochs=1, progress=False, accelerator="cpu",
                 checkpoint_dir=str(ck), resume=True).fit(digits.subset(range(64)))
    assert not marker.exists()


def test_pickled_feature_cache_is_ignored(tmp_path, digits):
    """A cache file holding pickled objects is never unpickled: it is dropped and recomputed."""
    from transferkit.engine import extract_features, feature_cache_key
    from transferkit.data import ImageTransform

    bb = create_backbone("builtin:micro-cnn", pretrained=False)
    data = digits.subset(range(50))
    key = feature_cache_key(bb, data, ImageTransform(bb.data_config, train=False))
    marker = tmp_path / "PWNED"
    np.save(tmp_path / f"{key}.npy", np.array([_Exploit(marker)], dtype=object), allow_pickle=True)
    feats = extract_features(bb, data, cache=tmp_path, progress=False)
    assert feats.shape == (50, bb.num_features) and feats.dtype == np.float32
    assert not marker.exists()


def test_saved_strategy_is_json_and_safetensors(tmp_path, digits):
    from transferkit.strategies import Strategy
    from transferkit.strategies.reuse.finetune import FineTune

    m = FineTune(backbone="builtin:micro-cnn", pretrained=False, epochs=1, progress=False,
                 accelerator="cpu").fit(digits.subset(range(100)))
    m.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.safetensors", "strategy.json"]
    again = Strategy.load(tmp_path / "m")
    x = torch.rand(3, 3, 32, 32)
    np.testing.assert_allclose(again.predict_proba(x), m.predict_proba(x), rtol=1e-5, atol=1e-6)


def test_recipe_with_python_tags_is_refused(tmp_path):
    core = pytest.importorskip("transferkit.cli.core")
    marker = tmp_path / "PWNED"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f'strategy: finetune\nparams: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(TransferkitError, match=r"evil\.yaml is not valid YAML"):
        core.load_recipe(recipe)
    assert not marker.exists()
    ok = tmp_path / "ok.yaml"
    ok.write_text("strategy: finetune\ndata: digits\nparams: {epochs: 2, lr: 0.001}\n")
    assert core.load_recipe(ok) == {"strategy": "finetune", "data": "digits", "params": {"epochs": 2, "lr": 0.001}}


_UNSAFE = [
    (r"\bpickle\.loads?\(", "pickle.load"),
    (r"\bdill\.|\bcloudpickle\.load", "dill/cloudpickle"),
    (r"\byaml\.load\((?![^)]*SafeLoader)", "yaml.load without SafeLoader"),
    (r"\byaml\.(unsafe_load|full_load)\(", "yaml.unsafe_load/full_load"),
    (r"allow_pickle\s*=\s*True", "np.load(allow_pickle=True)"),
    (r"(?<![\w.])(eval|exec)\(", "eval/exec"),
]


def test_no_unsafe_deserialisation_in_the_source():
    """Keeps the rule true as strategies land: every torch.load passes weights_only=True; no pickle,
    yaml.load, allow_pickle or eval/exec anywhere in src/transferkit."""
    problems = []
    for f in sorted(SRC.rglob("*.py")):
        text = f.read_text()
        code = re.sub(r'("""|\'\'\')[\s\S]*?\1', "", text)  # ignore docstrings
        code = "\n".join(line.split("#", 1)[0] for line in code.splitlines())
        for m in re.finditer(r"\btorch\.load\(", code):
            call = code[m.end():m.end() + 300]
            depth, end = 1, 0
            for end, ch in enumerate(call):
                depth += ch == "("
                depth -= ch == ")"
                if depth == 0:
                    break
            if "weights_only=True" not in call[:end]:
                problems.append(f"{f.relative_to(SRC)}: torch.load without weights_only=True")
        for pattern, what in _UNSAFE:
            if re.search(pattern, code):
                problems.append(f"{f.relative_to(SRC)}: {what}")
    assert not problems, problems
