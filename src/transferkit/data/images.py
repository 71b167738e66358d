"""Reading image files into PIL images of a known mode, with errors that name the file."""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError, ImageLoadError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def open_image(path, channels: int = 3) -> Image.Image:
    """Open ``path`` fully decoded as 'RGB' (``channels=3``) or 'L' (``channels=1``).

    Handles 16-bit, palette, CMYK, RGBA/LA and grayscale files. Corrupt, truncated, empty,
    non-image and decompression-bomb files raise :class:`ImageLoadError` naming the path.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return to_mode(im, channels)
    except FileNotFoundError:
        raise ImageLoadError(f"Image file not found: {path}") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"Cannot read image {path}: not an image file (or an unsupported format).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(
            f"Cannot read image {path}: it is too large ({e}). Downscale it, or raise "
            f"PIL.Image.MAX_IMAGE_PIXELS if you trust the file.") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason:
            reason = "the file is truncated"
        raise ImageLoadError(f"Cannot read image {path}: {reason}.") from None


RESAMPLE = {"box": Image.Resampling.BOX, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
            "lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}


def preprocess(image: Image.Image, steps: dict) -> Image.Image:
    """Redo a loader's preprocessing on one decoded image: resize to ``steps["size"]`` ([H, W]) with
    ``steps["resample"]`` (default 'box'), then invert (``steps["invert"]``: 255 - pixel). Unknown keys are an
    error, so a model saved by a newer version never silently skips a step."""
    unknown = sorted(set(steps) - {"size", "resample", "invert"})
    if unknown:
        raise DataError(f"Unknown preprocessing step(s) {unknown}; this transferkit knows size, resample and invert.")
    size = steps.get("size")
    if size is not None and tuple(image.size) != (int(size[1]), int(size[0])):
        image = image.resize((int(size[1]), int(size[0])), RESAMPLE[steps.get("resample", "box")])
    if steps.get("invert"):
        image = Image.eval(image, lambda v: 255 - v)
    return image


def to_mode(im: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to 'RGB' (3 channels) or 'L' (1 channel)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        im = Image.fromarray(((arr - lo) * scale).astype(np.uint8), mode="L")
    elif im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    target = "RGB" if channels == 3 else "L"
    return im if im.mode == target else im.convert(target)


def array_to_chw(arr: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) uint8."""
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4:
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    raise DataError(f"Image arrays must be (N, H, W) or (N, H, W, C); got shape {arr.shape}.")
