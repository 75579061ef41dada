"""The runner end to end on the toy regression problem of tests/toy.py."""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from edflow import checkpoint as ckpt
from edflow.first_stage import FirstStageError, load_first_stages
from edflow.iterators import NonFiniteLossError
from edflow.main import run
from edflow.preflight import PreflightError

from toy import SUBPROCESS_ENV, TOY, final_weights, metrics, train, train_losses


def test_training_writes_the_run_folder_layout(tmp_path):
    root = train(tmp_path)
    assert os.path.basename(root).endswith("_toy")
    assert len(glob.glob(os.path.join(root, "configs", "train_*.yaml"))) == 1
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))) == 24
    assert glob.glob(os.path.join(root, "train", "log_op", "inputs_*.png"))
    results = glob.glob(os.path.join(root, "eval", "*", "*", "results.yaml"))
    assert len(results) == 3  # one evaluation per epoch
    with open(sorted(results, key=lambda p: int(p.split(os.sep)[-2]))[-1]) as f:
        last = yaml.safe_load(f)
    assert last["step"] == 24 and last["validation/n"] == 32
    records = metrics(root)
    assert {"train/loss", "validation/mse", "validation/loss"} <= set().union(*records)
    with open(os.path.join(root, "status.yaml")) as f:
        assert yaml.safe_load(f)["status"] == "finished"
    with open(os.path.join(root, "train", "best.yaml")) as f:
        best = yaml.safe_load(f)
    mses = [r["validation/mse"] for r in records if "validation/mse" in r]
    assert best["value"] == pytest.approx(min(mses))
    assert os.path.isfile(os.path.join(root, "train", "checkpoints", "best.ckpt"))


@pytest.mark.parametrize("dataset", ["toy.ToyTrain", "toy.ToyPerExample"])
def test_resumed_run_equals_uninterrupted_run(tmp_path, dataset):
    full = train(tmp_path / "a", f"datasets.train={dataset}", "num_steps=21")
    part = train(tmp_path / "b", f"datasets.train={dataset}", "num_steps=11")  # stops mid-epoch
    resumed = run(["-p", part, "-t", "--log-root", str(tmp_path / "b"), "num_steps=21"])
    assert resumed == part
    assert train_losses(resumed) == train_losses(full)
    a, b = final_weights(full), final_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_with_a_changed_lr_says_the_checkpoints_lr_is_kept(tmp_path, capsys):
    part = train(tmp_path, "num_steps=11")  # past the StepLR's first decay, so lr != initial_lr
    capsys.readouterr()
    run(["-p", part, "-t", "--log-root", str(tmp_path), "num_steps=12"])
    assert "learning rates" not in capsys.readouterr().err
    resumed = run(["-p", part, "-t", "--log-root", str(tmp_path), "num_steps=13", "+Trainer.lr=0.05"])
    warning = capsys.readouterr().err
    assert "optimizer's learning rates [0.05] from the config are replaced by the checkpoint's [0.01]" in warning
    assert resumed == part


def test_evaluation_of_a_run_uses_its_newest_checkpoint(tmp_path, capsys):
    root = train(tmp_path)
    capsys.readouterr()
    run(["-p", root, "--log-root", str(tmp_path)])
    printed = capsys.readouterr().out
    last = [r for r in metrics(root) if "validation/mse" in r]
    assert last[-1]["step"] == 24 and f"validation/mse: {last[-1]['validation/mse']:.6g}" in printed
    assert last[-1]["validation/mse"] == pytest.approx(last[-2]["validation/mse"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="last good checkpoint is .*model-8.ckpt"):
        train(tmp_path, "+Trainer.explode_at=12")
    root = glob.glob(os.path.join(tmp_path, "*_toy"))[0]
    steps = [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(os.path.join(root, "train", "checkpoints"))]
    assert steps == [8]
    with open(os.path.join(root, "status.yaml")) as f:
        assert yaml.safe_load(f)["status"] == "failed"


def test_first_stage_is_loaded_frozen_by_run_name(tmp_path):
    first = train(tmp_path)
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({"first_stage": {"run": "toy"}, "experiment_name": "second"}))
    from edflow.main import build_iterator, build_config, parser

    os.environ["EDFLOW_LOG_ROOT"] = str(tmp_path)
    args, rest = parser().parse_known_args(["-b", TOY, str(second), "-t"])
    config, _ = build_config(args, rest)
    iterator = build_iterator(config, str(tmp_path / "x"), train=True)
    stage = iterator.first_stage
    assert not any(p.requires_grad for p in stage.parameters()) and not stage.training
    weights = final_weights(first)
    assert all(torch.equal(stage.state_dict()[k], weights[k]) for k in weights)
    assert "first_stage" not in iterator.stateful_attributes()


