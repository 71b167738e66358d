"""Limited labels: a pre-trained backbone and a few labelled images per class. Fine-tune or extract features?

On real photos (the hymenoptera ants and bees, ImageNet EfficientNet-Lite0 offline) at a few labels per class
and at all of them: the question is about the curve, not one point. Without the photos or the weights it falls
back to the built-in data and its source-pre-trained CNN, and says so.
"""
from __future__ import annotations

from ..engine.verdict import decide
from ..strategies import create_strategy
from .situation import Outcome, Situation, register_situation

SCRATCH = "finetune from scratch"


def candidates(ctx, backbone: str, arch: str, train: dict, scratch: dict) -> dict:
    """Fresh strategies: frozen features, the default fine-tuning recipe, gradual unfreezing, and the same
    architecture from random weights (``train`` / ``scratch``: their shared settings; empty = the defaults)."""
    size = {k: v for k, v in train.items() if k == "input_size"}
    return {
        "features (logistic regression)": create_strategy("features", backbone=backbone, classifier="logreg",
                                                          seed=ctx.seed, progress=False, **size),
        "finetune": create_strategy("finetune", **ctx.common(backbone=backbone, **train)),
        "progressive unfreezing": create_strategy("freeze", **ctx.common(
            backbone=backbone, unfreeze_every=max(1, train.get("epochs", 5) // 5), **train)),
        SCRATCH: create_strategy("finetune", **ctx.common(backbone=arch, pretrained=False, **scratch)),
    }


def run(ctx, b) -> Outcome:
    photos, spec = ctx.real("hymenoptera")
    if photos is None:  # the built-in data: target classes, the source-pre-trained small CNN (spec: why)
        k = b["labels_per_class"]
        points = {k: ctx.cap(ctx.tgt_train, k)}
        test, arch, data = ctx.tgt_test, ctx.budget["arch"], f"{ctx.dataset} (fallback: {spec})"
        settings = {"epochs": ctx.epochs(len(points[k]), 32), "lr": 1e-3, "batch_size": 32}
        backbone, scratch = ctx.backbone, {**settings, "lr": 3e-3}
    else:
        train, test = photos
        points = {k: (ctx.cap(train, k) if k else train) for k in b["real"]}
        b["labels_per_class"] = b["real"][0] or len(train) // train.num_classes  # what the advisor is told
        backbone, arch = spec, spec
        settings = scratch = {"input_size": b["size"]}  # every other setting: the strategies' defaults
        data = f"hymenoptera photos, {spec} (ImageNet weights) at {b['size']} px"
    curve, verdict, texts = {}, {}, {}
    for k, part in points.items():
        label = k or f"all {len(part) // part.num_classes}"
        scores, times = {}, {}
        for name, s in candidates(ctx, backbone, arch, settings, scratch).items():
            m = s.fit(part).evaluate(test)
            scores[name], times[name] = m["accuracy"], s.fit_time_
            ctx.record(SITUATION.name, name, s, m, dataset=data, run=f"{name} @ {label} per class",
                       labels_per_class=len(part) // part.num_classes)
            if name == "finetune" and photos is not None:
                ctx.shared["photo finetune"] = s  # the deployment teacher: the fine-tuned model at the most labels
        v = decide(scores, cost=times)
        curve[label], verdict[label], texts[label] = scores, v, _transfer(scores, v)
    first, k_first = next(iter(curve)), next(iter(points))  # the headline: the fewest labels
    reason = " ".join(f"At {label} per class: {text}." for label, text in texts.items()) + " One seed."
    return SITUATION.outcome(f"accuracy at {first} labels per class", curve[first], verdict[first], reason, data=data,
                             evidence=(points[k_first], backbone), details={"curve": curve})


def _transfer(scores: dict, v) -> str:
    pre = {n: scores[n] for n in scores if SITUATION.candidates[n] is not None}
    best_pre = max(pre, key=pre.get)
    scratch = decide({best_pre: scores[best_pre], "from scratch": scores[SCRATCH]})
    transfer = ("the pre-trained backbone adds nothing measurable" if scratch.is_tie else
                f"the pre-trained backbone is worth {100 * (scores[best_pre] - scores[SCRATCH]):+.1f} points over "
                f"training from scratch")
    return f"{v.reason}; {transfer}"


SITUATION = register_situation(Situation(
    name="limited-labels",
    question="An ImageNet-style model and a few labelled images per class: fine-tune or extract features?",
    family="reuse-weights", approach="feature-extraction", run=run,
    candidates={"features (logistic regression)": "feature-extraction", "finetune": "fine-tuning",
                "progressive unfreezing": "fine-tuning", SCRATCH: None},
    # real: labels per class on the photos (None: all of them); labels_per_class: on the built-in fallback
    budget={"labels_per_class": 20, "real": (5, None), "size": 160},
    quick={"labels_per_class": 10, "real": (10,), "size": 128},
    constraints=lambda b: {"labels_per_class": b["labels_per_class"]},
))
