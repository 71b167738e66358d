"""Built-in domain shifts: turn a dataset into a shifted target domain for demos and tests.

``make_shift(ds, kind)`` returns a new :class:`ImageDataset` (uint8 arrays, same labels and classes) whose
``domains`` column names the shift. The kinds mirror classic domain-adaptation benchmarks:

``night``      darker, lower contrast, a cold tint on colour images, Gaussian sensor noise and a little blur
               (day -> night cameras; the photometric shifts of Hendrycks & Dietterich's ImageNet-C, 2019).
``texture``    the image blended over coloured natural-looking backgrounds, as MNIST-M does
               (Ganin & Lempitsky 2015: ``|background - digit|`` per channel); backgrounds are procedural
               fractal-noise textures (no download), one random crop per image. Output is RGB.
``rotation``   rotated by ``angle`` degrees (default 45) +/- ``jitter`` (default 10), bilinear, zero fill
               (the rotated-MNIST shift of Ghifary et al. 2015).
``inversion``  ``255 - x`` (light-on-dark <-> dark-on-light, e.g. MNIST -> inverted MNIST).

Every shift is seeded (same ``seed`` -> same images) and works on array datasets and on file datasets (files
are decoded once; with ``out_dir`` the shifted images are written as PNGs and a file dataset is returned).

Example:
    >>> from transferkit.data import load_digits
    >>> night = make_shift(load_digits(), "night", seed=0)
    >>> night.domains[0], night.images.shape
    ('night', (1797, 8, 8))
    >>> source, target = domain_pair(load_digits(), "texture", seed=0)   # disjoint halves, labels kept
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, TransferkitError, check_choice, check_range
from .dataset import ImageDataset

SHIFTS = {
    "night": "darker, lower contrast, cold tint, sensor noise",
    "texture": "blended over procedural natural-looking colour backgrounds (MNIST-M style), RGB output",
    "rotation": "rotated by `angle` +/- `jitter` degrees",
    "inversion": "255 - x",
}


def list_shifts() -> dict[str, str]:
    """Shift names and one-line descriptions."""
    return dict(SHIFTS)


def make_shift(ds: ImageDataset, kind: str, *, seed: int = 0, severity: float = 1.0, angle: float = 45.0,
               jitter: float = 10.0, out_dir=None, name: str | None = None) -> ImageDataset:
    """A copy of ``ds`` moved to the ``kind`` domain (see the module docstring).

    Args:
        ds: an ImageDataset (arrays (N, H, W) / (N, H, W, C) uint8, or files of one size unless ``out_dir``).
        kind: 'night', 'texture', 'rotation' or 'inversion'.
        seed: seeds the noise, textures, crops and angles.
        severity: in (0, 2]; scales the strength of 'night' (darkening, noise) and 'texture' (blend weight).
        angle, jitter: rotation in degrees ('rotation' only).
        out_dir: write the shifted images as ``out_dir/<class>/<i>.png`` and return a file dataset.
        name: the new dataset's name (default ``"<ds.name>-<kind>"``).

    Returns a new ImageDataset with the same labels, classes, extra columns and semantics, and
    ``domains`` set to ``kind`` for every image.
    """
    check_choice("make_shift", "kind", kind, SHIFTS)
    check_range("make_shift", "severity", severity, 0, 2, low_open=True)
    if not isinstance(ds, ImageDataset):
        raise TransferkitError(f"make_shift expects an ImageDataset; got {type(ds).__name__}.")
    images = _as_array(ds, out_dir is not None)
    rng = np.random.default_rng(seed)
    if isinstance(images, list):  # files of different sizes, written one by one
        shifted = [_apply(im[None], kind, rng, severity, angle, jitter)[0] for im in images]
    else:
        shifted = _apply(images, kind, rng, severity, angle, jitter)
    name = name or f"{ds.name or 'data'}-{kind}"
    domains = np.full(len(ds), kind)
    common = dict(domains=domains, extra=dict(ds.extra), semantics=ds.semantics, name=name)
    if out_dir is None:
        return ImageDataset(shifted, ds.labels.copy(), ds.classes, **common)
    return ImageDataset(_write_pngs(shifted, ds, Path(out_dir)), ds.labels.copy(), ds.classes,
                        root=str(out_dir), **common)


def domain_pair(ds: ImageDataset, kind: str, *, target_fraction: float = 0.5, seed: int = 0, **shift_kwargs):
    """(source, target): a stratified split of ``ds`` into disjoint halves; the target half is shifted.

    The source keeps its images with ``domains='source'``; the target is ``make_shift(..., kind)``. Labels are
    kept on both (hide them with ``target.unlabelled()``; keep a labelled copy for evaluation only).
    """
    from .splits import stratified_split

    check_range("domain_pair", "target_fraction", target_fraction, 0, 1, low_open=True)
    source, target = stratified_split(ds, target_fraction, seed=seed)
    source.domains = np.full(len(source), "source")
    return source, make_shift(target, kind, seed=seed, **shift_kwargs)


# -- the shifts ------------------------------------------------------------------------------------------

def _apply(images: np.ndarray, kind: str, rng: np.random.Generator, severity: float, angle: float,
           jitter: float) -> np.ndarray:
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    gray = x.dim() == 3
    x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2)  # (N, C, H, W)
    if kind == "inversion":
        y = 1.0 - x
    elif kind == "night":
        y = _night(x, rng, severity)
    elif kind == "rotation":
        y = _rotate(x, rng, angle, jitter)
    else:
        y = _texture(x, rng, severity)
    y = (y.clamp_(0, 1) * 255.0).round_().to(torch.uint8)
    if y.shape[1] == 1:
        return y[:, 0].numpy()
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def _night(x: torch.Tensor, rng, severity: float) -> torch.Tensor:
    """gamma 1.6, brightness x0.45, contrast x0.6 around the mean, cold tint, noise sigma 0.06 (at severity 1)."""
    s = float(severity)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    x = x.pow(1.0 + 0.6 * s)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1.0 - 0.4 * min(s, 1.5))
    x = x * (1.0 - 0.55 * min(s, 1.5))
    if x.shape[1] == 3:
        x = x * torch.tensor([0.8, 0.9, 1.1]).view(1, 3, 1, 1)
    if min(x.shape[-2:]) >= 16:  # a slight blur (long exposure); skipped for tiny images
        k = torch.tensor([0.25, 0.5, 0.25])
        k2 = (k[:, None] * k[None]).view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1)
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=x.shape[1])
    noise = torch.randn(x.shape, generator=g) * (0.06 * s)
    return x + noise


def _rotate(x: torch.Tensor, rng, angle: float, jitter: float) -> torch.Tensor:
    n = x.shape[0]
    theta_deg = angle + rng.uniform(-jitter, jitter, size=n) if jitter else np.full(n, angle)
    t = torch.from_numpy(np.deg2rad(theta_deg)).float()
    cos, sin = torch.cos(t), torch.sin(t)
    zero = torch.zeros_like(cos)
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (N, 2, 3)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def procedural_textures(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` RGB fractal-noise textures (n, 3, size, size) in [0, 1]: 5 octaves of bicubic value noise,
    each channel a random colour mix, plus oriented stripes on some (wood/fabric-like)."""
    out = torch.zeros(n, 3, size, size)
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    for octave in range(5):
        cells = 2 ** (octave + 2)
        noise = torch.rand(n, 3, cells, cells, generator=g)
        out += F.interpolate(noise, size=(size, size), mode="bicubic", align_corners=False) * (0.55 ** octave)
    out = (out - out.amin(dim=(2, 3), keepdim=True)) / (out.amax(dim=(2, 3), keepdim=True) - out.amin(dim=(2, 3), keepdim=True) + 1e-6)
    mix = torch.rand(n, 3, 3, generator=g) + 0.2 * torch.eye(3)
    out = torch.einsum("nij,njhw->nihw", mix / mix.sum(2, keepdim=True), out)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ang = torch.rand(n, generator=g) * np.pi
    freq = 4 + 12 * torch.rand(n, generator=g)
    stripes = torch.sin((xx[None] * torch.cos(ang)[:, None, None] + yy[None] * torch.sin(ang)[:, None, None])
                        * freq[:, None, None] * 2 * np.pi)
    has = (torch.rand(n, generator=g) < 0.4).float()[:, None, None, None]
    out = out * (1 - 0.25 * has) + 0.25 * has * (stripes[:, None] * 0.5 + 0.5)
    return out.clamp_(0, 1)


