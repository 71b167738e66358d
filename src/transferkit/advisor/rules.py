"""The strategy advisor: explicit rules from your constraints (and measurements of your data) to a
ranked list of approaches, each with the reasons in plain words.

Every rule has an id, a condition and a number of points for one approach. Requirements come first: an
approach that a requirement calls for (classes without images, new classes arriving with few examples, an unlabelled
target domain, robustness, several tasks, a deployment budget the backbone breaks: ``REQUIREMENT_RULES``)
ranks above every approach that only preferences (data size, a measured probe, compute) support, however many
preference points those gather. Within a tier the approaches are ranked by their total. Where the data can settle
a question, :func:`measure` measures instead of guessing: labels per class (dataset profile), how well
the frozen features already fit (cross-validated linear probe, LogME), how far an unlabelled target is
from the labelled data (proxy A-distance), the backbone's parameters and CPU latency.

The rules (thresholds are the module constants; docs/choosing.md explains each):

=====  ==================================================================  =====================  ======
id     condition                                                           approach               points
=====  ==================================================================  =====================  ======
Z1     classes with no images, described by attributes or text             zero-shot              +10
N1     new classes with no examples and no description                     (none: advice first)   0
F1     new classes arrive with 1-5 examples each                           few-shot               +8
F2     the labelled data has <= 5 images per class                         few-shot               +6
D1     an unlabelled target-domain set exists                              domain-adaptation      +5
D2     ... and the measured proxy A-distance is small (< 0.5)              domain-adaptation      -5
D3     ... or large (>= 1.0)                                               domain-adaptation      +2
A1     robustness to adversarial perturbations is required                 adversarial-training   +7
T1     several related tasks are available together                        multi-task             +6
T2     tasks arrive one after another and old ones must not be forgotten   progressive            +7
E1     the backbone exceeds the parameter or latency budget                distillation           +7
S1     6-100 labels per class                                              feature-extraction     +3
S2     more than 100 labels per class                                      fine-tuning            +3
M1     measured linear-probe accuracy >= 0.9: the features already fit     feature-extraction     +4
M2     measured linear-probe accuracy < 0.7: the features fit poorly       fine-tuning            +4
C1     small compute budget                                                feature-extraction     +2
C2     small compute budget                                                fine-tuning            -1
C3     large compute budget                                                fine-tuning            +1
B1     always: the cheapest baseline                                       feature-extraction     +1
B2     always: the strongest general baseline                              fine-tuning            +1
=====  ==================================================================  =====================  ======

Example:
    >>> advice = advise(Constraints(labels_per_class=3, new_class_shots=3))
    >>> advice.top.approach, advice.top.rules
    ('few-shot', ['F1', 'F2'])
    >>> print(advice.to_text())
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import TransferkitError, check_choice, check_range

FEW_SHOT_MAX = 5          # labels per class at or below which fine-tuning overfits (few-shot regime)
LIMITED_MAX = 100         # labels per class up to which frozen features usually match fine-tuning
PROBE_FITS = 0.90         # probe accuracy at which the frozen features are "already good"
PROBE_POOR = 0.70         # probe accuracy below which the features "fit poorly" (far domain)
# A measurement on the user's data (M1/M2) outweighs the label-count prior (S1/S2, +3): on the hymenoptera
# photos with ImageNet Lite0 (BENCHMARKS.md, "Fine-tune or extract features?") 122 labels per class fired S2
# (fine-tuning) while the measured probe (96%) was right: frozen features won at every label budget.
MEASURED_WEIGHT = 4
# The rules of requirements: an approach whose points from these are positive ranks above the preference-only ones.
REQUIREMENT_RULES = frozenset({"Z1", "F1", "D1", "D2", "D3", "A1", "T1", "T2", "E1"})
SHIFT_SMALL = 0.5         # proxy A-distance below which domains barely differ
SHIFT_LARGE = 1.0         # proxy A-distance from which the shift is large

# approach -> (candidate strategy names in order of preference, what it is in one line, references)
APPROACHES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "feature-extraction": (("features",), "freeze the pre-trained backbone, train a scikit-learn classifier on its embeddings",
                           "Kornblith et al. 2019"),
    "fine-tuning": (("finetune", "freeze", "lora"), "update the pre-trained network (all layers, a top block, or LoRA adapters)",
                    "Yosinski et al. 2014; Howard & Ruder 2018; Hu et al. 2022"),
    "domain-adaptation": (("dann", "cdan", "mmd", "coral", "source-only"),
                          "train on labelled source images while aligning features with the unlabelled target",
                          "Ganin et al. 2015; Long et al. 2015/2018; Sun & Saenko 2016"),
    "adversarial-training": (("adversarial-finetune",), "fine-tune on adversarial (PGD/FGSM/TRADES) examples as well as clean ones",
                             "Madry et al. 2018; Zhang et al. 2019"),
    "few-shot": (("protonet", "simpleshot", "maml"), "classify new classes from 1-5 examples with class prototypes or meta-learning",
                 "Snell et al. 2017; Wang et al. 2019; Finn et al. 2017"),
    "zero-shot": (("eszsl", "dap", "bilinear-zsl", "clip-zeroshot"), "recognise classes without images from their attributes or descriptions",
                  "Romera-Paredes & Torr 2015; Lampert et al. 2014; Radford et al. 2021"),
    "multi-task": (("multitask",), "one shared backbone with a head per task, trained together",
                   "Caruana 1997; Kendall et al. 2018"),
    "progressive": (("progressive", "ewc"), "a new column per task, earlier columns frozen: no forgetting",
                    "Rusu et al. 2016"),
    "distillation": (("distill",), "train a small student on the soft outputs of the large model",
                     "Hinton et al. 2015"),
}

TASK_MODES = ("single", "together", "sequential")
SEMANTICS = ("none", "attributes", "descriptions")
COMPUTE = ("low", "medium", "high")


@dataclass
class Constraints:
    """What the user knows and needs. ``None`` = unknown: measured from the data when possible.

    Args:
        labels_per_class: labelled images per class (default: measured median from the data).
        has_target: an unlabelled folder from the deployment domain exists.
        new_class_shots: new classes will arrive with this many examples each (1-5 typical; 0: none at all).
        unseen_classes: classes without any images, described by 'attributes' or 'descriptions' ('none').
        tasks: 'single', 'together' (related tasks labelled at once) or 'sequential' (one after another).
        max_params: deployment budget in parameters. max_latency_ms: per-image CPU latency budget.
        compute: 'low' (minutes on a CPU), 'medium' or 'high'.
        robustness: worst-case robustness to small input perturbations is required.
    """

    labels_per_class: float | None = None
    has_target: bool = False
    new_class_shots: int | None = None
    unseen_classes: str = "none"
    tasks: str = "single"
    max_params: int | None = None
    max_latency_ms: float | None = None
    compute: str = "medium"
    robustness: bool = False

    def validate(self) -> "Constraints":
        check_choice("Constraints", "tasks", self.tasks, TASK_MODES)
        check_choice("Constraints", "unseen_classes", self.unseen_classes, SEMANTICS)
        check_choice("Constraints", "compute", self.compute, COMPUTE)
        if self.labels_per_class is not None:
            check_range("Constraints", "labels_per_class", self.labels_per_class, 0)
        if self.new_class_shots is not None:
            check_range("Constraints", "new_class_shots", self.new_class_shots, 0)
        if self.max_params is not None:
            check_range("Constraints", "max_params", self.max_params, 0, low_open=True)
        if self.max_latency_ms is not None:
            check_range("Constraints", "max_latency_ms", self.max_latency_ms, 0, low_open=True)
        return self


@dataclass
class Recommendation:
    approach: str
    score: float
    strategies: list[str]            # registered strategy names for this approach, best first
    unavailable: list[str]           # candidate names not registered in this installation
    reasons: list[str]
    rules: list[str]
    summary: str
    references: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Advice:
    ranked: list[Recommendation]
    facts: list[str]                 # what the advice is based on, each marked (given) or (measured)
    measurements: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what no strategy can do without (rule N1), said first

    @property
    def top(self) -> Recommendation:
        return self.ranked[0]

    def approach(self, name: str) -> Recommendation | None:
        return next((r for r in self.ranked if r.approach == name), None)

    def bench_strategies(self, n: int = 3) -> list[str]:
        """The first available strategy of the ``n`` best approaches (for ``transferkit bench``)."""
        out = []
        for r in self.ranked:
            if r.score > 0 and r.strategies and r.strategies[0] not in out:
                out.append(r.strategies[0])
            if len(out) == n:
                break
        return out

    def to_dict(self) -> dict:
        return {"ranked": [r.to_dict() for r in self.ranked], "facts": self.facts, "missing": self.missing,
                "measurements": self.measurements, "constraints": self.constraints}

    def to_text(self) -> str:
        lines = ["Based on:"] + [f"  - {f}" for f in self.facts] + [""]
        if self.missing:
            lines += ["First, what is missing:"] + [f"  - {why}" for why in self.missing] + [""]
        lines.append("Recommended (best first):" if not self.missing else "For the rest of your task (best first):")
        for i, r in enumerate([r for r in self.ranked if r.score > 0], 1):
            names = ", ".join(r.strategies) if r.strategies else "(no strategy of this kind installed: " + ", ".join(r.unavailable) + ")"
            lines.append(f"{i}. {r.approach} (score {r.score:g}) - {r.summary}")
            lines.append(f"   strategies: {names}")
            lines += [f"   - {why}" for why in r.reasons]
        low = [r for r in self.ranked if r.score <= 0 and r.reasons]
        if low:
            lines += ["", "Not recommended here:"]
            for r in low:
                lines.append(f"  - {r.approach}: " + "; ".join(r.reasons))
        picks = self.bench_strategies()
        if len(picks) > 1:
            lines += ["", f"Settle it on your data: transferkit bench --data DIR --strategies {','.join(picks)}"]
        return "\n".join(lines)


def _available() -> set[str]:
    try:
        from ..strategies import list_strategies

        return set(list_strategies())
    except Exception:  # a broken strategy module must not take the advisor down
        return set()


def advise(constraints: Constraints | None = None, measurements: dict | None = None, **kwargs) -> Advice:
    """Rank approaches for ``constraints`` (or keyword constraints) and optional :func:`measure` results."""
    c = constraints if constraints is not None else Constraints(**kwargs)
    if constraints is not None and kwargs:
        raise TransferkitError("advise: give a Constraints object or keyword constraints, not both.")
    c.validate()
    m = dict(measurements or {})
    facts: list[str] = []
    missing: list[str] = []
    points: dict[str, list[tuple[str, float, str]]] = {a: [] for a in APPROACHES}

    def rule(rid, approach, pts, why):
        points[approach].append((rid, pts, why))

    # -- facts: given vs measured -------------------------------------------------------------------
    lpc = c.labels_per_class
    if lpc is None and m.get("labels_per_class") is not None:
        lpc = m["labels_per_class"]
        facts.append(f"{lpc:g} labelled images per class (measured median"
                     + (f", smallest class {m['min_per_class']}" if "min_per_class" in m else "") + ")")
    elif lpc is not None:
        facts.append(f"{lpc:g} labelled images per class (given)")
    probe = m.get("probe_accuracy")
    if probe is not None:
        facts.append(f"a linear probe on the frozen features reaches {probe:.0%} in cross-validation (measured)")
    shift = m.get("proxy_a_distance")
    if c.has_target:
        facts.append("an unlabelled target-domain set exists (given)"
                     + (f"; proxy A-distance to the labelled data {shift:.2f} of 2 (measured)" if shift is not None else ""))
    bb_params, latency = m.get("backbone_params"), m.get("latency_ms")
    if bb_params is not None:
        facts.append(f"the backbone has {bb_params:,} parameters"
                     + (f" and takes {latency:.1f} ms per image on this CPU" if latency is not None else "") + " (measured)")

    # -- hard requirements --------------------------------------------------------------------------
    if c.unseen_classes != "none":
        facts.append(f"some classes have no images, only {c.unseen_classes} (given)")
        tool = ("ESZSL or DAP map image features to the attribute space" if c.unseen_classes == "attributes"
                else "a sentence encoder (or CLIP) embeds the descriptions so images can be matched to them")
        rule("Z1", "zero-shot", 10, f"classes without a single image can only be recognised from their "
             f"{c.unseen_classes}: {tool}; no other approach can predict a class it has never seen.")
    if c.new_class_shots is not None:
        facts.append(f"new classes arrive with {c.new_class_shots} example(s) each (given)")
        if c.new_class_shots == 0 and c.unseen_classes == "none":
            missing.append("N1: no strategy can recognise a class it has neither seen nor had described. Collect "
                           "1-5 labelled images of each new class (few-shot: ProtoNet, SimpleShot; advise "
                           "--new-class-shots 5), or write its attributes or a one-line description (zero-shot: "
                           "ESZSL, DAP, CLIP-style; advise --unseen-classes attributes or descriptions).")
        elif 0 < c.new_class_shots <= FEW_SHOT_MAX:
            rule("F1", "few-shot", 8, f"new classes come with only {c.new_class_shots} example(s) each: fine-tuning a "
                 f"network on so few images overfits, while class prototypes on pre-trained embeddings (ProtoNet, "
                 f"SimpleShot) add a class without retraining.")
    if lpc is not None and lpc <= FEW_SHOT_MAX:
        rule("F2", "few-shot", 6, f"with {lpc:g} labelled images per class you are in the few-shot regime "
             f"(<= {FEW_SHOT_MAX}): nearest-prototype classifiers beat training a head or fine-tuning.")
    if c.has_target:
        rule("D1", "domain-adaptation", 5, "you have unlabelled images from the domain you will deploy in: domain "
             "adaptation uses them to align the features, so a model trained on your labelled images also works "
             "there (e.g. day -> night).")
        if shift is not None and shift < SHIFT_SMALL:
            rule("D2", "domain-adaptation", -5, f"the measured distance between the two sets is small "
                 f"({shift:.2f} < {SHIFT_SMALL}), so the domains barely differ: plain training on the labelled "
                 f"images (source-only) will likely do as well.")
        elif shift is not None and shift >= SHIFT_LARGE:
            rule("D3", "domain-adaptation", 2, f"the measured distance between the sets is large ({shift:.2f} "
                 f">= {SHIFT_LARGE}): a model trained on the labelled images alone is likely to degrade there.")
    if c.robustness:
        facts.append("robustness to adversarial perturbations is required (given)")
        rule("A1", "adversarial-training", 7, "robustness to small worst-case input changes does not come from clean "
             "training: adversarial fine-tuning (PGD or TRADES) buys robust accuracy for a few points of clean "
             "accuracy and 3-10x the training time.")
    if c.tasks == "together":
        facts.append("several related tasks are labelled together (given)")
        rule("T1", "multi-task", 6, "related tasks available together can share one backbone with a head each: "
             "one model to deploy, and tasks with few labels borrow from the others.")
    elif c.tasks == "sequential":
        facts.append("tasks arrive one after another (given)")
        rule("T2", "progressive", 7, "tasks arrive one after another: fine-tuning on each new task forgets the "
             "old ones; progressive networks add a column per task and freeze the earlier ones, so nothing is "
             "forgotten while lateral connections reuse what was learnt.")
    over = []
    if c.max_params is not None:
        facts.append(f"deployment budget: {c.max_params:,} parameters (given)")
        if bb_params is None or bb_params > c.max_params:
            over.append(f"the backbone has {bb_params:,} parameters, over the {c.max_params:,} budget"
                        if bb_params is not None else f"a budget of {c.max_params:,} parameters is tight for a "
                        f"pre-trained backbone (size not measured: pass --backbone)")
    if c.max_latency_ms is not None:
        facts.append(f"deployment budget: {c.max_latency_ms:g} ms per image (given)")
        if latency is None or latency > c.max_latency_ms:
            over.append(f"it takes {latency:.1f} ms per image, over the {c.max_latency_ms:g} ms budget"
                        if latency is not None else "the latency budget cannot be checked without a backbone")
    if over:
        rule("E1", "distillation", 7, "; ".join(over) + ": train the large model first, then distil it into a small "
             "student that fits the budget and keeps most of the accuracy.")
    elif c.max_params is not None or c.max_latency_ms is not None:
        facts.append("the backbone fits the deployment budget (measured): no distillation needed")

    # -- preferences ---------------------------------------------------------------------------------
    if lpc is not None and FEW_SHOT_MAX < lpc <= LIMITED_MAX:
        rule("S1", "feature-extraction", 3, f"with {lpc:g} labels per class, a classifier on frozen pre-trained "
             f"features is usually as accurate as fine-tuning, trains in seconds and cannot overfit the backbone.")
    elif lpc is not None and lpc > LIMITED_MAX:
        rule("S2", "fine-tuning", 3, f"with {lpc:g} labels per class there is enough data to update the whole "
             f"network without overfitting; fine-tuning then matches or beats frozen features (on photos of "
             f"ImageNet classes it only ties them, which a measured probe shows: rule M1).")
    if probe is not None and probe >= PROBE_FITS:
        rule("M1", "feature-extraction", MEASURED_WEIGHT, f"a linear probe on the frozen features already reaches {probe:.0%}: "
             f"the pre-trained features fit your classes, so fine-tuning has little to add.")
    elif probe is not None and probe < PROBE_POOR:
        rule("M2", "fine-tuning", MEASURED_WEIGHT, f"a linear probe on the frozen features reaches only {probe:.0%}: your images "
             f"are far from what the backbone was trained on, and fine-tuning lets the features adapt.")
    if c.compute == "low":
        facts.append("small compute budget (given)")
        rule("C1", "feature-extraction", 2, "on a small compute budget one forward pass over the data (cached) "
             "plus a scikit-learn classifier is the cheapest transfer there is.")
        rule("C2", "fine-tuning", -1, "fine-tuning needs many forward and backward passes, costly on a small budget.")
    elif c.compute == "high":
        rule("C3", "fine-tuning", 1, "a large compute budget allows full fine-tuning with a schedule search.")
    rule("B1", "feature-extraction", 1, "it is the cheapest baseline to run first.")
    rule("B2", "fine-tuning", 1, "it is the strongest general-purpose baseline.")

    available = _available()
    ranked = []
    for approach, hits in points.items():
        if not hits:
            continue
        names, summary, refs = APPROACHES[approach]
        if approach == "zero-shot" and c.unseen_classes == "descriptions":
            names = ("bilinear-zsl", "clip-zeroshot", "eszsl", "dap")  # text embeddings as class signatures
        ranked.append(Recommendation(
            approach=approach, score=float(sum(p for _, p, _ in hits)),
            strategies=[n for n in names if n in available], unavailable=[n for n in names if n not in available],
            reasons=[why for _, _, why in hits], rules=[rid for rid, _, _ in hits], summary=summary, references=refs))
    order = list(APPROACHES)
    required = {a for a, hits in points.items() if sum(p for rid, p, _ in hits if rid in REQUIREMENT_RULES) > 0}
    ranked.sort(key=lambda r: (r.approach not in required, -r.score, order.index(r.approach)))
    return Advice(ranked=ranked, facts=facts, measurements=m, constraints=asdict(c), missing=missing)


def measure(data, *, backbone=None, target=None, pretrained: bool = True, max_samples: int = 1000,
            seed: int = 0, cache=True, progress: bool = False, latency: bool = True) -> dict:
    """Measure what the rules need: the dataset profile; with a ``backbone`` the linear/kNN probe
    accuracy, LogME, parameters and CPU latency; with a ``target`` the proxy A-distance to it.

    ``data`` / ``target`` are ImageDatasets (``target`` labels are ignored).
    """
    from .profile import profile_dataset
    from ..engine import proxy_a_distance
    from .transferability import logme, probe_accuracy, subsample

    prof = profile_dataset(data)
    m = {"profile": prof.to_dict(), "labels_per_class": prof.median_per_class, "min_per_class": prof.min_per_class}
    if backbone is None:
        return m
    from ..backbones import Backbone, create_backbone
    from ..engine import extract_features
    from ..utils import count_parameters

    from ..utils import seed_everything

    seed_everything(seed)  # a randomly initialised backbone is the same one on every call
    bb = backbone if isinstance(backbone, Backbone) else create_backbone(backbone, pretrained=pretrained)
    small = subsample(data, max_samples, seed)
    feats = np.asarray(extract_features(bb, small, cache=cache, progress=progress))
    m["backbone"] = bb.spec
    m["backbone_params"] = count_parameters(bb)
    if prof.min_per_class >= 2:
        m["probe_accuracy"] = probe_accuracy(feats, small.labels, kind="linear")
        m["knn_accuracy"] = probe_accuracy(feats, small.labels, kind="knn")
    m["logme"] = logme(feats, small.labels)
    if latency:
        m["latency_ms"] = _backbone_latency_ms(bb)
    if target is not None:
        tsmall = target if len(target) <= max_samples else target.subset(
            np.sort(np.random.default_rng(seed).choice(len(target), max_samples, replace=False)))
        tfeats = np.asarray(extract_features(bb, tsmall.unlabelled(), cache=cache, progress=progress))
        m["proxy_a_distance"] = proxy_a_distance(feats, tfeats, seed=seed)
    return m


def _backbone_latency_ms(bb) -> float:
    """Per-image CPU latency of the backbone at batch 1 (ms), as measured for deployment."""
    from ..engine.profiling import measure_latency

    return measure_latency(bb, bb.data_config["input_size"], 1, threads=None)


def advise_data(data, constraints: Constraints | None = None, *, backbone=None, target=None, **measure_kwargs) -> Advice:
    """Measure ``data`` (and ``backbone`` / ``target``) then :func:`advise`."""
    c = constraints or Constraints()
    if target is not None:
        c.has_target = True
    return advise(c, measure(data, backbone=backbone, target=target, **measure_kwargs))
