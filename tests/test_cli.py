import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from transferkit.cli import _register, app

_register()
runner = CliRunner()


def test_every_command_has_help():
    for cmd in ("fit", "evaluate", "predict", "pretrain", "backbones", "strategies", "datasets"):
        r = runner.invoke(app, [cmd, "--help"])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["fit", "--help"])
    assert "--strategy" in r.output and "--recipe" in r.output


def test_backbones_strategies_datasets_lists():
    assert "builtin:small-cnn" in runner.invoke(app, ["backbones"]).output
    assert "timm:NAME" in runner.invoke(app, ["backbones"]).output
    assert "finetune" in runner.invoke(app, ["strategies"]).output
    r = runner.invoke(app, ["strategies", "--params", "finetune"])
    lines = {line.split()[0]: line for line in r.output.splitlines()[3:]}
    assert r.exit_code == 0 and "lr_decay" in lines and "a number in (0, 1]" in lines["lr_decay"], r.output
    assert "one of {'auto', 'eval', 'frozen', 'train'}" in lines["bn_policy"] and "an integer in [0, epochs] | None" in lines["lp_epochs"]
    assert "epochs" not in {line.split()[0] for line in runner.invoke(app, ["strategies", "--params", "eszsl"]).output.splitlines()[3:]}
    r = runner.invoke(app, ["strategies", "--params", "finetun"])
    assert r.exit_code == 2 and "Did you mean 'finetune'" in r.output
    assert "fashion-mnist" in runner.invoke(app, ["datasets"]).output


def test_pretrain_fit_recipe_evaluate_predict(tmp_path):
    pre = tmp_path / "pre"
    r = runner.invoke(app, ["pretrain", "--data", "digits", "--classes", "0,1,2,3,4", "--epochs", "1",
                            "--arch", "builtin:micro-cnn", "--out", str(pre)])
    assert r.exit_code == 0, r.output
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"strategy: finetune\ndata: digits\nparams:\n  backbone: file:{pre}\n  epochs: 1\n  lr: 0.003\n")
    out = tmp_path / "fit"
    r = runner.invoke(app, ["fit", "--recipe", str(recipe), "--out", str(out), "--no-progress", "-p", "batch_size=32"])
    assert r.exit_code == 0, r.output
    result = json.loads((out / "result.json").read_text())
    assert result["params"]["batch_size"] == 32 and result["metrics"]["accuracy"] > 0.1
    r = runner.invoke(app, ["evaluate", str(out / "model"), "--data", "digits"])
    assert r.exit_code == 0 and '"accuracy"' in r.output
    r = runner.invoke(app, ["evaluate", str(out / "model"), "--data", "digits", "--within-domain"])
    assert r.exit_code == 2 and "--within-domain draws few-shot episodes" in r.output
    from PIL import Image

    Image.new("L", (8, 8), 255).save(tmp_path / "x.png")
    r = runner.invoke(app, ["predict", str(out / "model"), str(tmp_path / "x.png"), "--top-k", "2"])
    assert r.exit_code == 0 and r.output.startswith("path,label,probability") and r.output.count("x.png") == 2


def test_cli_errors_are_clean():
    r = runner.invoke(app, ["fit", "--strategy", "finetun", "--data", "digits"])
    assert r.exit_code == 2 and "Did you mean 'finetune'" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["fit", "--strategy", "finetune", "--data", "/no/such/dir"])
    assert r.exit_code == 2 and "Unknown dataset" in r.output


def test_a_missing_data_role_is_named_before_anything_is_read_or_written(tmp_path):
    out = tmp_path / "dann"
    r = runner.invoke(app, ["fit", "--strategy", "dann", "--data", "/no/such/dir", "--out", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "'dann' needs data role(s) ['target']" in r.output and "Pass --target" in r.output
    assert not out.exists()


def test_recipes_are_data_not_code(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("strategy: !!python/object/apply:os.system ['echo pwned']\ndata: digits\n")
    r = runner.invoke(app, ["fit", "--recipe", str(evil)])
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_two_process_cpu_ddp(tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "transferkit", "fit", "--strategy", "finetune", "--data", "digits",
                        "--backbone", "builtin:micro-cnn", "--epochs", "1", "--devices", "2", "--accelerator", "cpu",
                        "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Starting with 2 processes" in r.stdout + r.stderr
    assert json.loads((out / "result.json").read_text())["metrics"]["accuracy"] > 0.1


@pytest.mark.parametrize("args,key", [
    (["--strategy", "coral", "--target", "digits", "--epochs", "1"], "accuracy"),
    (["--strategy", "eszsl", "--semantics", "digits"], "accuracy"),  # frozen features: no --epochs to give
    (["--strategy", "progressive", "--tasks", "5", "--epochs", "1"], "forgetting"),
])
def test_fit_with_other_data_roles(tmp_path, args, key):
    out = tmp_path / "run"
    r = runner.invoke(app, ["fit", "--data", "digits", *args, "--backbone", "builtin:micro-cnn",
                            "--param", "input_size=16", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert key in json.loads((out / "result.json").read_text())["metrics"]


def test_a_training_knob_on_a_frozen_feature_strategy_is_refused_by_name(tmp_path):
    r = runner.invoke(app, ["fit", "--data", "digits", "--strategy", "eszsl", "--semantics", "digits", "--epochs", "1",
                            "--out", str(tmp_path / "run"), "--no-progress"])
    assert r.exit_code == 2 and "Unknown parameter 'epochs' for strategy 'eszsl'" in r.output
    assert not (tmp_path / "run").exists()
