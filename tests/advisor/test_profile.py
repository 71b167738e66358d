"""Dataset profile: counts, imbalance, sizes/channels, exact duplicates."""
import shutil

import numpy as np
import pytest
from PIL import Image

from transferkit.advisor import profile_dataset
from transferkit.data import from_folder


def test_digits_profile(digits):
    p = profile_dataset(digits)
    assert (p.n_images, p.n_classes, p.min_per_class, p.max_per_class) == (1797, 10, 174, 183)
    assert p.median_per_class == pytest.approx(180.5)
    assert p.sizes == {"8x8": 1797} and p.channels == {"L": 1797}
    assert p.regime == "plenty" and p.imbalance_ratio == pytest.approx(183 / 174)
    assert p.to_dict()["regime"] == "plenty"


def test_folder_profile_finds_duplicates_sizes_and_imbalance(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog <b>").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)).save(tmp_path / "cat" / f"c{i}.png")
    Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp_path / "dog <b>" / "d0.png")
    shutil.copy(tmp_path / "cat" / "c0.png", tmp_path / "cat" / "c0_copy.png")       # same class
    shutil.copy(tmp_path / "cat" / "c1.png", tmp_path / "dog <b>" / "d1.png")        # conflicting labels
    p = profile_dataset(from_folder(tmp_path))
    assert p.per_class == {"cat": 7, "dog <b>": 2}
    assert p.min_per_class == 2 and p.imbalance_ratio == pytest.approx(3.5)
    assert p.sizes == {"16x20": 8, "32x32": 1} and p.channels == {"RGB": 8, "L": 1}
    assert p.n_duplicates == 2 and len(p.duplicate_groups) == 2
    assert len(p.conflicting_duplicates) == 1 and "dog <b>" in " ".join(p.conflicting_duplicates[0])
    assert any("duplicates" in line for line in p.summary())
