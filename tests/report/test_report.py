"""Report: tables and plots from result records; escaped names; loads in headless Chromium without errors."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from transferkit.engine import make_result, write_result
from transferkit.errors import TransferkitError
from transferkit.report import build_report

NASTY = ['<script>alert("x")</script>', 'a&b "quoted"', "T-shirt/top"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cm(n, acc, rng):
    cm = rng.integers(0, 4, (n, n))
    np.fill_diagonal(cm, int(40 * acc))
    return cm.tolist()


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory, target_split):
    """A real fine-tuning result plus synthetic records of every kind the report renders."""
    from transferkit.data import k_per_class
    from transferkit.strategies import create_strategy

    root = tmp_path_factory.mktemp("results") / "runs <&>"
    train, test = target_split
    ft = create_strategy("finetune", backbone="builtin:micro-cnn", pretrained=False, epochs=2, batch_size=32,
                         progress=False, lr=3e-3).fit(k_per_class(train, 20, seed=0))
    write_result(root / "reuse" / "finetune", ft.result(ft.evaluate(test)))
    rng = np.random.default_rng(0)
    classes = NASTY
    for name, acc, fit_s, n in (("features", 0.81, 3.2, 120_000), ("lora", 0.86, 40.0, 300_000)):
        metrics = {"accuracy": acc, "balanced_accuracy": acc - 0.01, "macro_f1": acc - 0.02,
                   "per_class_accuracy": {c: acc for c in classes}, "confusion_matrix": _cm(3, acc, rng), "n": 120}
        hist = [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_accuracy": acc - 0.2 / (e + 1)} for e in range(4)]
        write_result(root / "reuse" / name, make_result(strategy=name, family="reuse-weights", params={"note": "<b>bold</b>"},
                                              metrics=metrics, history=hist, timings={"fit_s": fit_s},
                                              extra={"n_params": n, "classes": classes}))
    coords = np.r_[rng.normal(0, 1, (40, 2)), rng.normal(3, 1, (40, 2))].tolist()
    write_result(root / "shift" / "dann", make_result(
        strategy="dann", family="domain-shift", params={}, metrics={"oracle_target_accuracy": 0.7},
        timings={"fit_s": 12.0}, extra={"n_params": 150_000, "embedding_map": {"method": "tsne", "coords": coords,
                                                                              "domain": ["day"] * 40 + ["night <i>"] * 40},
                                        "shift": {"proxy_a_distance": 1.2}}))
    for k, acc in ((1, 0.55), (5, 0.78)):
        write_result(root / "fewshot" / f"protonet-{k}shot", make_result(
            strategy="protonet", family="scarce-data", params={"k_shot": k},
            metrics={"accuracy": acc, "ci95": 0.012, "k_shot": k, "n_way": 5}, timings={"fit_s": 5.0 + k}))
    write_result(root / "tasks" / "progressive", make_result(
        strategy="progressive", family="many-tasks", params={}, timings={"fit_s": 30.0},
        metrics={"accuracy_matrix": [[0.9, None, None], [0.9, 0.85, None], [0.9, 0.85, 0.8]], "forgetting": 0.0},
        extra={"tasks": ["digits <0-4>", "digits 5-9", "fashion"]}))
    return root


@pytest.fixture(scope="module")
def report(results_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return build_report(results_dir, out), out


def test_one_section_per_folder_of_runs_with_the_charts_its_runs_need(report):
    paths, out = report
    html = open(paths["html"], encoding="utf-8").read()
    assert paths["runs"] == 7
    titles = re.findall(r"<section id='group\d'><h2>([^<]*)</h2>", html)
    assert titles == ["fewshot", "reuse", "shift", "tasks"]
    sections = dict(zip(titles, html.split("<section id=")[1:]))
    assert "accuracy against shots" in sections["fewshot"] and "accuracy matrix" in sections["tasks"]
    assert "TSNE map" in sections["shift"] and "confusion matrix" in sections["reuse"]
    assert "Summary" not in html and "Best" not in html  # no ranking across questions
    assert "<script" not in html.lower()                       # the class name is escaped, never live
    assert "&lt;script&gt;alert(" in html  # in the confusion matrix's labels, as text
    assert "a&amp;b" in html and "night &lt;i&gt;" in html and "runs &lt;&amp;&gt;" in html
    assert "<b>bold</b>" not in html
    assert not re.search(r"(?:https?:)?//[a-z]", html), "the page must hold no external URL"
    assert html.count("<svg") >= 7  # learning curves, 3 confusion matrices, shots, map, accuracy matrix
    # within a group, the most accurate run is set in bold
    assert "lora" in sections["reuse"].split("<tr class=best>")[1].split("</tr>")[0]


def test_markdown_and_figures(report):
    paths, out = report
    md = open(paths["markdown"], encoding="utf-8").read()
    assert md.startswith("# transferkit report") and "## fewshot" in md and "## reuse" in md
    assert "| **reuse/lora** | **lora** | **86.0%** |" in md  # the same table as the HTML, from the same rows
    assert all(os.path.exists(f) for f in paths["figures"]) and len(paths["figures"]) >= 7
    assert any(f.endswith("group0_shots.svg") for f in paths["figures"])


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(TransferkitError, match="no result.json"):
        build_report(tmp_path)


def _chromium(args, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_page_loads_in_headless_chromium_without_console_errors(report, tmp_path):
    paths, out = report
    # the harness itself must catch errors: a broken page is flagged
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); nope();</script></body></html>")
    assert _console_errors(_chromium(["--dump-dom", bad.as_uri()], tmp_path).stderr)
    proc = _chromium(["--dump-dom", f"file://{paths['html']}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not _console_errors(proc.stderr), _console_errors(proc.stderr)
    dom = proc.stdout
    assert "id=\"group0\"" in dom and "accuracy against shots" in dom and "accuracy matrix" in dom
    shot = tmp_path / "report.png"
    proc = _chromium(["--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}", f"file://{paths['html']}"], tmp_path)
    assert shot.exists() and shot.stat().st_size > 20_000


def test_a_tour_gives_one_section_per_situation_with_its_question_verdict_and_advisor(tmp_path):
    root = tmp_path / "tour"
    rows = []
    for situation, question, scores in (
            ("few-shot", "New classes with 1-5 examples?", {"protonet": 0.9, "simpleshot": 0.8}),
            ("continual", "Tasks one after another?", {"ewc": 0.7, "progressive": 0.95})):
        for cand, acc in scores.items():
            res = make_result(strategy=cand, family="x", params={}, metrics={"accuracy": acc}, timings={"fit_s": 1.0})
            res["tour"] = {"situation": situation, "candidate": cand}
            write_result(root / situation / cand, res)
        win = max(scores, key=scores.get)
        rows.append({"situation": situation, "question": question, "metric": "accuracy", "scores": scores,
                     "spread": {"protonet": 0.01} if situation == "few-shot" else {}, "winner": win, "tied": [win],
                     "reason": f"{win} leads", "data": "real <data>", "advisor": "few-shot (F1)",
                     "advisor_note": "agrees with the measurement"})
    (root / "tour.json").write_text(json.dumps({"situations": rows}))
    paths = build_report(root)
    html, md = open(paths["html"]).read(), open(paths["markdown"]).read()
    assert re.findall(r"<section id='([^']*)'>", html) == ["few-shot", "continual"]
    few = html.split("<section id='few-shot'>")[1].split("</section>")[0]
    assert "New classes with 1-5 examples?" in few and "Verdict: protonet." in few and "agrees with" in few
    assert "90.0% ± 1.0%" in few and "real &lt;data&gt;" in few and "ewc" not in few
    assert "| **protonet** | **90.0% ± 1.0%** |" in md and "## continual" in md


def test_a_single_fit_gives_one_section_with_its_learning_curve_and_confusion_matrix(results_dir, tmp_path):
    paths = build_report(results_dir / "reuse" / "finetune", tmp_path / "one")
    html = open(paths["html"]).read()
    assert len(re.findall(r"<section id=", html)) == 1 and "<details open>" in html
    assert "confusion matrix" in html and ">loss<" in html


def test_one_table_model_renders_the_same_rows_in_html_and_markdown():
    from transferkit.report.table import Column, Table

    t = Table(["method", Column("accuracy", "pm"), Column("fit (s)", "s")],
              [["a|b <c>", (0.5, 0.01), 1.25], ["d", (None, None), None]], bold=[0])
    assert t.markdown().splitlines() == ["| method | accuracy | fit (s) |", "|---|---:|---:|",
                                         "| **a\\|b <c>** | **50.0% ± 1.0%** | **1.2** |", "| d | - | - |"]
    assert "<tr class=best><td class=l>a|b &lt;c&gt;</td><td>50.0% ± 1.0%</td><td>1.2</td></tr>" in t.html()


def test_charts_are_matplotlib_deterministic_and_hand_write_no_svg(results_dir, tmp_path):
    import transferkit.report as report_pkg

    a = build_report(results_dir, tmp_path / "a")
    b = build_report(results_dir, tmp_path / "b")
    for fa, fb in zip(a["figures"], b["figures"]):
        assert open(fa).read() == open(fb).read(), fa  # same results, same bytes
    assert all('id="figure_1"' in open(f).read() for f in a["figures"])  # drawn by matplotlib
    src = "".join(p.read_text() for p in Path(report_pkg.__file__).parent.glob("*.py"))
    assert not re.search(r"<(rect|circle|path|line|polyline)\b", src)  # no SVG geometry written by hand


def test_every_chart_has_a_title_and_axis_labels(report):
    paths, _ = report
    for f in paths["figures"]:
        svg = open(f).read()
        labels = re.findall(r"<text[^>]*>([^<]+)</text>", svg)
        assert len(labels) >= 3, (f, labels)  # title, x label, y label (tick labels come on top)


def test_learning_curves_draw_one_legend_entry_per_run_and_no_single_epoch_run():
    """The legend names runs, not every logged key; a run of one epoch has no curve to draw; a loss's parts (a DA
    transfer term) stay out; a continual run's task switches are marked."""
    from transferkit.report import charts

    history = [{"epoch": e, "train_loss": 1.0 / (e + 1), "train_transfer_loss": 0.3, "train_acc": 0.5 + 0.1 * e,
                "val_loss": 1.2 / (e + 1), "val_acc": 0.4 + 0.1 * e, "task": e // 2} for e in range(4)]
    svg = charts.curves({"dann": history, "one epoch": history[:1]}, title="learning curves")
    texts = re.findall(r"<text[^>]*>([^<]+)</text>", svg)  # text stays text (svg.fonttype 'none')
    assert "dann" in texts and "training" in texts and "validation" in texts
    assert "one epoch" not in texts and not any("transfer" in t or "train_" in t for t in texts), texts
    assert any("a new task" in t for t in texts)
    assert charts.curves({"one epoch": history[:1]}, title="t") == ""
