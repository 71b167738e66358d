"""The bad-input survey (issue 8): each row is an input and the error text the user must get.

Every row builds its input in a temporary folder and runs it through the public API. Rows whose
``error`` is None are inputs transferkit must accept (16-bit, palette, CMYK, RGBA images...); their
``check`` asserts what comes out. No row may end in a bare exception from inside a library: an expected
error is a :class:`transferkit.errors.TransferkitError` (or subclass) whose message matches ``match``
(a regular expression, usually naming the file, the argument or the allowed values).

Rows that exercise strategies other modules provide (domain adaptation, zero-shot, distillation,
few-shot, feature probes) skip with a reason while their module is absent and run once it lands.
"""
from __future__ import annotations

import importlib
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from transferkit.data import (EpisodeSampler, ImageDataset, from_arrays, from_csv, from_folder, k_per_class,
                              load_dataset, open_image, stratified_split)
from transferkit.errors import DataError, ImageLoadError, TransferkitError


# -- helpers building inputs --------------------------------------------------------------------------

def _png(path: Path, mode="RGB", size=(12, 10), color=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if color is not None else (0 if mode in ("L", "P", "1") else (10,) * len(mode))).save(path)
    return path


def _noise_png(path: Path, size=(16, 16), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def _huge_png_header(path: Path, width=100_000, height=100_000) -> Path:
    """A valid PNG signature + IHDR claiming 10^10 pixels (a decompression bomb), without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def _folder(root: Path, spec: dict[str, int]) -> Path:
    """root/<class>/<i>.png with ``spec[class]`` random images each."""
    for k, (cls, n) in enumerate(spec.items()):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _noise_png(root / cls / f"{i}.png", seed=k * 100 + i)
    return root


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _tiny_arrays(n_per_class=6, classes=3, shape=(8, 8), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * classes, *shape), dtype=np.uint8)
    labels = np.repeat(np.arange(classes), n_per_class)
    return images, labels


def _finetune(**kw):
    from transferkit.strategies.reuse.finetune import FineTune

    params = dict(backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=32, progress=False)
    params.update(kw)
    return FineTune(**params)


def _strategy_from_module(module: str, **params):
    """The first registered strategy defined in ``transferkit.strategies.<module>``, a module or a family package
    (skip if absent)."""
    try:
        mod = importlib.import_module(f"transferkit.strategies.{module}")
    except ModuleNotFoundError as e:
        if e.name == f"transferkit.strategies.{module}":
            pytest.skip(f"transferkit.strategies.{module} does not exist yet; this row runs once it lands.")
        raise
    from transferkit.strategies import list_strategies

    classes = [c for c in list_strategies().values()
               if c.__module__ == mod.__name__ or c.__module__.startswith(mod.__name__ + ".")]
    if not classes:
        pytest.skip(f"transferkit.strategies.{module} registers no strategy yet.")
    cls = classes[0]
    valid = set(cls.param_names())
    base = dict(backbone="builtin:micro-cnn", pretrained=False, epochs=1, batch_size=32, progress=False)
    base.update(params)
    return cls(**{k: v for k, v in base.items() if k in valid})


_FITTED = {}


def _fitted_digits_model(digits):
    """A FineTune fitted once (1 epoch, 200 digits) for rows that need a trained model."""
    if "m" not in _FITTED:
        _FITTED["m"] = _finetune().fit(digits.subset(np.arange(200)))
    return _FITTED["m"]


def _nan_backbone():
    from transferkit.backbones import create_backbone

    bb = create_backbone("builtin:micro-cnn", pretrained=False)
    with torch.no_grad():
        next(bb.parameters()).fill_(float("nan"))
    return bb


# -- the table ----------------------------------------------------------------------------------------

@dataclass
class Row:
    id: str
    run: Callable  # (tmp_path, digits) -> result
    error: type | None  # expected exception class, or None when the input must be accepted
    match: str = ""  # regex the message must match; "{tmp}" is replaced by the escaped tmp_path
    check: Callable | None = None  # (result, tmp_path) -> None, for accepted inputs


def _w(path_fn, then):
    return lambda tmp, digits: then(path_fn(tmp), tmp, digits)


def _mode_png(mode, tmp, name, **kw):
    p = tmp / name
    if mode == "I;16":
        arr = (np.arange(16 * 12, dtype=np.uint16).reshape(12, 16) * 300).astype(np.uint16)
        Image.fromarray(arr).save(p)  # uint16 -> mode I;16
    elif mode == "P":
        im = Image.new("P", (16, 12))
        im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        im.putpixel((0, 0), 1)
        im.save(p)
    elif mode == "CMYK":
        Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(p)  # pure red in CMYK, as JPEG
    elif mode == "RGBA":
        im = Image.new("RGBA", (16, 12), (0, 0, 255, 255))
        im.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent pixel
        im.save(p)
    elif mode == "LA":
        Image.new("LA", (16, 12), (50, 0)).save(p)
    return p


def _check_rgb(expect_size=(16, 12)):
    def check(im, tmp):
        assert isinstance(im, Image.Image) and im.mode == "RGB" and im.size == expect_size
    return check


def _csv_rows(tmp: Path, rows: list[str]) -> Path:
    """tmp/m.csv (path,label) over images a.png, b.png, c.png that exist."""
    for i, n in enumerate("abc"):
        _noise_png(tmp / f"{n}.png", seed=i)
    return _csv(tmp / "m.csv", "path,label", rows)


def _folder_with_link(tmp: Path, link, target):
    """tmp/f with classes a, b (2 images each) and one symbolic link; (dataset, warning texts)."""
    root = _folder(tmp / "f", {"a": 2, "b": 2})
    link(root).symlink_to(target(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = from_folder(root)
    return ds, [str(w.message) for w in caught]


def _skipped(out, n_images: int, pattern: str):
    ds, messages = out
    tmp = re.escape(str(Path(ds.root).parent))
    assert len(ds) == n_images, f"expected {n_images} images, got {len(ds)}: {ds.images}"
    assert any(re.search(pattern.replace("{tmp}", tmp), m) for m in messages), f"no warning {pattern!r} in {messages}"


def _csv_outside(tmp):
    _noise_png(tmp / "outside.png")
    root = tmp / "root"
    _noise_png(root / "a.png")
    return _csv(root / "m.csv", "path,label", ["a.png,x", "../outside.png,y"])


def _worker_error(tmp, digits):
    """A corrupt file read in a DataLoader worker process (num_workers=1)."""
    from transferkit.data import ImageTransform
    from transferkit.engine import make_loader

    _folder(tmp / "w", {"a": 2, "b": 2})
    (tmp / "w" / "b" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = from_folder(tmp / "w", validate=False).with_transform(ImageTransform({"input_size": (3, 8, 8)}))
    for _ in make_loader(ds, 4, num_workers=1):
        pass


def _semantics_missing_class(tmp, digits):
    images, labels = _tiny_arrays(classes=3)
    return ImageDataset(images, labels, ["cat", "dog", "eel"],
                        semantics={"attributes": np.eye(2, 4), "attribute_names": list("abcd")})


def _named_semantics_missing_class(tmp, digits):
    """A data.semantics dict (rows keyed by its own class list) that lacks one class of the data."""
    images, labels = _tiny_arrays(classes=3)
    return ImageDataset(images, labels, ["cat", "dog", "eel"],
                        semantics={"classes": ["cat", "dog", "owl"], "attributes": np.eye(3, 4)})


def _descriptions_missing_class(tmp, digits):
    images, labels = _tiny_arrays(classes=3)
    return ImageDataset(images, labels, ["cat", "dog", "eel"],
                        semantics={"descriptions": {"cat": ["a small feline"], "dog": ["a loyal canine"]}})


def _zeroshot_missing_class(tmp, digits):
    strat = _strategy_from_module("scarce.bilinear")
    images, labels = _tiny_arrays(classes=3, shape=(16, 16))
    ds = ImageDataset.__new__(ImageDataset)  # bypass validation to reach the strategy's own check
    ImageDataset.__init__(ds, images, labels, ["cat", "dog", "eel"])
    ds.semantics = {"attributes": np.eye(2, 4), "attribute_names": list("abcd")}
    return strat.fit(ds)


def _da_mismatched_domains(tmp, digits):
    strat = _strategy_from_module("domain.cdan")
    source = digits.subset(np.arange(100))
    target = digits.subset(np.arange(100, 200), classes=[f"c{i}" for i in range(10)])
    return strat.fit(source, target=target)


def _distill_other_classes(tmp, digits):
    strat = _strategy_from_module("efficiency")
    teacher = _fitted_digits_model(digits)  # classes 0-9
    from transferkit.data import class_split

    train = class_split(digits.subset(np.arange(200)), ["0", "1", "2"])[0]  # classes 0-2 only
    return strat.set_params(**({"teacher": teacher} if "teacher" in strat.get_params() else {})).fit(
        train, **({} if "teacher" in strat.get_params() else {"teacher": teacher}))


def _fewshot_too_few(tmp, digits):
    strat = _strategy_from_module("scarce.maml", n_way=5, k_shot=5, q_queries=15, episodes=2)
    small = k_per_class(digits, 6, seed=0)  # 6 images per class < 5 + 15
    return strat.fit(small)


def _features_nan(tmp, digits):
    strat = _strategy_from_module("reuse.features", backbone=_nan_backbone())
    return strat.fit(digits.subset(np.arange(100)))


ROWS = [
    # --- image files --------------------------------------------------------------------------
    Row("corrupt-png", _w(lambda t: (t / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4) and t / "bad.png",
                          lambda p, t, d: open_image(p)),
        ImageLoadError, r"Cannot read image {tmp}/bad\.png"),
    Row("truncated-png", _w(lambda t: _noise_png(t / "trunc.png", (64, 64)),
                            lambda p, t, d: (p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), open_image(p))),
        ImageLoadError, r"{tmp}/trunc\.png.*truncated"),
    Row("truncated-jpeg", _w(lambda t: (Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
                                        .save(t / "trunc.jpg", quality=95), t / "trunc.jpg")[1],
                             lambda p, t, d: (p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), open_image(p))),
        ImageLoadError, r"{tmp}/trunc\.jpg.*truncated"),
    Row("zero-byte", _w(lambda t: (t / "empty.jpg").write_bytes(b"") or t / "empty.jpg", lambda p, t, d: open_image(p)),
        ImageLoadError, r"{tmp}/empty\.jpg: not an image file"),
    Row("text-with-jpg-extension", _w(lambda t: (t / "notes.jpg").write_text("hello, I am text\n" * 20) and t / "notes.jpg",
                                      lambda p, t, d: open_image(p)),
        ImageLoadError, r"{tmp}/notes\.jpg: not an image file"),
    Row("html-with-png-extension", _w(lambda t: (t / "page.png").write_text("<html><body>404</body></html>") and t / "page.png",
                                      lambda p, t, d: open_image(p)),
        ImageLoadError, r"{tmp}/page\.png: not an image file"),
    Row("missing-file", lambda t, d: open_image(t / "nope.png"), ImageLoadError, r"not found: {tmp}/nope\.png"),
    Row("directory-named-like-an-image", lambda t, d: ((t / "dir.png").mkdir(), open_image(t / "dir.png")),
        ImageLoadError, r"{tmp}/dir\.png"),
    Row("very-large-image", _w(lambda t: _huge_png_header(t / "huge.png"), lambda p, t, d: open_image(p)),
        ImageLoadError, r"{tmp}/huge\.png: it is too large.*MAX_IMAGE_PIXELS"),
    Row("16-bit-grayscale", lambda t, d: open_image(_mode_png("I;16", t, "g16.png")), None,
        check=lambda im, t: (im.mode == "RGB" and np.asarray(im).min() == 0 and np.asarray(im).max() == 255)
        or pytest.fail(f"16-bit image not rescaled to 0..255: {im.mode}, {np.asarray(im).min()}..{np.asarray(im).max()}")),
    Row("16-bit-as-1-channel", lambda t, d: open_image(_mode_png("I;16", t, "g16.png"), channels=1), None,
        check=lambda im, t: (im.mode == "L" and np.asarray(im).max() == 255) or pytest.fail(im.mode)),
    Row("palette", lambda t, d: open_image(_mode_png("P", t, "pal.png")), None,
        check=lambda im, t: (im.getpixel((0, 0)) == (0, 255, 0) and im.getpixel((1, 0)) == (255, 0, 0))
        or pytest.fail(f"palette colours lost: {im.getpixel((0, 0))}, {im.getpixel((1, 0))}")),
    Row("cmyk-jpeg", lambda t, d: open_image(_mode_png("CMYK", t, "cmyk.jpg")), None,
        check=lambda im, t: (im.mode == "RGB" and im.getpixel((5, 5))[0] > 200 and im.getpixel((5, 5))[1] < 60)
        or pytest.fail(f"CMYK red not red: {im.getpixel((5, 5))}")),
    Row("rgba-transparent-on-white", lambda t, d: open_image(_mode_png("RGBA", t, "rgba.png")), None,
        check=lambda im, t: (im.getpixel((0, 0)) == (255, 255, 255) and im.getpixel((1, 0)) == (0, 0, 255))
        or pytest.fail(f"alpha not composited on white: {im.getpixel((0, 0))}, {im.getpixel((1, 0))}")),
    Row("gray-alpha", lambda t, d: open_image(_mode_png("LA", t, "la.png")), None,
        check=lambda im, t: (im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)) or pytest.fail(str(im.getpixel((0, 0))))),
    # --- folders --------------------------------------------------------------------------------
    Row("folder-with-corrupt-file", lambda t, d: (_folder(t / "f", {"a": 2, "b": 2}),
                                                  (t / "f" / "b" / "1.png").write_bytes(b"junk"), from_folder(t / "f")),
        ImageLoadError, r"{tmp}/f/b/1\.png: not an image file.*on_error='skip'"),
    Row("folder-skip-corrupt-file", lambda t, d: (_folder(t / "f", {"a": 2, "b": 2}),
                                                  (t / "f" / "b" / "1.png").write_bytes(b"junk"),
                                                  from_folder(t / "f", on_error="skip"))[-1], None,
        check=lambda ds, t: (len(ds) == 3 and all("1.png" not in p or "/a/" in p for p in ds.images))
        or pytest.fail(f"bad file not dropped: {ds.images}")),
    Row("empty-class-folder", lambda t, d: (_folder(t / "f", {"a": 2, "b": 2}), (t / "f" / "empty").mkdir(),
                                            from_folder(t / "f")),
        DataError, r"Empty class folder\(s\).*{tmp}/f/empty"),
    Row("class-folder-with-only-non-images", lambda t, d: (_folder(t / "f", {"a": 2}), (t / "f" / "b").mkdir(),
                                                           (t / "f" / "b" / "readme.txt").write_text("x"), from_folder(t / "f")),
        DataError, r"Empty class folder\(s\).*{tmp}/f/b"),
    Row("no-class-folders", lambda t, d: (_noise_png(t / "flat" / "x.png"), from_folder(t / "flat")),
        DataError, r"{tmp}/flat has no class sub-folders"),
    Row("folder-not-found", lambda t, d: from_folder(t / "missing"), DataError, r"Image folder not found: {tmp}/missing"),
    Row("unknown-dataset-name", lambda t, d: load_dataset("imagenet-but-misspelt"), DataError,
        r"Unknown dataset 'imagenet-but-misspelt'.*digits"),
    Row("bad-on_error-value", lambda t, d: from_folder(t, on_error="ignore"), TransferkitError,
        r"'on_error' parameter of from_folder must be one of \{'raise', 'skip'\}; got 'ignore'"),
    # --- classes and labels ---------------------------------------------------------------------
    Row("single-class", lambda t, d: _finetune().fit(from_folder(_folder(t / "one", {"only": 4}))),
        DataError, r"FineTune needs at least 2 classes.*has 1 \(\['only'\]\)"),
    Row("class-with-one-image-split", lambda t, d: stratified_split(from_folder(_folder(t / "f", {"a": 4, "b": 1})), 0.5),
        DataError, r"at least 2 images per class.*\{'b': 1\}"),
    Row("class-with-one-image-fit-with-validation", lambda t, d: _finetune(val_fraction=0.25).fit(
        from_folder(_folder(t / "f", {"a": 4, "b": 1}))), DataError, r"at least 2 images per class.*\{'b': 1\}"),
    Row("k-per-class-too-few", lambda t, d: k_per_class(from_folder(_folder(t / "f", {"a": 4, "b": 1})), 2),
        DataError, r"k_per_class\(k=2\) needs 2 images per class.*\{'b': 1\}"),
    Row("labels-outside-class-list", lambda t, d: from_arrays(*_tiny_arrays(classes=3), classes=["a", "b"]),
        DataError, r"labels \[2\] are outside the class list \(0\.\.1"),
    Row("negative-labels", lambda t, d: ImageDataset(np.zeros((2, 4, 4), np.uint8), [0, -5], ["a"]),
        DataError, r"labels \[-5\] are outside the class list"),
    Row("labels-count-mismatch", lambda t, d: ImageDataset(np.zeros((3, 4, 4), np.uint8), [0, 1], ["a", "b"]),
        DataError, r"3 images but 2 labels"),
    # --- CSV manifests --------------------------------------------------------------------------
    Row("csv-missing-label-column", lambda t, d: (_noise_png(t / "a.png"), from_csv(_csv(t / "m.csv", "path,klass", ["a.png,x"])))[-1],
        DataError, r"{tmp}/m\.csv: missing column 'label'; the columns are \['path', 'klass'\]"),
    Row("csv-missing-path-column", lambda t, d: from_csv(_csv(t / "m.csv", "file,label", ["a.png,x"])),
        DataError, r"missing column 'path'"),
    Row("csv-path-outside-root", lambda t, d: from_csv(_csv_outside(t)),
        DataError, r"line 3: path '\.\./outside\.png' resolves outside the root .*refused"),
    Row("csv-absolute-path-outside-root", lambda t, d: from_csv(_csv(t / "r" / "m.csv", "path,label", ["/etc/passwd,x"])),
        DataError, r"path '/etc/passwd' resolves outside the root"),
    Row("csv-label-not-in-classes", lambda t, d: (_noise_png(t / "a.png"), _noise_png(t / "b.png"), from_csv(
        _csv(t / "m.csv", "path,label", ["a.png,cat", "b.png,dgo"]), classes=["cat", "dog"]))[-1],
        DataError, r"labels \['dgo'\] are not in the class list \['cat', 'dog'\]"),
    Row("csv-missing-image", lambda t, d: from_csv(_csv(t / "m.csv", "path,label", ["gone.png,x"])),
        ImageLoadError, r"not found: {tmp}/gone\.png"),
    Row("csv-no-rows", lambda t, d: from_csv(_csv(t / "m.csv", "path,label", [])), DataError, r"has no rows"),
    Row("csv-not-found", lambda t, d: from_csv(t / "nope.csv"), DataError, r"CSV manifest not found: {tmp}/nope\.csv"),
    Row("csv-empty-label", lambda t, d: from_csv(_csv_rows(t, ["a.png,x", "b.png,"])), DataError,
        r"{tmp}/m\.csv, line 3: no label \(the 'label' column is ''\); 1 row\(s\) without a label"),
    Row("csv-nan-labels", lambda t, d: from_csv(_csv_rows(t, ["a.png,nan", "b.png,NA", "c.png,y"])), DataError,
        r"line 2: no label \(the 'label' column is 'nan'\); 2 row\(s\) without a label in all \(line\(s\) 2, 3\)"),
    Row("csv-unlabelled-rows-kept-when-asked", lambda t, d: from_csv(_csv_rows(t, ["a.png,x", "b.png,"]), unlabelled=True), None,
        check=lambda ds, t: list(ds.labels) == [0, -1] or pytest.fail(str(ds.labels))),
    Row("csv-nan-is-a-label-when-listed", lambda t, d: from_csv(_csv_rows(t, ["a.png,NA", "b.png,x"]), classes=["NA", "x"]), None,
        check=lambda ds, t: list(ds.labels) == [0, 1] or pytest.fail(str(ds.labels))),
    Row("csv-duplicate-rows", lambda t, d: from_csv(_csv_rows(t, ["a.png,x", "b.png,y", "./a.png,x"])), DataError,
        r"{tmp}/m\.csv: 1 duplicate row\(s\) repeat an earlier image: line 4 \(= line 2\).*duplicates='drop'"),
    Row("csv-duplicate-rows-dropped-when-asked", lambda t, d: from_csv(_csv_rows(t, ["a.png,x", "b.png,y", "a.png,x"]), duplicates="drop"),
        None, check=lambda ds, t: (len(ds) == 2 and list(ds.labels) == [0, 1]) or pytest.fail(str(ds.images))),
    Row("csv-same-image-two-labels", lambda t, d: from_csv(_csv_rows(t, ["a.png,x", "b.png,y", "a.png,y"]), duplicates="drop"),
        DataError, r"line 4: the image {tmp}/a\.png is also on line 2 with another label \('y' here, 'x' there\)"),
    Row("folder-symlink-loop", lambda t, d: _folder_with_link(t, lambda r: r / "a" / "loop", lambda r: r / "a"), None,
        check=lambda out, t: _skipped(out, 4, r"form a loop: {tmp}/f/a/loop")),
    Row("folder-link-to-parent-loop", lambda t, d: _folder_with_link(t, lambda r: r / "b" / "up", lambda r: r), None,
        check=lambda out, t: _skipped(out, 4, r"form a loop: {tmp}/f/b/up")),
    Row("folder-link-leaving-root", lambda t, d: _folder_with_link(t, lambda r: r / "a" / "ext", lambda r: _folder(t / "ext", {"z": 3}) / "z"),
        None, check=lambda out, t: _skipped(out, 4, r"leave the root: {tmp}/f/a/ext -> {tmp}/ext/z")),
    Row("folder-link-duplicating-images", lambda t, d: _folder_with_link(t, lambda r: r / "b" / "copy.png", lambda r: r / "a" / "0.png"),
        None, check=lambda out, t: _skipped(out, 4, r"repeat a folder or image already read: {tmp}/f/b/copy\.png")),
    Row("folder-broken-link", lambda t, d: _folder_with_link(t, lambda r: r / "a" / "gone.png", lambda r: r / "nowhere.png"),
        None, check=lambda out, t: _skipped(out, 4, r"are broken: {tmp}/f/a/gone\.png")),
    # --- arrays, features and channels --------------------------------------------------------------
    Row("nan-in-float-images", lambda t, d: from_arrays(np.array([[[0.5, np.nan]], [[0.1, 0.2]]]), [0, 1]),
        DataError, r"NaN or inf"),
    Row("inf-in-float-images", lambda t, d: from_arrays(np.array([[[0.5, np.inf]], [[0.1, 0.2]]]), [0, 1]),
        DataError, r"NaN or inf"),
    Row("float-images-out-of-range", lambda t, d: from_arrays(np.full((2, 4, 4), 3.0), [0, 1]),
        DataError, r"uint8 or floats in \[0, 1\]; got dtype float64 with values in \[3"),
    Row("nan-in-extracted-features", lambda t, d: __import__("transferkit.engine", fromlist=["x"]).extract_features(
        _nan_backbone(), d.subset(np.arange(20)), cache=t / "cache", progress=False),
        DataError, r"builtin:micro-cnn produced non-finite \(NaN or inf\) embeddings for 20 of 20 images \(first: digits\[0\]"),
    Row("nan-features-not-cached", lambda t, d: (pytest.raises(DataError, __import__("transferkit.engine", fromlist=["x"]).extract_features,
                                                               _nan_backbone(), d.subset(np.arange(20)), cache=t / "cache", progress=False),
                                                 sorted(p.name for p in (t / "cache").glob("*")))[-1], None,
        check=lambda files, t: files == [] or pytest.fail(f"a NaN feature cache was left behind: {files}")),
    Row("nan-features-in-probe", _features_nan, DataError, r"produced non-finite \(NaN or inf\) embeddings for 100 of 100"),
    Row("image-array-with-5-channels", lambda t, d: from_arrays(np.zeros((2, 8, 8, 5), np.uint8), [0, 1]),
        DataError, r"1, 2, 3 or 4 channels .*got shape \(2, 8, 8, 5\)"),
    Row("image-array-1d", lambda t, d: from_arrays(np.zeros((2, 64), np.uint8), [0, 1]),
        DataError, r"\(N, H, W\) or \(N, H, W, C\); got shape \(2, 64\)"),
    Row("rgba-arrays-accepted", lambda t, d: next(iter(__import__("transferkit.engine", fromlist=["x"]).make_loader(
        from_arrays(np.full((4, 8, 8, 4), 200, np.uint8), [0, 1, 0, 1]).with_transform(
            __import__("transferkit.data", fromlist=["x"]).ImageTransform({"input_size": (3, 8, 8)})), 4)))[0], None,
        check=lambda x, t: (tuple(x.shape) == (4, 3, 8, 8) and torch.isfinite(x).all()) or pytest.fail(str(x.shape))),
    Row("wrong-input-channels-batch", lambda t, d: _fitted_digits_model(d).predict_proba(torch.rand(2, 1, 32, 32)),
        TransferkitError, r"expects 3-channel images; got a batch of shape \(2, 1, 32, 32\)"),
    Row("grayscale-files-to-rgb-backbone", lambda t, d: _fitted_digits_model(d).predict_proba(
        from_folder(_folder(t / "g", {"0": 1, "1": 1}))), None,
        check=lambda p, t: (p.shape == (2, 10) and np.allclose(p.sum(1), 1, atol=1e-5)) or pytest.fail(str(p.shape))),
    Row("evaluate-on-other-classes", lambda t, d: _fitted_digits_model(d).evaluate(from_folder(_folder(t / "f", {"cat": 2, "dog": 2}))),
        DataError, r"differ from the fitted ones: only in the data \['cat', 'dog'\]"),
    # --- few-shot episodes ----------------------------------------------------------------------
    Row("too-few-images-for-episode", lambda t, d: EpisodeSampler(k_per_class(d, 6, seed=0), n_way=5, k_shot=5, q_queries=15),
        DataError, r"Cannot draw 5-way 5-shot episodes with 15 queries: each class needs 20 images and only 0 of 10"),
    Row("more-ways-than-classes", lambda t, d: EpisodeSampler(k_per_class(d, 30, seed=0), n_way=20, k_shot=1, q_queries=1),
        DataError, r"only 10 of 10 classes have that many"),
    Row("episode-k-shot-zero", lambda t, d: EpisodeSampler(d, n_way=5, k_shot=0), TransferkitError,
        r"'k_shot' parameter of EpisodeSampler must be in \[1, None\]; got 0"),
    Row("fewshot-strategy-too-few-images", _fewshot_too_few, DataError, r"each class needs 20 images and only 0 of 10"),
    # --- semantics, domains, teachers -------------------------------------------------------------
    Row("attribute-table-missing-a-class", _semantics_missing_class, DataError,
        r"attribute table has 2 rows for 3 classes"),
    Row("named-attribute-table-missing-a-class", _named_semantics_missing_class, DataError,
        r"classes of the data without attributes: \['eel'\]"),
    Row("descriptions-missing-a-class", _descriptions_missing_class, DataError,
        r"no description for class\(es\) \['eel'\]"),
    Row("nan-in-attribute-table", lambda t, d: ImageDataset(*_tiny_arrays(classes=3), ["cat", "dog", "eel"],
                                                          semantics={"attributes": np.array([[0, 1], [np.nan, 1], [1, 0]])}),
        DataError, r"attribute table holds NaN or inf values in the rows of class\(es\) \['dog'\]"),
    Row("inf-in-named-attribute-table", lambda t, d: ImageDataset(*_tiny_arrays(classes=3), ["cat", "dog", "eel"], semantics={
        "classes": ["cat", "dog", "eel", "owl"], "attributes": np.array([[0, 1], [0, 1], [1, 0], [np.inf, 0]])}),
        DataError, r"NaN or inf values in the rows of class\(es\) \['owl'\]"),
    Row("nan-in-attribute-file", lambda t, d: __import__("transferkit.data.semantics", fromlist=["x"]).load_attributes(
        _csv(t / "att.csv", "class,stripes,wings", ["cat,1,0", "dog,NaN,0"])),
        DataError, r"{tmp}/att\.csv, line 3 \(class 'dog'\): attribute values must be finite numbers; got stripes='NaN'"),
    Row("eszsl-nan-in-attribute-dict", lambda t, d: _strategy_from_module("scarce.bilinear").fit(
        d.subset(np.arange(100)), semantics={"classes": [str(i) for i in range(10)],
                                             "attributes": np.where(np.eye(10, 4) == 1, np.nan, 0.5)}),
        DataError, r"attribute table holds NaN or inf values \(classes \['0', '1', '2', '3'\]\)"),
    Row("zeroshot-attribute-table-missing-a-class", _zeroshot_missing_class, TransferkitError,
        r"(?i)attribute.*\(n_classes=3|3 classes"),
    Row("domain-adaptation-mismatched-classes", _da_mismatched_domains, DataError,
        r"the target must have the source's classes; only in the source.*only in the target.*: \['c0'"),
    Row("teacher-with-different-classes", _distill_other_classes, DataError,
        r"teacher was trained on classes .*only in the teacher: \['3', '4'"),
    # --- loaders -----------------------------------------------------------------------------------
    Row("worker-process-image-error", _worker_error, ImageLoadError, r"^Cannot read image {tmp}/w/b/1\.png"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, tmp_path, digits):
    tmp_path = tmp_path.resolve()
    if row.error is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = row.run(tmp_path, digits)
        if row.check is not None:
            row.check(out, tmp_path)
        return
    with pytest.raises(Exception) as info:
        row.run(tmp_path, digits)
    exc = info.value
    assert isinstance(exc, row.error), (
        f"row {row.id}: expected {row.error.__name__}, got a bare {type(exc).__module__}.{type(exc).__name__}: {exc}")
    assert isinstance(exc, TransferkitError)
    pattern = row.match.replace("{tmp}", re.escape(str(tmp_path)))
    assert re.search(pattern, str(exc), re.S), f"row {row.id}: message {str(exc)!r} does not match {pattern!r}"
    assert "Traceback" not in str(exc), f"row {row.id}: a traceback leaked into the message: {exc}"


def test_survey_covers_the_issue():
    """The issue's list of bad inputs, each present as at least one row."""
    ids = {r.id for r in ROWS}
    required = ["corrupt-png", "truncated-png", "zero-byte", "text-with-jpg-extension", "16-bit-grayscale", "palette",
                "cmyk-jpeg", "rgba-transparent-on-white", "very-large-image", "empty-class-folder", "single-class",
                "class-with-one-image-split", "labels-outside-class-list", "csv-missing-label-column",
                "csv-path-outside-root", "domain-adaptation-mismatched-classes", "too-few-images-for-episode",
                "attribute-table-missing-a-class", "nan-in-extracted-features", "teacher-with-different-classes",
                "wrong-input-channels-batch"]
    assert not [r for r in required if r not in ids]
