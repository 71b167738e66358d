"""Built-in real datasets by name: hymenoptera, Omniglot (zip reader, episodes), USPS (h5 reader), MNIST (IDX
reader), and the digits<->USPS and MNIST<->USPS domain pairs. Tests on the shared copies skip when
$TRANSFERKIT_DATA lacks them; the readers are also tested on tiny files written to tmp_path."""
from __future__ import annotations

import gzip
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferkit.data import EpisodeSampler, from_arrays, load_dataset, load_digits
from transferkit.data.pairs import paired_domains
from transferkit.data.real.omniglot import load_omniglot, with_rotations
from transferkit.data.real.mnist import read_idx
from transferkit.data.real.usps import read_usps_h5
from transferkit.errors import DataError

SMALL1_ALPHABETS = ["Balinese", "Early_Aramaic", "Greek", "Korean", "Latin"]


def _shared(relative: str) -> Path:
    for root in os.environ.get("TRANSFERKIT_DATA", "").split(os.pathsep):
        if root and (Path(root) / relative).exists():
            return Path(root) / relative
    pytest.skip(f"$TRANSFERKIT_DATA ({os.environ.get('TRANSFERKIT_DATA') or 'unset'}) has no {relative}; "
                f"point it at a folder holding the shared datasets (see /work/shared/data/README.md).")


# -- hymenoptera ----------------------------------------------------------------------------------------

def test_hymenoptera_by_name_drops_the_placeholder():
    _shared("hymenoptera_data/train")
    with pytest.warns(UserWarning, match="imageNotFound.gif"):
        train = load_dataset("hymenoptera:train", download=False)
    val = load_dataset("hymenoptera:val", download=False)
    assert (len(train), len(val)) == (244, 153)
    assert train.classes == val.classes == ["ants", "bees"]
    assert not any(p.endswith("imageNotFound.gif") for p in train.images)


# -- Omniglot -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small1():
    _shared("omniglot/images_background_small1.zip")
    return load_omniglot("background_small1", download=False, image_size=28)


def test_omniglot_small1_from_the_zip(small1):
    assert small1.images.shape == (2720, 28, 28) and small1.images.dtype == np.uint8
    assert small1.num_classes == 136 and set(small1.class_counts().values()) == {20}
    assert sorted(set(small1.domains)) == SMALL1_ALPHABETS
    # the class is the character, the domain its alphabet
    assert all(small1.classes[y].split("/")[0] == d for y, d in zip(small1.labels, small1.domains))


@pytest.mark.parametrize("n_way,k_shot", [(5, 1), (20, 5)])
def test_omniglot_episodes(small1, n_way, k_shot):
    q = 15
    for ep in EpisodeSampler(small1, n_way=n_way, k_shot=k_shot, q_queries=q, episodes=20, seed=0):
        assert ep.support.shape == (n_way * k_shot,) and ep.query.shape == (n_way * q,)
        assert len(set(ep.classes.tolist())) == n_way and not set(ep.support) & set(ep.query)
        np.testing.assert_array_equal(small1.labels[ep.support], ep.classes[ep.support_labels])
        np.testing.assert_array_equal(small1.labels[ep.query], ep.classes[ep.query_labels])
        alphabets = {small1.classes[c].split("/")[0] for c in ep.classes}
        assert alphabets <= set(SMALL1_ALPHABETS)
        assert set(small1.domains[ep.query]) == alphabets


def test_omniglot_by_name_and_small2_overlap():
    _shared("omniglot/images_background_small2.zip")
    ds = load_dataset("omniglot:background_small1")
    assert ds.images.shape == (2720, 105, 105) and ds.name == "omniglot-background_small1"
    assert ds.images.mean() > 200  # black strokes on white
    small2 = load_dataset("omniglot:background_small2", image_size=14, invert=True,
                          exclude_alphabets=["Greek", "Latin"])  # the alphabets small1 also has
    assert sorted(set(small2.domains)) == ["Japanese_(katakana)", "Sanskrit", "Tagalog"]
    assert small2.num_classes == 106 and small2.images.shape[1:] == (14, 14) and small2.images.mean() < 60
    with pytest.raises(DataError, match="Klingon"):
        load_dataset("omniglot:background_small2", alphabets=["Klingon"])


