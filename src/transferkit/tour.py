"""The tour: the situations transfer learning exists for, each settled by measurement on one dataset.

``run_tour`` pre-trains a backbone on half of the classes (the *source*; cached between runs), then walks
through eight situations on the other half (the *target*), runs the competing strategies of each under one
budget and seed, writes every run's ``result.json``, prints a summary table with the winner and the reason,
puts the advisor's rule-based pick beside it, and renders the HTML report.

    transferkit tour                       # Fashion-MNIST (digits when it is not installed), ~10 min on 2 cores
    transferkit tour --dataset digits --quick   # about two minutes (CI)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import (ImageDataset, class_split, k_per_class, load_digits, load_fashion_mnist, restrict_classes,
                   stratified_split)
from .engine import write_result
from .errors import DataError, check_choice
from .strategies import create_strategy
from .utils import cache_dir, fingerprint, seed_everything, write_json

SITUATIONS = {
    "limited-labels": "An ImageNet-style model and a few labelled images per class: fine-tune or extract features?",
    "domain-shift": "Trained on daytime images, deployed at night: align the domains without night labels?",
    "robustness": "Someone may perturb the inputs on purpose: does adversarial fine-tuning pay for itself?",
    "few-shot": "New classes arrive with 1-5 examples each: prototypes on frozen features, or meta-learning?",
    "zero-shot": "Classes with no images at all, only attributes: which semantic model transfers?",
    "multi-task": "Related labels for the same images: one shared network, or one network per task?",
    "continual": "Tasks arrive one after another: how much does each strategy forget?",
    "deployment": "The best model is too big for the phone: how much does a distilled student keep?",
}


@dataclass
class Budget:
    """How much of everything one tour run uses (the default fits 10 minutes on 2 CPU cores)."""
    pretrain_per_class: int = 1500
    pretrain_epochs: int = 4
    labels_per_class: int = 20
    test_per_class: int = 200
    epochs: int = 3
    min_steps: int = 200
    da_source_per_class: int = 300
    adv_train_per_class: int = 200
    adv_eval: int = 300
    episodes: int = 600
    protonet_epochs: int = 2
    zsl_per_class: int = 300
    mt_per_class: int = 200
    cl_per_class: int = 150
    distill_per_class: int = 300
    arch: str = "builtin:small-cnn"
    methods: dict = field(default_factory=lambda: {
        "domain-shift": ["source-only", "dann", "mmd", "coral", "cdan"],
        "continual": ["sequential-finetune", "ewc", "progressive"],
    })


QUICK = Budget(pretrain_per_class=120, pretrain_epochs=6, labels_per_class=10, test_per_class=40, epochs=2, min_steps=60,
               da_source_per_class=60, adv_train_per_class=40, adv_eval=100, episodes=600,
               protonet_epochs=1, zsl_per_class=60, mt_per_class=60, cl_per_class=40, distill_per_class=60,
               methods={"domain-shift": ["source-only", "dann", "coral"],
                        "continual": ["sequential-finetune", "ewc", "progressive"]})


# Unseen classes of the zero-shot situation: spread over the categories, so that every attribute of an unseen
# class is seen on some training class (the usual ZSL split design, e.g. Xian et al. 2019).
ZSL_UNSEEN = {"fashion-mnist": ["Pullover", "Dress", "Sneaker"], "digits": ["2", "5", "8"]}


@dataclass
class Outcome:
    """One situation: every candidate's headline metric, the winner, the reason and the advisor's pick."""
    situation: str
    question: str
    metric: str
    scores: dict
    winner: str
    reason: str
    advisor: str = ""
    details: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"situation": self.situation, "metric": self.metric, "winner": self.winner,
                "scores": {k: round(float(v), 4) for k, v in self.scores.items()}, "reason": self.reason,
                "advisor": self.advisor}


# -- data ---------------------------------------------------------------------------------------------------

def _load(dataset: str, seed: int):
    """(train, test) of the whole dataset and its (source, target) class names."""
    if dataset == "fashion-mnist":
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    else:
        train, test = stratified_split(load_digits(), 0.3, seed=seed)
    half = train.num_classes // 2
    return train, test, train.classes[:half], train.classes[half:]


def _cap(ds: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    return k_per_class(ds, per_class, seed=seed, strict=False)


def _pretrained_backbone(train: ImageDataset, source_classes, budget: Budget, seed: int, progress: bool) -> str:
    """Pre-train (or reuse the cached) backbone on the source classes; returns its ``file:`` spec."""
    from .pretrain import pretrain_backbone

    key = fingerprint(train.name, source_classes, budget.arch, budget.pretrain_per_class, budget.pretrain_epochs, seed)
    out = cache_dir() / "tour" / f"{train.name}-{key}"
    path = out / "backbone.safetensors"
    if not path.exists():
        source = _cap(restrict_classes(train, [train.classes.index(c) for c in source_classes]), budget.pretrain_per_class, seed)
        pretrain_backbone(source, out, arch=budget.arch, epochs=budget.pretrain_epochs, lr=3e-3, batch_size=128,
                          val_fraction=0.0, seed=seed, progress=progress)
    return f"file:{path}"


# -- the tour -----------------------------------------------------------------------------------------------

class Tour:
    """Runs the situations; each method returns an :class:`Outcome` and writes its runs' results."""

    def __init__(self, dataset: str, budget: Budget, out: Path, seed: int, progress: bool):
        self.dataset, self.budget, self.out, self.seed, self.progress = dataset, budget, Path(out), seed, progress
        self.train, self.test, self.source_classes, self.target_classes = _load(dataset, seed)
        self.src_train, self.tgt_train = self._halves(self.train)
        self.src_test, self.tgt_test = self._halves(self.test)
        self.tgt_test = _cap(self.tgt_test, budget.test_per_class, seed)
        self.backbone = None

    def _halves(self, ds):
        return class_split(ds, self.source_classes)

    def epochs(self, n_images: int, batch_size: int = 64, scale: float = 1.0) -> int:
        """Epochs giving at least ``min_steps`` optimizer steps (small training sets get more passes)."""
        steps_per_epoch = max(1, -(-n_images // batch_size))
        return max(self.budget.epochs, -(-int(self.budget.min_steps * scale) // steps_per_epoch))

    def common(self, **kw) -> dict:
        return {"seed": self.seed, "progress": False, "batch_size": 64, **kw}

    def record(self, situation: str, name: str, strategy, metrics: dict, **extra) -> None:
        res = strategy.result(metrics, data={"dataset": self.dataset, "situation": situation}, extra=extra)
        res["tour"] = {"situation": situation, "candidate": name}
        write_result(self.out / situation / name, res)

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

    # 1 ---------------------------------------------------------------------------------------------------
    def limited_labels(self) -> Outcome:
        b, k = self.budget, self.budget.labels_per_class
        train = _cap(self.tgt_train, k, self.seed)
        epochs = self.epochs(len(train), 32)
        cands = {
            "features (logistic regression)": create_strategy("features", backbone=self.backbone, classifier="logreg",
                                                              seed=self.seed, progress=False),
            "finetune": create_strategy("finetune", **self.common(backbone=self.backbone, epochs=epochs, lr=1e-3,
                                                                  batch_size=32)),
            "progressive unfreezing": create_strategy("freeze", **self.common(backbone=self.backbone, epochs=epochs, lr=1e-3,
                                                                             batch_size=32, unfreeze_every=max(1, epochs // 5))),
            "finetune from scratch": create_strategy("finetune", **self.common(backbone=b.arch, pretrained=False, epochs=epochs,
                                                                              lr=3e-3, batch_size=32)),
        }
        scores, times = {}, {}
        for name, s in cands.items():
            t0 = time.perf_counter()
            m = s.fit(train).evaluate(self.tgt_test)
            times[name] = time.perf_counter() - t0
            scores[name] = m["accuracy"]
            self.record("limited-labels", name, s, m, labels_per_class=k, time_s=times[name])
        winner = max(scores, key=scores.get)
        best_pre = max((n for n in scores if n != "finetune from scratch"), key=scores.get)
        gain = scores[best_pre] - scores["finetune from scratch"]
        verdict = ("the pre-trained features carry over" if gain >= 0.02 else
                   "at this data size the pre-trained features add little")
        fast = min(times, key=times.get)
        reason = (f"with {k} labels per class, the best use of the pre-trained backbone ({best_pre}, "
                  f"{scores[best_pre]:.1%}) is {gain:+.1%} against training from scratch: {verdict}; "
                  f"{fast} is the fastest ({times[fast]:.1f} s)")
        return Outcome("limited-labels", SITUATIONS["limited-labels"], "accuracy", scores, winner, reason,
                       details={"time_s": times})

    # 2 ---------------------------------------------------------------------------------------------------
    def domain_shift(self) -> Outcome:
        from .data.shifts import make_shift

        b = self.budget
        source, target_pool = stratified_split(_cap(self.tgt_train, 2 * b.da_source_per_class, self.seed), 0.5, seed=self.seed)
        target = make_shift(target_pool, "night", seed=self.seed).unlabelled()
        test = make_shift(self.tgt_test, "night", seed=self.seed + 1)
        scores = {}
        for name in b.methods["domain-shift"]:
            s = create_strategy(name, **self.common(backbone=self.backbone, epochs=self.epochs(len(source), 32), lr=3e-3,
                                                    batch_size=32, selection="last"))
            s.fit(source, target=target)
            m = s.evaluate(test)
            scores[name] = m["accuracy"]
            self.record("domain-shift", name, s, {**m, "oracle_target_accuracy": m["accuracy"]}, shift="night")
        winner = max(scores, key=scores.get)
        base = scores.get("source-only", float("nan"))
        reason = (f"night-time accuracy {scores[winner]:.1%} vs {base:.1%} for training on daytime images only "
                  f"(last epoch kept, so no night label influences the model; labelled night images only score it)")
        return Outcome("domain-shift", SITUATIONS["domain-shift"], "night-time test accuracy", scores, winner, reason)

    # 3 ---------------------------------------------------------------------------------------------------
    def robustness(self) -> Outcome:
        from .strategies.adversarial import robustness

        b = self.budget
        train = _cap(self.tgt_train, b.adv_train_per_class, self.seed)
        test = _cap(self.tgt_test, max(1, b.adv_eval // len(self.target_classes)), self.seed)
        threat = {"norm": "linf", "eps": 8 / 255, "steps": 10, "restarts": 1}
        cands = {
            "finetune": create_strategy("finetune", **self.common(backbone=self.backbone, epochs=self.epochs(len(train)), lr=1e-3)),
            "adversarial finetune (PGD)": create_strategy("adversarial-finetune", **self.common(
                backbone=self.backbone, epochs=self.epochs(len(train)), lr=1e-3, eps=8 / 255, steps=5)),
        }
        scores, clean = {}, {}
        for name, s in cands.items():
            s.fit(train)
            r = robustness(s, test, threat)
            scores[name], clean[name] = r["robust_accuracy"], r["clean_accuracy"]
            self.record("robustness", name, s, {"accuracy": r["clean_accuracy"], **r})
        winner = max(scores, key=scores.get)
        reason = (f"under PGD-10 (L-inf, eps=8/255) {winner} keeps {scores[winner]:.1%} "
                  f"(clean {clean[winner]:.1%}); plain fine-tuning keeps {scores['finetune']:.1%} "
                  f"(clean {clean['finetune']:.1%})")
        return Outcome("robustness", SITUATIONS["robustness"], "PGD-10 robust accuracy", scores, winner, reason,
                       details={"clean_accuracy": clean, "threat_model": threat})

    # 4 ---------------------------------------------------------------------------------------------------
    def few_shot(self) -> Outcome:
        b = self.budget
        base = _cap(self.src_train, b.pretrain_per_class, self.seed)
        novel = _cap(self.tgt_test, b.test_per_class, self.seed)
        cands = {
            "simpleshot": create_strategy("simpleshot", **self.common(backbone=self.backbone)),
            "protonet": create_strategy("protonet", **self.common(backbone=self.backbone, epochs=b.protonet_epochs,
                                                                  lr=5e-4, n_way=len(self.source_classes), k_shot=5,
                                                                  episodes_per_epoch=50)),
        }
        scores, per_shot = {}, {}
        for name, s in cands.items():
            s.fit(base)
            per_shot[name] = {}
            for shots in (1, 5):
                m = s.evaluate(novel, n_way=len(self.target_classes), k_shot=shots, q_queries=15, episodes=b.episodes,
                               seed=self.seed)
                per_shot[name][shots] = m
            acc5 = per_shot[name][5]
            scores[name] = acc5["accuracy"]
            self.record("few-shot", name, s, {"accuracy": acc5["accuracy"], "shots": {k: v for k, v in per_shot[name].items()}})
        winner = max(scores, key=scores.get)
        w = per_shot[winner]
        reason = (f"{len(self.target_classes)}-way on unseen classes over {b.episodes} episodes: {winner} reaches "
                  f"{w[1]['accuracy']:.1%} ± {w[1].get('ci95', float('nan')):.1%} at 1 shot and "
                  f"{w[5]['accuracy']:.1%} ± {w[5].get('ci95', float('nan')):.1%} at 5 shots (chance {1 / len(self.target_classes):.0%})")
        return Outcome("few-shot", SITUATIONS["few-shot"], "5-shot episode accuracy", scores, winner, reason)

    # 5 ---------------------------------------------------------------------------------------------------
    def zero_shot(self) -> Outcome:
        from .data import restrict_classes
        from .data.semantics import builtin_semantics
        from .strategies.zeroshot import calibration_from_seen

        b = self.budget
        semantics = builtin_semantics(self.dataset)
        unseen = ZSL_UNSEEN[self.dataset]
        seen_idx = [i for i, c in enumerate(self.train.classes) if c not in unseen]
        unseen_idx = [self.train.classes.index(c) for c in unseen]
        seen = _cap(restrict_classes(self.train, seen_idx), b.zsl_per_class, self.seed)
        unseen_test = _cap(restrict_classes(self.test, unseen_idx), b.zsl_per_class, self.seed)
        both_test = _cap(self.test, b.zsl_per_class // 2, self.seed)
        scores, h = {}, {}
        for name in ("eszsl", "dap", "bilinear-zsl"):
            extra = {"epochs": self.epochs(len(seen)), "lr": 1e-2} if name == "bilinear-zsl" else {}
            s = create_strategy(name, **self.common(backbone=self.backbone, **extra))
            s.fit(seen, semantics=semantics)
            m = s.evaluate(unseen_test)
            g = s.evaluate(both_test, calibration=calibration_from_seen(s, seen))
            scores[name] = m["zsl_accuracy"]
            h[name] = g.get("gzsl_h", float("nan"))
            self.record("zero-shot", name, s, {**m, **{k: v for k, v in g.items() if k.startswith("gzsl")},
                                               "accuracy": m["zsl_accuracy"]}, unseen_classes=unseen)
        winner = max(scores, key=scores.get)
        reason = (f"on {len(unseen)} classes never seen in training ({', '.join(unseen)}), {winner} reaches "
                  f"{scores[winner]:.1%} per-class accuracy from attributes alone (chance {1 / len(unseen):.0%}); "
                  f"generalized ZSL over all {self.train.num_classes} classes, calibrated stacking: harmonic mean {h[winner]:.1%}")
        return Outcome("zero-shot", SITUATIONS["zero-shot"], "unseen-class accuracy (ZSL)", scores, winner, reason,
                       details={"gzsl_h": h})

    # 6 ---------------------------------------------------------------------------------------------------
    def multi_task(self) -> Outcome:
        b = self.budget
        train = _with_related_tasks(_cap(self.train, b.mt_per_class, self.seed), self.dataset)
        test = _with_related_tasks(_cap(self.test, b.mt_per_class // 2, self.seed), self.dataset)
        tasks = {k: "classification" for k in ["label", *sorted(train.extra)]}
        mt = create_strategy("multitask", **self.common(backbone=self.backbone, epochs=self.epochs(len(train)), lr=1e-3, tasks=tasks,
                                                         weighting="uncertainty"))
        mt.fit(train)
        cmp = mt.compare_single_task(train, test)
        scores = {"one shared network": float(np.mean([v["accuracy"] for v in cmp["multi_task"].values()])),
                  "one network per task": float(np.mean([v["accuracy"] for v in cmp["single_task"].values()]))}
        self.record("multi-task", "multitask (uncertainty weighting)", mt,
                    {"accuracy": scores["one shared network"], **cmp})
        winner = max(scores, key=scores.get)
        if abs(scores["one shared network"] - scores["one network per task"]) < 0.005:
            winner = "one shared network"  # a tie: the shared network is the cheaper one to train and serve
        reason = (f"over the tasks {', '.join(tasks)}: multi-task gain Delta_m = {cmp['delta_m']:+.1f}% "
                  f"({'a tie' if abs(cmp['delta_m']) < 0.5 else 'sharing helps' if cmp['delta_m'] > 0 else 'sharing hurts'}) "
                  f"with one backbone to train and serve instead of {len(tasks)}")
        return Outcome("multi-task", SITUATIONS["multi-task"], "mean task accuracy", scores, winner, reason,
                       details={"delta_m": cmp["delta_m"]})

    # 7 ---------------------------------------------------------------------------------------------------
    def continual(self) -> Outcome:
        from .data import task_sequence
        from .strategies.continual import compare_continual

        b = self.budget
        n_tasks = self.train.num_classes // 2
        tasks = task_sequence(_cap(self.train, b.cl_per_class, self.seed), n_tasks)
        evals = task_sequence(_cap(self.test, b.cl_per_class // 2, self.seed), n_tasks)
        epochs = self.epochs(len(tasks[0]), scale=0.5)
        strategies = {name: create_strategy(name, **self.common(backbone=self.backbone, epochs=epochs, lr=1e-3))
                      for name in b.methods["continual"]}
        res = compare_continual(strategies, tasks, evals)
        scores, forgetting = {}, {}
        for name, s in strategies.items():
            met = res[name]["metrics"]
            scores[name], forgetting[name] = met["average_accuracy"], met["forgetting"]
            self.record("continual", name, s, {"accuracy": met["average_accuracy"], **met,
                                               "accuracy_matrix": res[name]["accuracy_matrix"]})
        winner = max(scores, key=scores.get)
        reason = (f"after {n_tasks} tasks, {winner} averages {scores[winner]:.1%} over all tasks with forgetting "
                  f"{forgetting[winner]:.1%}; sequential fine-tuning forgets {forgetting.get('sequential-finetune', float('nan')):.1%}")
        return Outcome("continual", SITUATIONS["continual"], "average accuracy after the last task", scores, winner,
                       reason, details={"forgetting": forgetting})

    # 8 ---------------------------------------------------------------------------------------------------
    def deployment(self) -> Outcome:
        from .strategies.distill import distillation_report

        b = self.budget
        train = _cap(self.tgt_train, b.distill_per_class, self.seed)
        teacher = create_strategy("finetune", **self.common(backbone=self.backbone, epochs=self.epochs(len(train)), lr=1e-3)).fit(train)
        student = dict(backbone="builtin:micro-cnn", pretrained=False, epochs=self.epochs(len(train), scale=3), lr=5e-3)
        scratch = create_strategy("finetune", **self.common(**student)).fit(train)
        distilled = create_strategy("distill", **self.common(teacher=teacher, **student)).fit(train)
        rep = distillation_report(teacher, distilled, self.tgt_test, scratch=scratch)
        rows, summ = rep["rows"], rep["summary"]
        for name, s in (("teacher", teacher), ("student_scratch", scratch), ("student_distilled", distilled)):
            self.record("deployment", name, s, {**rows[name]}, distillation=summ)
        scores = {k: v["accuracy"] for k, v in rows.items()}
        student = max(("student_distilled", "student_scratch"), key=scores.get)
        winner = student if scores[student] >= 0.95 * scores["teacher"] else "teacher"
        reason = (f"the distilled student has {summ['param_ratio']:.0f}x fewer parameters, runs {summ['speedup_b1']:.1f}x "
                  f"faster at batch 1 on CPU and keeps {summ['accuracy_retained']:.1%} of the teacher's accuracy "
                  f"({summ.get('distillation_gain', 0):+.1%} over the same student trained without the teacher)")
        return Outcome("deployment", SITUATIONS["deployment"], "accuracy", scores, winner, reason, details=summ)


def _with_related_tasks(ds: ImageDataset, dataset: str) -> ImageDataset:
    """Extra label columns of related tasks: Fashion-MNIST's super-category and sleeves; for digits, parity
    and 'has a closed loop' (from the built-in digit attributes)."""
    import copy

    out = copy.copy(ds)
    if dataset == "fashion-mnist":
        from .data.fashion_tasks import fashion_task_columns

        cols = fashion_task_columns(ds)
        out.extra = {"category": cols["category"], "sleeves": cols["sleeves"]}
    else:
        from .data.semantics import digits_semantics

        sem = digits_semantics()
        loop = sem["attributes"][:, sem["attribute_names"].index("closed_loop")] >= 1
        digit = np.array([int(ds.classes[l]) for l in ds.labels])
        out.extra = {"parity": (digit % 2).astype(float), "loop": loop[digit].astype(float)}
    return out


# What a practitioner would tell the advisor in each situation (constraints), plus what it can measure.
ADVISOR_SCENARIOS = {
    "limited-labels": lambda b: ({"labels_per_class": b.labels_per_class}, {}),
    "domain-shift": lambda b: ({"labels_per_class": b.da_source_per_class, "has_target": True}, {}),
    "robustness": lambda b: ({"labels_per_class": b.adv_train_per_class, "robustness": True}, {}),
    "few-shot": lambda b: ({"new_class_shots": 5}, {}),
    "zero-shot": lambda b: ({"unseen_classes": "attributes"}, {}),
    "multi-task": lambda b: ({"labels_per_class": b.mt_per_class, "tasks": "together"}, {}),
    "continual": lambda b: ({"labels_per_class": b.cl_per_class, "tasks": "sequential"}, {}),
    "deployment": lambda b: ({"labels_per_class": b.distill_per_class, "max_params": 20_000}, {}),
}


def _advisor_pick(situation: str, budget: Budget, backbone: str) -> str:
    from .advisor.rules import Constraints, advise
    from .backbones import create_backbone
    from .utils import count_parameters

    constraints, measurements = ADVISOR_SCENARIOS[situation](budget)
    measurements = {"backbone_params": count_parameters(create_backbone(backbone)), **measurements}
    top = advise(Constraints(**constraints), measurements).top
    return f"{top.approach} ({', '.join(top.rules)})"


def run_tour(dataset: str | None = None, *, quick: bool = False, out="runs/tour", seed: int = 0,
             situations=None, progress: bool = True, report: bool = True) -> dict:
    """Run the tour; returns the summary (also written to ``out/tour.json`` and ``out/report.html``)."""
    if dataset is None:
        try:
            load_fashion_mnist("test", download=False)
            dataset = "fashion-mnist"
        except DataError:
            dataset = "digits"
    check_choice("tour", "dataset", dataset, ("fashion-mnist", "digits"))
    names = list(situations or SITUATIONS)
    for n in names:
        check_choice("tour", "situations", n, SITUATIONS)
    budget = QUICK if quick else Budget()
    seed_everything(seed)
    out = Path(out)
    t_start = time.perf_counter()
    tour = Tour(dataset, budget, out, seed, progress)
    tour.log(f"transferkit tour on {dataset} ({'quick' if quick else 'full'}): source classes {tour.source_classes}, "
             f"target classes {tour.target_classes}")
    t0 = time.perf_counter()
    tour.backbone = _pretrained_backbone(tour.train, tour.source_classes, budget, seed, progress)
    tour.log(f"pre-trained {budget.arch} on the source classes ({time.perf_counter() - t0:.0f} s, cached): {tour.backbone}")
    outcomes = []
    for name in names:
        t0 = time.perf_counter()
        tour.log(f"\n== {name}: {SITUATIONS[name]}")
        outcome = getattr(tour, name.replace("-", "_"))()
        outcome.advisor = _advisor_pick(name, budget, tour.backbone)
        outcome.details["time_s"] = time.perf_counter() - t0
        outcomes.append(outcome)
        tour.log(f"   winner: {outcome.winner} - {outcome.reason} ({outcome.details['time_s']:.0f} s)")
    summary = {"dataset": dataset, "quick": quick, "seed": seed, "backbone": tour.backbone,
               "total_s": time.perf_counter() - t_start, "situations": [o.row() for o in outcomes]}
    write_json(out / "tour.json", summary)
    (out / "tour.md").write_text(summary_markdown(summary))
    if progress:
        print("\n" + summary_markdown(summary))
    if report:
        from .report import build_report

        summary["report"] = build_report(out, title=f"transferkit tour - {dataset}")
        tour.log(f"report: {summary['report'].get('html', out / 'report.html')}")
    return summary


def summary_markdown(summary: dict) -> str:
    lines = [f"## transferkit tour - {summary['dataset']} ({'quick' if summary['quick'] else 'full'}, "
             f"seed {summary['seed']}, {summary['total_s']:.0f} s)", "",
             "| situation | candidates (metric) | winner | why | advisor's rule-based pick |", "|---|---|---|---|---|"]
    for r in summary["situations"]:
        cands = ", ".join(f"{k} {v:.1%}" for k, v in r["scores"].items())
        lines.append(f"| {r['situation']} | {cands} ({r['metric']}) | **{r['winner']}** | {r['reason']} | {r['advisor']} |")
    return "\n".join(lines) + "\n"
