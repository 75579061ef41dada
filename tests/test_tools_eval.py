"""edeval (re-evaluate a checkpoint) and edlist (runs with status, step and last metrics) on runs of the toy model."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

import toy
from edflow import checkpoint as ckpt
from edflow.main import run as edflow_run
from edflow.runs import eval_results, read_status
from edflow.tools import edeval_main, edlist_main, evaluate_run, run_row
from edflow.first_stage import latest_config_path
from edflow.logger import read_metrics

TOY_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy.yaml")


def mae_callback(root, data_in, data_out, config):
    return {"mae": float(np.mean(np.abs(data_out.labels["prediction"] - data_out.labels["target"])))}


def train_toy(log_root, *extra) -> str:
    return edflow_run(["-b", TOY_CONFIG, "-t", "--log-root", str(log_root), *extra])


@pytest.fixture(scope="module")
def log_root(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:  # the runner points EDFLOW_LOG_ROOT at its log root
        root = tmp_path_factory.mktemp("logs")
        patch.setenv("EDFLOW_LOG_ROOT", str(root))
        yield root


@pytest.fixture(scope="module")
def toy_run(log_root) -> str:
    return train_toy(log_root)


def validation_errors(run: str, checkpoint: str) -> np.ndarray:
    """The toy model of ``checkpoint`` on the validation set, computed here without the runner."""
    import torch

    config = yaml.safe_load(open(latest_config_path(run)))
    model = toy.Model(config)
    model.load_state_dict(ckpt.model_state_dict(ckpt.load(checkpoint)))
    model.eval()
    data = toy.ToyValidation().arrays
    with torch.no_grad():
        return (model(data["x"]) - data["y"]).numpy().astype(np.float64)


def checkpoint_of(run: str, step: int) -> str:
    return os.path.join(run, "train", "checkpoints", f"model-{step}.ckpt")


def test_edeval_evaluates_the_newest_checkpoint_and_writes_results_yaml(toy_run, capsys):
    before = {r.path for r in eval_results(toy_run)}
    edeval_main(["-p", toy_run])
    new = [r for r in eval_results(toy_run) if r.path not in before]
    assert len(new) == 1 and new[0].step == 24  # 3 epochs of 64 / 8 batches
    assert new[0].path == os.path.join(toy_run, "eval", new[0].session, "24", "results.yaml")
    expected = np.mean(validation_errors(toy_run, checkpoint_of(toy_run, 24)) ** 2)
    assert new[0].values["validation/mse"] == pytest.approx(expected, rel=1e-5)
    training_eval = [r for r in eval_results(toy_run) if r.step == 24 and r.path not in {new[0].path}]
    assert new[0].values["validation/mse"] == pytest.approx(training_eval[0].values["validation/mse"], rel=1e-6)
    assert f"validation/mse: {new[0].values['validation/mse']:.6g}" in capsys.readouterr().out


def test_edeval_takes_a_checkpoint_by_step_and_best(toy_run):
    results, path = evaluate_run(["-p", toy_run, "-c", "8"])
    assert path.endswith(os.path.join("8", "results.yaml")) and yaml.safe_load(open(path))["step"] == 8
    expected = np.mean(validation_errors(toy_run, checkpoint_of(toy_run, 8)) ** 2)
    assert results["validation/mse"] == pytest.approx(expected, rel=1e-5)
    best = yaml.safe_load(open(os.path.join(toy_run, "train", "best.yaml")))
    results, path = evaluate_run(["-p", toy_run, "-c", "best"])
    assert yaml.safe_load(open(path))["step"] == best["step"]
    assert results["validation/mse"] == pytest.approx(best["value"], rel=1e-6)


def test_edeval_callbacks_named_on_the_command_line_replace_the_runs_own(toy_run):
    results, path = evaluate_run(["-p", toy_run, "-c", checkpoint_of(toy_run, 16),
                                  "--callback", "mae=test_tools_eval.mae_callback", "--split", "validation"])
    expected = np.mean(np.abs(validation_errors(toy_run, checkpoint_of(toy_run, 16))))
    assert results["validation/mae"] == pytest.approx(expected, rel=1e-5)
    assert "validation/mse" not in results  # the config's mse callback did not run
    assert set(yaml.safe_load(open(path))) == {"step", "epoch", "validation/mae", "validation/loss"}
    eval_configs = sorted(glob.glob(os.path.join(toy_run, "configs", "eval_*.yaml")))
    assert yaml.safe_load(open(eval_configs[-1]))["eval_pipeline"]["callbacks"] == {
        "mae": "test_tools_eval.mae_callback"}
    assert latest_config_path(toy_run).startswith(os.path.join(toy_run, "configs", "train_"))


@pytest.mark.parametrize("argv, message", [
    (["-c", "999"], "no such checkpoint .* available: .*model-24.ckpt"),
    (["--callback", "mae=test_tools_eval.no_such_callback"], "has no attribute 'no_such_callback'"),
    (["--split", "tset"], r"--split \['tset'\]: the config's evaluation datasets are \['validation'\]"),
])
def test_edeval_bad_arguments_are_clear_errors(toy_run, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        edeval_main(["-p", toy_run, *argv])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def edlist_rows(capsys, *argv) -> dict[str, list[str]]:
    edlist_main(list(argv))
    lines = capsys.readouterr().out.strip().splitlines()
    header, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[:1] + lines[2:]]
    assert header == ["name", "status", "step", "metrics"]
    return {cells[0]: cells[1:] for cells in rows}


def write_status(run: str, **status) -> None:
    with open(os.path.join(run, "status.yaml"), "w") as f:
        yaml.safe_dump(status, f)


def test_edlist_shows_status_step_and_last_metrics(toy_run, log_root, capsys):
    with pytest.raises(FloatingPointError):
        train_toy(log_root, "-n", "exploding", "+Trainer.explode_at=3")
    exploded = glob.glob(os.path.join(log_root, "*_exploding"))[0]
    dead = os.path.join(log_root, "2020-01-01T00-00-00_dead")
    shutil.copytree(toy_run, dead)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    status = read_status(toy_run)
    write_status(dead, **{**status, "status": "running", "step": 16, "pid": gone.pid})
    alive = os.path.join(log_root, "2020-01-01T00-00-01_alive")
    shutil.copytree(toy_run, alive)
    write_status(alive, **{**status, "status": "running", "pid": os.getpid()})
    os.makedirs(os.path.join(log_root, "2020-01-01T00-00-02_new", "configs"))

    rows = edlist_rows(capsys, str(log_root))
    name = os.path.basename
    assert rows[name(toy_run)][:2] == ["finished", "24"]
    assert rows[name(exploded)][0].startswith("failed: NonFiniteLossError: train_op returned mse = nan at step 4")
    assert rows[name(exploded)][1] == "4"  # step 4 (global step 3 before it) returned NaN
    assert rows[name(dead)][:2] == ["died", "16"]
    assert rows[name(alive)][:2] == ["running", "24"]
    assert rows["2020-01-01T00-00-02_new"][:2] == ["unknown", ""]
    last = [r for r in read_metrics(toy_run) if "validation/mse" in r]
    last = max(last, key=lambda r: r["step"])["validation/mse"]  # edeval above re-evaluated older steps too
    assert f"validation/mse={last:.4g}" in rows[name(toy_run)][2]
    assert "train/loss" not in rows[name(toy_run)][2]  # evaluation metrics are shown when there are any
    assert rows[name(exploded)][2].startswith("train/loss=")  # the failed run logged no evaluation
    only = run_row(toy_run, ["train/*"])["metrics"]
    assert only.startswith("train/loss=") and "validation" not in only


def test_edlist_without_runs_says_so(tmp_path, capsys):
    edlist_main([str(tmp_path)])
    assert "no runs under" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        edlist_main([str(tmp_path / "missing")])