def _texture(x: torch.Tensor, rng, severity: float) -> torch.Tensor:
    """MNIST-M: out = |background - image| per channel (bright strokes invert the background under them)."""
    n, c, h, w = x.shape
    bank = procedural_textures(64, 2 * max(h, w), rng)
    pick = rng.integers(0, len(bank), size=n)
    top = rng.integers(0, bank.shape[2] - h + 1, size=n)
    left = rng.integers(0, bank.shape[3] - w + 1, size=n)
    bg = torch.stack([bank[p, :, t:t + h, l:l + w] for p, t, l in zip(pick, top, left)])
    fg = x.expand(-1, 3, -1, -1) if c == 1 else x
    weight = min(1.0, 0.5 + 0.5 * float(severity))  # severity 1 -> the full MNIST-M blend
    return (1 - weight) * fg + weight * (bg - fg).abs()


# -- files -------------------------------------------------------------------------------------------------

def _as_array(ds: ImageDataset, allow_ragged: bool):
    if ds.is_array:
        return ds.images
    if len(ds) == 0:
        raise DataError(f"make_shift: {ds.name or 'the dataset'} is empty.")
    arrays = []
    for i in range(len(ds)):
        im = ds.load_image(i, channels=3)
        a = np.asarray(im)
        if arrays and a.shape != arrays[0].shape and not allow_ragged:
            raise DataError(
                f"make_shift: {ds.describe(i)} is {a.shape[1]}x{a.shape[0]} but {ds.describe(0)} is "
                f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; images of different sizes need out_dir=... "
                f"(shifted images are then written one by one).")
        arrays.append(a)
    if allow_ragged and len({a.shape for a in arrays}) > 1:
        return arrays
    return np.stack(arrays)


def _write_pngs(images, ds: ImageDataset, out_dir: Path) -> list[str]:
    from PIL import Image

    paths = []
    for i, im in enumerate(images):
        label = int(ds.labels[i])
        sub = out_dir / (_safe(ds.classes[label]) if label >= 0 else "_unlabelled")
        sub.mkdir(parents=True, exist_ok=True)
        p = sub / f"{i:06d}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_. " else "_" for ch in name) or "_"