def _tiny_omniglot_zip(path: Path, folder="images_background_small1"):
    with zipfile.ZipFile(path, "w") as z:
        for a in ("Alpha", "Beta"):
            for c in (1, 2):
                for d in range(1, 4):
                    im = Image.new("1", (105, 105), 1)
                    im.paste(0, (10 * c, 10 * d, 10 * c + 20, 10 * d + 30))
                    buf = io.BytesIO()
                    im.save(buf, "PNG")
                    z.writestr(f"{folder}/{a}/character{c:02d}/{c:02d}{d:02d}_{d:02d}.png", buf.getvalue())
    return path


def test_omniglot_reader_on_a_tiny_zip_and_rotations(tmp_path):
    (tmp_path / "omniglot").mkdir()
    _tiny_omniglot_zip(tmp_path / "omniglot" / "images_background_small1.zip")
    ds = load_omniglot("background_small1", root=tmp_path, download=False, image_size=21)
    assert ds.classes == ["Alpha/character01", "Alpha/character02", "Beta/character01", "Beta/character02"]
    assert ds.images.shape == (12, 21, 21) and list(ds.domains[:3]) == ["Alpha"] * 3
    r = with_rotations(ds)
    assert r.num_classes == 16 and len(r) == 48 and r.classes[4] == "Alpha/character01@rot90"
    np.testing.assert_array_equal(r.images[12], np.rot90(ds.images[0]))
    assert r.labels[12] == 4 and r.labels[-1] == 15


def test_omniglot_offline_without_a_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path))
    with pytest.raises(DataError, match="TRANSFERKIT_DATA.*images_evaluation.zip"):
        load_dataset("omniglot:evaluation", download=False)


# -- USPS ---------------------------------------------------------------------------------------------

def test_usps_by_name():
    _shared("usps/usps.h5")
    train, test = load_dataset("usps:train"), load_dataset("usps:test")
    assert train.images.shape == (7291, 16, 16) and test.images.shape == (2007, 16, 16)
    assert train.images.dtype == np.uint8 and test.labels.min() == 0 and test.labels.max() == 9
    assert train.classes == test.classes == load_digits().classes == [str(i) for i in range(10)]
    assert set(np.bincount(test.labels)) and np.bincount(test.labels).min() > 100


