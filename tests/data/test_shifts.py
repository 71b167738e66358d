"""The built-in shift generator: shapes, seeding, the four shifts' defining properties, files, errors."""
import numpy as np
import pytest

from transferkit.data import ImageDataset, from_folder
from transferkit.data.shifts import domain_pair, list_shifts, make_shift
from transferkit.errors import TransferkitError


@pytest.mark.parametrize("kind", ["night", "texture", "rotation", "inversion"])
def test_every_shift_keeps_labels_and_names_the_domain(digits, kind):
    out = make_shift(digits, kind, seed=0)
    assert isinstance(out, ImageDataset) and out.is_array and out.images.dtype == np.uint8
    assert len(out) == len(digits) and out.classes == digits.classes
    np.testing.assert_array_equal(out.labels, digits.labels)
    assert set(out.domains.tolist()) == {kind} and out.name == f"digits-{kind}"
    expected = (len(digits), 8, 8, 3) if kind == "texture" else (len(digits), 8, 8)
    assert out.images.shape == expected
    again = make_shift(digits, kind, seed=0)
    np.testing.assert_array_equal(out.images, again.images)  # seeded


def test_night_is_darker_lower_contrast_and_noisy(digits):
    a = digits.images.astype(float)
    n = make_shift(digits, "night", seed=0).images.astype(float)
    assert n.mean() < 0.6 * a.mean()
    assert n.std() < 0.7 * a.std()
    other = make_shift(digits, "night", seed=1).images
    assert (other != n).mean() > 0.2  # sensor noise depends on the seed


def test_inversion_and_rotation_are_exact_where_they_should_be(digits):
    inv = make_shift(digits, "inversion").images
    np.testing.assert_array_equal(inv, 255 - digits.images)
    rot = make_shift(digits, "rotation", angle=180, jitter=0).images.astype(int)
    np.testing.assert_allclose(rot, digits.images[:, ::-1, ::-1].astype(int), atol=1)
    rot45 = make_shift(digits, "rotation", seed=0).images
    assert np.abs(rot45.astype(int) - digits.images).mean() > 20


def test_texture_is_an_mnist_m_blend_over_coloured_backgrounds(digits):
    t = make_shift(digits, "texture", seed=0).images.astype(float)
    assert t.shape[-1] == 3
    assert t[..., 0].std() > 0 and np.abs(t[..., 0] - t[..., 1]).mean() > 5  # colour, not grey
    # strokes (bright in the source) invert the background: |bg - 1| differs from the background
    bright = digits.images > 200
    dark = digits.images < 20
    assert abs(t[bright].mean() - t[dark].mean()) > 10


def test_files_in_files_out(tmp_path, digits):
    from PIL import Image

    for i in range(6):
        d = tmp_path / "src" / str(digits.labels[i])
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.images[i]).resize((16, 16)).save(d / f"{i}.png")
    ds = from_folder(tmp_path / "src")
    arr = make_shift(ds, "inversion")
    assert arr.images.shape == (6, 16, 16, 3)
    files = make_shift(ds, "night", out_dir=tmp_path / "night", seed=0)
    assert not files.is_array and all(p.endswith(".png") for p in files.images)
    back = from_folder(tmp_path / "night")
    assert sorted(back.classes) == sorted(ds.classes) and len(back) == 6


def test_domain_pair_is_disjoint_and_stratified(digits):
    src, tgt = domain_pair(digits, "rotation", seed=0)
    assert len(src) + len(tgt) == len(digits)
    assert set(src.domains.tolist()) == {"source"} and set(tgt.domains.tolist()) == {"rotation"}
    assert min(tgt.class_counts().values()) > 50


def test_errors_name_the_argument(digits):
    with pytest.raises(TransferkitError, match="'kind' parameter of make_shift must be one of .*'night'.*got 'fog'"):
        make_shift(digits, "fog")
    with pytest.raises(TransferkitError, match="severity"):
        make_shift(digits, "night", severity=5)
    assert set(list_shifts()) == {"night", "texture", "rotation", "inversion"}
