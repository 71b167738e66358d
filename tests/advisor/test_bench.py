"""Bench: same seed -> same ranking; results written; unknown or impossible candidates reported."""
import json

import pytest
from typer.testing import CliRunner

from transferkit.advisor import bench
from transferkit.data import k_per_class
from transferkit.engine import read_results
from transferkit.errors import TransferkitError


@pytest.fixture(scope="module")
def small_split(target_split):
    train, test = target_split
    return k_per_class(train, 30, seed=0), k_per_class(test, 20, seed=0)


def _run(split, out, seed=0):
    train, test = split
    return bench(train, test, ["finetune", "freeze", "nosuch"], backbone="builtin:small-cnn", epochs=2,
                 batch_size=32, seed=seed, out=out, pretrained=False, lr=3e-3)


def test_same_seed_same_ranking(small_split, tmp_path):
    a = _run(small_split, tmp_path / "a")
    b = _run(small_split, tmp_path / "b")
    rank = lambda s: [(r["strategy"], r["accuracy"]) for r in s["ranking"]]
    assert rank(a) == rank(b)
    assert [r["strategy"] for r in a["ranking"]] and len(a["ranking"]) == 2
    accs = [r["accuracy"] for r in a["ranking"]]
    assert accs == sorted(accs, reverse=True)
    assert max(accs) > 0.2 + 0.1  # 5 classes: above chance (0.2) by a stated margin after 2 epochs
    skipped = {r["strategy"]: r for r in a["runs"] if r["status"] != "ok"}
    assert "Unknown strategy 'nosuch'" in skipped["nosuch"]["reason"] and "finetune" in skipped["nosuch"]["reason"]
    results = read_results(tmp_path / "a")
    assert sorted(r["strategy"] for r in results) == ["finetune", "freeze"]
    assert all(r["timings"]["fit_s"] > 0 and r["metrics"]["confusion_matrix"] for r in results)
    summary = json.loads((tmp_path / "a" / "bench.json").read_text())
    assert [r["strategy"] for r in summary["ranking"]] == [r["strategy"] for r in a["ranking"]]
    md = (tmp_path / "a" / "bench.md").read_text()
    assert "| 1 |" in md and "nosuch: skipped" in md
    for r in a["ranking"]:
        assert {"rank_time", "rank_size", "fit_s", "n_params"} <= set(r)


def test_missing_role_and_bad_params_are_reported(small_split, tmp_path):
    train, test = small_split
    out = tmp_path / "b"
    with pytest.raises(TransferkitError, match="bench: 'finetune': Unknown parameter 'no_such_param' for strategy"):
        bench(train, test, ["features", "finetune"], params={"finetune": {"no_such_param": 1}}, epochs=1, out=out)
    with pytest.raises(TransferkitError, match=r"bench: 'lora': The 'r' parameter of LoRA must be in \[1, None\]; got 0"):
        bench(train, test, ["features", "lora"], params={"lora": {"r": 0}}, epochs=1, out=out)
    assert not out.exists(), "a bad parameter was found only after some work was done"
    with pytest.raises(TransferkitError, match="rank_by"):
        bench(train, test, ["finetune"], rank_by="speed")
    with pytest.raises(TransferkitError, match="not among the strategies"):
        bench(train, test, ["finetune"], params={"lora": {"rank": 2}})


def test_cli_advise_and_report(tmp_path, small_split):
    from transferkit.cli import _register, app

    _register()
    runner = CliRunner()
    res = runner.invoke(app, ["advise", "--data", "digits", "--no-measure", "--new-class-shots", "2"])
    assert res.exit_code == 0, res.output
    assert "1. few-shot" in res.output and "2 example(s)" in res.output and "174" in res.output
    res = runner.invoke(app, ["advise", "--tasks", "paralel"])
    assert res.exit_code == 2 and "'tasks'" in res.output and "'paralel'" in res.output
    res = runner.invoke(app, ["advise", "--unseen-classes", "attributes", "--json", str(tmp_path / "a.json")])
    assert res.exit_code == 0 and json.loads((tmp_path / "a.json").read_text())["ranked"][0]["approach"] == "zero-shot"
    res = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "not found" in res.output


def test_cli_bench_writes_ranking_and_report(tmp_path):
    from transferkit.cli import _register, app

    _register()
    out = tmp_path / "bench"
    res = CliRunner().invoke(app, ["bench", "--data", "digits", "--strategies", "freeze,nosuch", "--backbone",
                                   "builtin:micro-cnn", "--no-pretrained", "--epochs", "1", "--test-fraction", "0.5",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| 1 | freeze |" in res.output and "nosuch: skipped" in res.output
    assert (out / "freeze" / "result.json").exists() and (out / "report.html").exists()
    res = CliRunner().invoke(app, ["bench", "--data", "digits", "--strategies", "nosuch", "--out", str(tmp_path / "b2")])
    assert res.exit_code == 1 and "no candidate finished" in res.output