def test_usps_h5_reader_on_a_tiny_file(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is the optional extra transferkit[data]")
    rng = np.random.default_rng(0)
    path = tmp_path / "usps" / "usps.h5"
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f["train/data"] = rng.random((6, 256)).astype(np.float32)
        f["train/target"] = np.array([0, 1, 2, 9, 9, 3], np.int32)
        f["test/data"] = np.ones((2, 256), np.float32)
        f["test/target"] = np.array([5, 7], np.int32)
    images, labels = read_usps_h5(path, "train")
    assert images.shape == (6, 16, 16) and images.dtype == np.uint8 and labels.tolist() == [0, 1, 2, 9, 9, 3]
    test = load_dataset("usps:test", root=tmp_path, download=False)
    assert len(test) == 2 and (test.images == 255).all() and test.classes[test.labels[1]] == "7"
    with pytest.raises(DataError, match="'val/data'"):
        read_usps_h5(path, "val")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["train/data"] = np.full((2, 256), 2.0, np.float32)
        f["train/target"] = np.zeros(2, np.int32)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        read_usps_h5(tmp_path / "bad.h5", "train")


def test_usps_without_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    (tmp_path / "x.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"pip install transferkit\[data\]"):
        read_usps_h5(tmp_path / "x.h5")


# -- MNIST ---------------------------------------------------------------------------------------------------

def _idx(images: np.ndarray) -> bytes:
    magic = 2051 if images.ndim == 3 else 2049
    return b"".join(int(v).to_bytes(4, "big") for v in (magic, *images.shape)) + images.astype(np.uint8).tobytes()


def test_mnist_by_name_and_its_usps_pair():
    _shared("mnist/t10k-images-idx3-ubyte.gz")
    test = load_dataset("mnist:test")
    assert test.images.shape == (10000, 28, 28) and test.images.dtype == np.uint8
    assert test.labels[:5].tolist() == [7, 2, 1, 0, 4]                      # the official file's first digits
    assert test.classes == load_digits().classes and np.bincount(test.labels).min() > 800
    assert test.images[0].mean() < 64 < test.images.max()                   # white ink on black, as USPS
    _shared("usps/usps.h5")
    src, tgt = paired_domains(test, "usps:test", size=28)
    assert tgt.images.shape == (2007, 28, 28) and src.classes == tgt.classes


def test_mnist_idx_reader_on_tiny_files(tmp_path):
    (tmp_path / "mnist").mkdir()
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(_idx(np.array([3, 9])))  # plain, not gzipped
    ds = load_dataset("mnist:test", root=tmp_path, download=False)
    np.testing.assert_array_equal(ds.images, images)
    assert ds.labels.tolist() == [3, 9] and ds.classes[ds.labels[1]] == "9"
    (tmp_path / "short").write_bytes(_idx(images)[:-5])
    with pytest.raises(DataError, match=r"short: the header announces \(2, 3, 4\).*truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"not an idx file")
    with pytest.raises(DataError, match="text: not an unsigned-byte IDX file"):
        read_idx(tmp_path / "text")
    with pytest.raises(DataError, match="mnist/train-images-idx3-ubyte.gz"):
        load_dataset("mnist:train", root=tmp_path, download=False)


# -- digits <-> USPS ----------------------------------------------------------------------------------------

def test_paired_domains_digits_usps():
    _shared("usps/usps.h5")
    src, tgt = paired_domains("digits", "usps:test", size=16)
    assert src.images.shape == (1797, 16, 16) and tgt.images.shape == (2007, 16, 16)
    assert src.classes == tgt.classes and set(src.domains) == {"digits"} and set(tgt.domains) == {"usps-test"}


def test_paired_domains_resamples_reorders_and_refuses_other_classes():
    a = from_arrays(np.zeros((4, 8, 8), np.uint8), [0, 1, 2, 0], ["0", "1", "2"], name="a")
    b = from_arrays(np.full((3, 12, 12), 255, np.uint8), [0, 1, 0], ["0", "7"], name="b")
    with pytest.raises(DataError, match=r"only in the source \(a\): \['1', '2'\], only in the target \(b\): \['7'\]"):
        paired_domains(a, b)
    c = from_arrays(np.full((3, 12, 12), 255, np.uint8), [0, 1, 2], ["2", "1", "0"], name="c")
    _, t = paired_domains(a, c)  # the same classes in another order: relabelled to the source's order
    assert t.classes == ["0", "1", "2"] and t.labels.tolist() == [2, 1, 0]
    d = from_arrays(np.full((3, 12, 12), 255, np.uint8), [0, 1, 2], ["0", "1", "2"], name="d")
    s, t = paired_domains(a, d)  # default: the larger size
    assert s.images.shape == (4, 12, 12) and t.images.shape == (3, 12, 12) and (t.images == 255).all()


def test_remote_fallbacks_are_used_without_a_local_copy(tmp_path, monkeypatch):
    """No local copy: Omniglot and USPS come from their downloaders (stubbed here: no network in tests)."""
    from transferkit.data.real import omniglot, usps

    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path / "empty"))
    calls = []

    def fake_download(split, folder):
        calls.append(split)
        return _tiny_omniglot_zip(tmp_path / f"{folder}.zip", folder)

    monkeypatch.setattr(omniglot, "_download", fake_download)
    ds = load_dataset("omniglot:background")
    assert calls == ["background"] and ds.num_classes == 4 and len(ds) == 12

    def fake_torchvision(split, root, download):
        assert download and split == "test"
        return np.zeros((3, 16, 16), np.uint8), np.array([1, 2, 3])

    monkeypatch.setattr(usps, "_torchvision", fake_torchvision)
    u = load_dataset("usps:test")
    assert len(u) == 3 and u.classes == [str(i) for i in range(10)]