def test_first_stage_in_the_original_iin_form(tmp_path):
    first = train(tmp_path)
    from edflow.first_stage import load_first_stages

    checkpoint = ckpt.latest_checkpoint(os.path.join(first, "train", "checkpoints"))
    stage = load_first_stages({"checkpoint": checkpoint, "model": "toy.Model",
                               "subconfig": {"Model": {"hidden": 8, "dropout": 0.1}}})
    assert torch.equal(stage.state_dict()["net.0.weight"], final_weights(first)["net.0.weight"])


def test_missing_first_stage_is_a_clear_error(tmp_path):
    # reported by the preflight, before a run folder is made
    with pytest.raises(PreflightError, match="edflow -b configs/nowhere.yaml -t"):
        train(tmp_path, "+first_stage.run=nowhere")
    with pytest.raises(PreflightError, match="does not exist"):
        train(tmp_path, "+first_stage.checkpoint=/no/such.ckpt", "+first_stage.model=toy.Model")
    assert not os.path.exists(tmp_path / "logs") and not glob.glob(str(tmp_path / "*_toy"))
    with pytest.raises(FirstStageError, match="does not exist"):  # the loader itself says so too
        load_first_stages({"checkpoint": "/no/such.ckpt", "model": "toy.Model"})


def test_checkpoints_never_unpickle_code(tmp_path):
    path = str(tmp_path / "evil.ckpt")
    torch.save({"payload": subprocess.Popen}, path)
    with pytest.raises(Exception, match="(?i)weights_only"):
        ckpt.load(path)


def cli(*args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "edflow", *args], cwd=cwd, env=SUBPROCESS_ENV, capture_output=True,
                          text=True, **kwargs)


def test_cli_trains_evaluates_and_reports_errors(tmp_path):
    done = cli("-b", TOY, "-t", "-n", "cli", "--log-root", "logs", cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    root = glob.glob(str(tmp_path / "logs" / "*_cli"))[0]
    evaluated = cli("-p", root, "--log-root", "logs", cwd=tmp_path, timeout=120)
    assert evaluated.returncode == 0 and "validation/mse" in evaluated.stdout
    wrong = cli("-b", TOY, "-t", "Trainer.lrr=0.1", cwd=tmp_path, timeout=60)
    assert wrong.returncode == 2 and "Did you mean 'Trainer/lr'" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_sigterm_saves_the_current_step_and_resume_finishes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "edflow", "-b", TOY, "-t", "--log-root", "logs",
                             "num_steps=100000", "num_epochs=100000", "eval_freq=1000000"],
                            cwd=tmp_path, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    metrics_files = []
    while time.time() < deadline and not metrics_files:
        metrics_files = glob.glob(str(tmp_path / "logs" / "*" / "metrics.jsonl"))
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    root = os.path.dirname(metrics_files[0])
    with open(os.path.join(root, "status.yaml")) as f:
        status = yaml.safe_load(f)
    assert status["status"] == "stopped"
    saved = ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints")))
    assert saved == status["step"] > 0




def test_first_stage_checkpoint_best_loads_the_model_selection_checkpoint(tmp_path):
    from edflow.first_stage import load_stage

    root = train(tmp_path / "selected")
    stage = load_stage({"run": root, "checkpoint": "best"})
    best = ckpt.load(os.path.join(root, "train", "checkpoints", "best.ckpt"))["state"]["model"]
    assert all(torch.equal(stage.state_dict()[k], best[k]) for k in best)
    unselected = train(tmp_path / "unselected", "model_selection=null")
    with pytest.raises(FirstStageError, match="has no best.ckpt"):
        load_stage({"run": unselected, "checkpoint": "best"})
