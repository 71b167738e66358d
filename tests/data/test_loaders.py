import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.data import (EpisodeSampler, ImageTransform, class_split, from_arrays, from_csv, from_folder,
                              k_per_class, load_dataset, load_digits, stratified_split)
from transferkit.errors import DataError, ImageLoadError


def _folder(root, classes=("cat", "dog"), n=3, size=(20, 16), mode="RGB"):
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.new(mode, size, color=(i * 40) if mode == "L" else (i * 40, 10, 200)).save(root / c / f"{i}.png")
    return root


def test_folder_loader_layout_and_items(tmp_path):
    ds = from_folder(_folder(tmp_path / "imgs"))
    assert ds.classes == ["cat", "dog"] and len(ds) == 6
    assert ds.class_counts() == {"cat": 3, "dog": 3}
    x, y = ds.with_transform(ImageTransform({"input_size": (3, 32, 32)}))[4]
    assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1 and y == 1


def test_grayscale_to_rgb_and_rgb_to_grayscale(tmp_path):
    gray = from_folder(_folder(tmp_path / "g", mode="L"))
    assert gray.with_transform(ImageTransform({"input_size": (3, 24, 24)}))[0][0].shape == (3, 24, 24)
    rgb = from_folder(_folder(tmp_path / "c"))
    assert rgb.with_transform(ImageTransform({"input_size": (1, 24, 24)}))[0][0].shape == (1, 24, 24)


def test_corrupt_image_named_or_skipped(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ImageLoadError, match="broken.png"):
        from_folder(root)
    with pytest.warns(UserWarning, match="broken.png"):
        ds = from_folder(root, on_error="skip")
    assert len(ds) == 6


def test_empty_class_folder_is_named(tmp_path):
    root = _folder(tmp_path / "imgs")
    (root / "bird").mkdir()
    with pytest.raises(DataError, match="bird"):
        from_folder(root)


def test_csv_manifest_with_domain_and_extra_columns(tmp_path):
    _folder(tmp_path / "imgs")
    (tmp_path / "m.csv").write_text("path,label,domain,size\nimgs/cat/0.png,cat,day,1.5\nimgs/dog/1.png,dog,night,\n")
    ds = from_csv(tmp_path / "m.csv")
    assert ds.classes == ["cat", "dog"] and list(ds.domains) == ["day", "night"]
    assert ds.extra["size"][0] == 1.5 and np.isnan(ds.extra["size"][1])


def test_csv_refuses_paths_escaping_root_and_names_missing_columns(tmp_path):
    _folder(tmp_path / "imgs")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "m.csv").write_text("path,label\n../imgs/cat/0.png,cat\n")
    with pytest.raises(DataError, match="outside the root"):
        from_csv(tmp_path / "sub" / "m.csv")
    (tmp_path / "bad.csv").write_text("file,label\nimgs/cat/0.png,cat\n")
    with pytest.raises(DataError, match="missing column 'path'"):
        from_csv(tmp_path / "bad.csv")


def test_arrays_and_digits():
    ds = from_arrays(np.random.default_rng(0).random((10, 8, 8)), np.arange(10) % 2)
    assert ds.images.dtype == np.uint8 and ds.classes == ["0", "1"]
    d = load_digits()
    assert len(d) == 1797 and d.num_classes == 10 and d.images.shape == (1797, 8, 8)
    with pytest.raises(DataError, match="outside the class list"):
        from_arrays(np.zeros((2, 4, 4), np.uint8), [0, 5], classes=["a", "b"])


def test_vectorised_array_batches_match_per_item_transform(digits):
    t = ImageTransform({"input_size": (3, 32, 32)})
    ds = digits.with_transform(t)
    (batch, labels), = ds.__getitems__([3, 7])
    assert batch.shape == (2, 3, 32, 32)
    assert torch.allclose(batch[1], ds[7][0], atol=2 / 255)
    assert labels.tolist() == [int(digits.labels[3]), int(digits.labels[7])]


def test_fashion_mnist_loader(fashion):
    assert len(fashion) == 10_000 and fashion.num_classes == 10 and fashion.images.shape[1:] == (28, 28)
    assert load_dataset("fashion-mnist:test").fingerprint() == fashion.fingerprint()


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    from transferkit.data import loaders

    monkeypatch.setattr(loaders, "FASHION_SYSTEM_DIR", str(tmp_path / "none"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        loaders.load_fashion_mnist("train", download=False)


def test_splits(digits):
    tr, te = stratified_split(digits, 0.25, seed=1)
    assert len(tr) + len(te) == len(digits)
    assert np.ptp(np.bincount(te.labels)) <= 4  # stratified: 43-46 per class
    sub = k_per_class(digits, 5, seed=0)
    assert np.bincount(sub.labels).tolist() == [5] * 10
    a, b = class_split(digits, ["1", "3"])
    assert a.classes == ["1", "3"] and set(a.labels) == {0, 1} and b.num_classes == 8
    with pytest.raises(DataError, match="at least 2 images per class"):
        stratified_split(from_arrays(np.zeros((3, 4, 4), np.uint8), [0, 0, 1]), 0.5)
    with pytest.raises(DataError, match=r"needs 200 images per class"):
        k_per_class(digits, 200)


def test_episode_sampler_validates_and_is_seeded(digits):
    eps = list(EpisodeSampler(digits.labels, n_way=5, k_shot=1, q_queries=3, episodes=4, seed=3))
    again = list(EpisodeSampler(digits.labels, n_way=5, k_shot=1, q_queries=3, episodes=4, seed=3))
    assert all(np.array_equal(a.query, b.query) for a, b in zip(eps, again))
    e = eps[0]
    assert e.support.shape == (5,) and e.query.shape == (15,) and not set(e.support) & set(e.query)
    with pytest.raises(DataError, match="only 0 of 10 classes"):
        EpisodeSampler(digits.labels, n_way=5, k_shot=100, q_queries=100)
