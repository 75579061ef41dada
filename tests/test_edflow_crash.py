"""Nothing lost: runs killed with SIGKILL at random moments resume to the weights of an uninterrupted run; damaged
checkpoints are recognised and skipped; non-finite losses stop the run or skip the batch."""
import glob
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from edflow import checkpoint as ckpt
from edflow.iterators import NonFiniteLossError
from edflow.main import run
from toy import SUBPROCESS_ENV, TOY, final_weights, metrics, train

STEPS = 120
# a checkpoint at every step and evaluation every 8 steps, so a kill can land in a step, a save or an evaluation
LONG_RUN = [f"num_steps={STEPS}", "num_epochs=1000", "ckpt_freq=1", "ckpt_keep=2", "log_freq=1"]


def checkpoints(root):
    return os.path.join(root, "train", "checkpoints")


def newest_step(root):
    return ckpt.checkpoint_step(ckpt.latest_checkpoint(checkpoints(root)) or "")


def start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "edflow", *args], cwd=cwd, env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_after_step(proc, root_pattern, step, delay):
    """SIGKILL once a checkpoint of ``step`` exists, ``delay`` seconds later: at a moment the test does not pick."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        roots = glob.glob(root_pattern)
        if roots and newest_step(roots[0]) >= step:
            time.sleep(delay)
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return glob.glob(root_pattern)[0]


def test_killed_three_times_at_random_moments_resumes_to_the_uninterrupted_weights(tmp_path):
    full = train(tmp_path / "full", *LONG_RUN)
    rng = random.Random(20261124)
    proc = start(["-b", TOY, "-t", "--log-root", "logs", *LONG_RUN], tmp_path)
    root = kill_after_step(proc, str(tmp_path / "logs" / "*_toy"), rng.randint(3, 15), rng.uniform(0, 0.05))
    for _ in range(2):
        before = newest_step(root)
        proc = start(["-p", root, "-t"], tmp_path)
        kill_after_step(proc, root, before + rng.randint(3, 15), rng.uniform(0, 0.05))
    assert newest_step(root) < STEPS, "the kills came too late to test anything"
    run(["-p", root, "-t"])

    assert newest_step(root) == STEPS
    a, b = final_weights(root), final_weights(full)
    assert all(torch.equal(a[k], b[k]) for k in b)
    logged = [r["step"] for r in metrics(root) if "train/loss" in r]
    assert logged == list(range(1, STEPS + 1))  # each step logged once: what a kill cut off is logged again
    assert not glob.glob(os.path.join(checkpoints(root), "*.tmp*"))


def test_sigint_saves_a_checkpoint_of_the_current_step(tmp_path):
    proc = start(["-b", TOY, "-t", "--log-root", "logs", "num_steps=100000", "num_epochs=100000",
                  "eval_freq=1000000"], tmp_path)
    pattern = str(tmp_path / "logs" / "*_toy" / "metrics.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline and not glob.glob(pattern):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    root = os.path.dirname(glob.glob(pattern)[0])
    with open(os.path.join(root, "status.yaml")) as f:
        status = yaml.safe_load(f)
    assert status["status"] == "stopped" and newest_step(root) == status["step"] > 0


def damage_by_truncation(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def damage_by_flipping_a_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", [damage_by_truncation, damage_by_flipping_a_byte])
def test_a_damaged_newest_checkpoint_is_skipped_for_the_previous_good_one(tmp_path, capsys, damage):
    root = train(tmp_path, "num_steps=12", "ckpt_freq=4", "ckpt_keep=5")
    damage(os.path.join(checkpoints(root), "model-12.ckpt"))
    assert ckpt.damage(os.path.join(checkpoints(root), "model-12.ckpt")) is not None
    assert ckpt.damage(os.path.join(checkpoints(root), "model-8.ckpt")) is None
    assert ckpt.latest_checkpoint(checkpoints(root)).endswith("model-8.ckpt")
    assert "skipping checkpoint" in capsys.readouterr().err
    resumed = run(["-p", root, "-t", "num_steps=16"])
    assert newest_step(resumed) == 16
    full = train(tmp_path / "full", "num_steps=16")
    a, b = final_weights(resumed), final_weights(full)
    assert all(torch.equal(a[k], b[k]) for k in b)


@pytest.mark.parametrize("damage", [damage_by_truncation, damage_by_flipping_a_byte])
def test_loading_a_damaged_checkpoint_is_a_clear_error(tmp_path, damage):
    root = train(tmp_path, "num_steps=4")
    path = os.path.join(checkpoints(root), "model-4.ckpt")
    damage(path)
    with pytest.raises(ckpt.CheckpointError, match="model-4.ckpt.*(bytes|sha256)"):
        ckpt.load(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_dash_c_with_a_bad_file_is_one_clear_line(tmp_path, content):
    root = train(tmp_path, "num_steps=4")
    bad = tmp_path / "bad.ckpt"
    if content is not None:
        bad.write_bytes(content)
    done = subprocess.run([sys.executable, "-m", "edflow", "-p", root, "-c", str(bad)], env=SUBPROCESS_ENV,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("edflow: error: ") and "bad.ckpt" in lines[-1]
    assert "Traceback" not in done.stderr


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    small = train(tmp_path / "small", "num_steps=4")
    with pytest.raises(ckpt.CheckpointError, match="does not fit this run's model"):
        train(tmp_path / "big", "num_steps=4", "Model.hidden=16", "-c",
              ckpt.latest_checkpoint(checkpoints(small)))


def test_a_non_finite_loss_names_the_step_and_the_loss_term(tmp_path):
    with pytest.raises(NonFiniteLossError, match="train_op returned mse = nan at step 6;.*model-4.ckpt"):
        train(tmp_path, "+Trainer.explode_at=5", "ckpt_freq=2")


def test_nan_policy_skip_skips_the_bad_batches_and_counts_them(tmp_path, capsys):
    root = train(tmp_path, "nan_policy=skip", "+Trainer.explode_steps=[3, 7]")
    assert "step 4: non-finite loss, batch skipped" in capsys.readouterr().err
    checkpoint = ckpt.load(ckpt.latest_checkpoint(checkpoints(root)))
    assert checkpoint["skipped_steps"] == 2 and checkpoint["global_step"] == 24
    assert all(torch.isfinite(v).all() for v in checkpoint["state"]["model"].values())
    # the skipped batches changed nothing: not the weights, not Adam's moments, not the schedule
    assert checkpoint["state"]["optimizer"]["state"][0]["step"] == 22
    assert checkpoint["state"]["scheduler"]["last_epoch"] == 22


def test_nan_policy_skip_still_stops_a_run_whose_every_loss_is_non_finite(tmp_path):
    with pytest.raises(NonFiniteLossError, match="21 batches in a row"):
        train(tmp_path, "nan_policy=skip", "+Trainer.explode_at=2", "num_epochs=10")


def test_runs_started_in_the_same_second_by_several_processes_get_different_folders(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        roots = list(pool.map(new_run_root, [str(tmp_path)] * 8))
    assert len(set(roots)) == 8 and all(os.path.isdir(root) for root in roots)


def new_run_root(log_root):
    from edflow.main import parser, run_root

    args, _ = parser().parse_known_args(["-b", TOY, "--log-root", log_root])
    return run_root(args, {})
