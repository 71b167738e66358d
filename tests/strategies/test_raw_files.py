"""A saved model carries its training data's preprocessing (issue 28 stage 1).

Omniglot loaded with non-default options (inverted to white on black, area-resized to 14 px) trains a model; the
same characters given later as the original black-on-white PNG files must get the same predictions, from the
Python API and from `transferkit predict`, with and without a support set.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from transferkit.data import ImageDataset
from transferkit.data.real.omniglot import load_omniglot
from transferkit.strategies import Strategy, create_strategy

CHARACTERS, DRAWERS = 6, 12


def _stroke_png(character: int, drawer: int) -> bytes:
    """A 105x105 bilevel PNG as Omniglot ships them: black strokes on white, a shape per character."""
    rng = np.random.default_rng(character * 100 + drawer)
    im = Image.new("1", (105, 105), 1)
    d = ImageDraw.Draw(im)
    angle = np.pi * character / CHARACTERS
    cx, cy = 52 + rng.normal(0, 4, 2)
    for k in range(2 + character % 3):
        a = angle + k * np.pi / (2 + character % 3) + rng.normal(0, 0.08)
        d.line([(cx - 40 * np.cos(a), cy - 40 * np.sin(a)), (cx + 40 * np.cos(a), cy + 40 * np.sin(a))], fill=0, width=7)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def omniglot_root(tmp_path_factory) -> Path:
    """A data root with a small Omniglot zip, and the same PNGs unpacked under files/ (raw, as a user has them)."""
    root = tmp_path_factory.mktemp("omniglot")
    (root / "omniglot").mkdir()
    with zipfile.ZipFile(root / "omniglot" / "images_background_small1.zip", "w") as z:
        for c in range(CHARACTERS):
            for i in range(DRAWERS):
                name = f"images_background_small1/Glyphs/character{c + 1:02d}/{c + 1:02d}_{i:02d}.png"
                z.writestr(name, _stroke_png(c, i))
                (root / "files" / Path(name).parent.name).mkdir(parents=True, exist_ok=True)
                (root / "files" / Path(name).parent.name / Path(name).name).write_bytes(_stroke_png(c, i))
    return root


@pytest.fixture(scope="module")
def loaded(omniglot_root):
    ds = load_omniglot("background_small1", root=omniglot_root, download=False, invert=True, image_size=14)
    files = [str(omniglot_root / "files" / c.split("/")[1] / f"{c.split('/')[1][-2:]}_{i:02d}.png")
             for c in ds.classes for i in range(DRAWERS)]
    raw = ImageDataset(files, ds.labels, ds.classes, name="raw")  # the same characters, as the original files
    return ds, raw


def test_the_loader_records_what_it_did(loaded):
    ds, raw = loaded
    assert ds.preprocess == {"invert": True, "size": [14, 14], "resample": "box"}
    assert ds.images[0].mean() < 128 and np.asarray(Image.open(raw.images[0]).convert("L")).mean() > 128


@pytest.mark.parametrize("name, params", [
    ("finetune", dict(epochs=10, lr=1e-2)),
    ("protonet", dict(epochs=1, episodes_per_epoch=8, n_way=3, k_shot=2, q_queries=3)),
])
def test_a_saved_model_predicts_raw_files_as_it_predicts_the_loaders_arrays(loaded, tmp_path, name, params):
    ds, raw = loaded
    model = create_strategy(name, backbone="builtin:micro-cnn", input_size=14, batch_size=16, seed=0,
                            progress=False, **params).fit(ds)
    loaded_model = Strategy.load(model.save(tmp_path / "m"))
    assert loaded_model.preprocess_ == ds.preprocess
    if name == "protonet":  # classes given by a support set of two drawers each, then the other drawers
        pick = np.flatnonzero(np.isin(np.arange(len(ds)) % DRAWERS, (0, 1)))
        rest = np.setdiff1d(np.arange(len(ds)), pick)
        names = [ds.classes[label] for label in ds.labels[pick]]
        on_arrays = loaded_model.predict_proba(ds.subset(rest), support=(ds.subset(pick), names))
        on_files = loaded_model.predict_proba(raw.subset(rest), support=(raw.subset(pick), names))
        untouched = loaded_model.predict_proba(raw.subset(rest).with_preprocess({"invert": False}),
                                               support=(raw.subset(pick).with_preprocess({"invert": False}), names))
        truth = ds.labels[rest]  # names sort as the classes do: support column k is class k
    else:
        on_arrays, on_files = loaded_model.predict_proba(ds), loaded_model.predict_proba(raw)
        untouched = loaded_model.predict_proba(raw.with_preprocess({"invert": False}))
        truth = ds.labels
    np.testing.assert_allclose(on_files, on_arrays, atol=1e-4)
    acc = float((on_arrays.argmax(1) == truth).mean())
    assert acc > 1.5 / CHARACTERS, f"{name} did not learn ({acc:.0%})"  # the check means something
    assert float((untouched.argmax(1) == truth).mean()) < acc, "without its preprocessing the files fare as well"


def test_the_cli_fits_with_dataset_options_and_predicts_raw_files_with_a_support_folder(omniglot_root, loaded,
                                                                                          tmp_path, monkeypatch):
    """`fit --data 'omniglot:...?invert=true&image_size=14'`, then `predict --support DIR` on the original PNGs: the
    labels are those the same model gives the loader's arrays."""
    import csv
    import shutil

    from typer.testing import CliRunner

    from transferkit.cli import _register, app

    _register()
    ds, raw = loaded
    monkeypatch.setenv("TRANSFERKIT_DATA", str(omniglot_root))
    runner = CliRunner()
    r = runner.invoke(app, ["fit", "-s", "protonet", "--data", "omniglot:background_small1?invert=true&image_size=14",
                            "--backbone", "builtin:micro-cnn", "--epochs", "1", "--no-progress", "--test-fraction", "0.5",
                            "--out", str(tmp_path / "run"),
                            *[a for kv in ("input_size=14", "n_way=3", "k_shot=2", "q_queries=3", "episodes_per_epoch=8")
                              for a in ("-p", kv)]])
    assert r.exit_code == 0, r.output
    pick, queries = np.isin(np.arange(len(ds)) % DRAWERS, (0, 1)), np.arange(len(ds)) % DRAWERS == 5
    for i in np.flatnonzero(pick):
        (tmp_path / "sup" / ds.classes[ds.labels[i]].split("/")[1]).mkdir(parents=True, exist_ok=True)
        shutil.copy(raw.images[i], tmp_path / "sup" / ds.classes[ds.labels[i]].split("/")[1])
    out = tmp_path / "p.csv"
    r = runner.invoke(app, ["predict", str(tmp_path / "run" / "model"), *[raw.images[i] for i in np.flatnonzero(queries)],
                            "--support", str(tmp_path / "sup"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    got = [row["label"] for row in csv.DictReader(out.open())]
    model = Strategy.load(tmp_path / "run" / "model")
    names = [ds.classes[label].split("/")[1] for label in ds.labels[pick]]
    expected = model.predict(ds.subset(np.flatnonzero(queries)), support=(ds.subset(np.flatnonzero(pick)), names))
    assert got == list(expected)
    # episodes within one alphabet (Lake 2015's protocol), from the command line: the model's own 3-way 2-shot shape
    r = runner.invoke(app, ["evaluate", str(tmp_path / "run" / "model"), "--within-domain",
                            "--data", "omniglot:background_small1?invert=true&image_size=14"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.output)
    assert metrics["episodes"] == 600 and (metrics["n_way"], metrics["k_shot"]) == (3, 2) and metrics["accuracy"] > 1 / 3
