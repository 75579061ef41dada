"""Code written for edflow 0.4 runs unchanged: a project in its style (tests/edflow04_project.py) trains, evaluates
and resumes, survives a kill inside its own save, and edflow.datasets reads edflow's data cache."""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from edflow import checkpoint as ckpt
from edflow.main import run
from toy import SUBPROCESS_ENV, metrics

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "edflow04_project.yaml")


def train(log_root, *extra):
    return run(["-b", PROJECT, "-t", "--log-root", str(log_root), *extra])


def checkpoint_dir(root):
    return os.path.join(root, "train", "checkpoints")


def hook_steps(root):
    with open(os.path.join(root, "hook_steps.txt")) as f:
        return [int(line.split()[0]) for line in f]


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_trains_with_its_own_save_and_edflow_keys(tmp_path, capsys):
    root = train(tmp_path)
    err = capsys.readouterr().err
    steps = [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(checkpoint_dir(root))]
    assert steps == [6, 12]  # after each of num_epochs: 2 epochs of 48 / 8 batches
    for step in steps:
        path = os.path.join(checkpoint_dir(root), f"model-{step}.ckpt")
        assert set(weights(path)) == {"net.weight", "net.bias"}  # the user's own format
        with open(ckpt.sidecar(path)) as f:
            record = json.load(f)
        assert record["step"] == step and ckpt.damage(path) is None
    assert not glob.glob(os.path.join(checkpoint_dir(root), "*.tmp*"))
    assert hook_steps(root) == [0, 3, 6, 9]  # hook_freq: 3
    records = metrics(root)
    assert [r["step"] for r in records if "train/loss" in r] == [1, 2, 4, 6, 8, 10, 12]  # numpy scalars logged
    assert [r["step"] for r in records if "validation/accuracy" in r] == [6, 12]
    config = yaml.safe_load(open(glob.glob(os.path.join(root, "configs", "train_*.yaml"))[0]))
    assert config["num_steps"] == 12 and config["hook_freq"] == 3  # filled in from num_epochs, as edflow did
    assert "num_steps: 12, hook_freq: 3" in err  # self.logger.info
    assert "accuracy_callback: accuracy:" in err  # edflow.get_logger


def test_evaluation_and_resume_know_the_step_of_a_user_checkpoint(tmp_path, capsys):
    root = train(tmp_path)
    capsys.readouterr()
    run(["-p", root, "--log-root", str(tmp_path)])
    out, err = capsys.readouterr()
    assert "model-12.ckpt (step 12)" in err
    results = glob.glob(os.path.join(root, "eval", "*", "12", "results.yaml"))
    assert len(results) == 2  # training's evaluation at step 12 and this one, each in its session folder
    accuracy = [yaml.safe_load(open(p))["validation/accuracy"] for p in results]
    assert accuracy[0] == pytest.approx(accuracy[1])  # evaluated the step-12 weights, not fresh ones
    assert f"validation/accuracy: {accuracy[0]:.6g}" in out

    resumed = run(["-p", root, "-t", "--log-root", str(tmp_path), "num_steps=18"])
    assert resumed == root and "model-12.ckpt (step 12)" in capsys.readouterr().err
    assert hook_steps(root) == [0, 3, 6, 9, 12, 15]
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(checkpoint_dir(root))) == 18


def test_a_checkpoint_written_by_edflow_itself_takes_its_step_from_the_name(tmp_path, capsys):
    root = train(tmp_path)
    other = train(tmp_path / "other", "num_epochs=1")
    shutil.copyfile(os.path.join(checkpoint_dir(root), "model-12.ckpt"), str(tmp_path / "model-12.ckpt"))
    capsys.readouterr()
    run(["-p", other, "-c", str(tmp_path / "model-12.ckpt"), "--log-root", str(tmp_path / "other")])
    assert "(step 12)" in capsys.readouterr().err  # no sidecar: edflow's rule, the number in the name
    assert glob.glob(os.path.join(other, "eval", "*", "12", "results.yaml"))


def test_a_save_that_writes_nothing_at_the_given_path_is_a_clear_error(tmp_path, monkeypatch):
    import edflow04_project

    monkeypatch.setattr(edflow04_project.Trainer, "save", lambda self, path: None)
    with pytest.raises(ckpt.CheckpointError, match=r"wrote no file at the path it was given .*model-6\.ckpt\.tmp"):
        train(tmp_path)


def test_killed_inside_its_own_save_the_run_resumes_from_the_last_whole_checkpoint(tmp_path):
    env = {**SUBPROCESS_ENV, "EDFLOW04_HANG_IN_SAVE_AT": "12"}
    proc = subprocess.Popen([sys.executable, "-m", "edflow", "-b", PROJECT, "-t", "--log-root", str(tmp_path)],
                            cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    markers = []
    while not markers and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
        markers = glob.glob(os.path.join(str(tmp_path), "*_edflow04", "inside_save"))
    assert markers, f"the run never reached its save at step 12: {proc.stderr.read() if proc.poll() else ''}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    root = os.path.dirname(markers[0])
    half_written = open(markers[0]).read()
    assert os.path.basename(half_written).startswith("model-12.ckpt.tmp") and os.path.isfile(half_written)
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(checkpoint_dir(root))) == 6  # never a truncated model-12

    done = subprocess.run([sys.executable, "-m", "edflow", "-p", root, "-t", "--log-root", str(tmp_path)],
                          cwd=str(tmp_path), env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "model-6.ckpt (step 6)" in done.stderr
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(checkpoint_dir(root))) == 12
    assert not glob.glob(os.path.join(checkpoint_dir(root), "*.tmp*"))  # the half-written file was cleared
    assert hook_steps(root) == [0, 3, 6, 9, 6, 9]  # steps 6..11 trained again after the kill


# --- edflow.datasets: edflow's data cache ---------------------------------------------------------------------------
@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDDATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_mnist_from_edflows_cache(cache):
    from edflow.datasets.idx import write_idx
    from edflow.datasets.mnist import MNISTTest, MNISTTrain

    images = np.random.RandomState(0).randint(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(cache / "MNIST" / "t10k-images-idx3-ubyte.gz", images)
    write_idx(cache / "MNIST" / "t10k-labels-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    data = MNISTTest({})
    example = data[3]
    assert len(data) == 5 and example["class"] == 3 and example["image"].shape == (28, 28, 1)
    assert example["image"].dtype == np.float32
    assert np.allclose(example["image"][..., 0], images[3] / 127.5 - 1)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz.* in .*cache/MNIST/.*EDDATA_CACHE"):
        MNISTTrain({})


def test_fashionmnist_and_cifar_and_celeba_from_edflows_cache(cache):
    from edflow.datasets.celeba import CelebATrain
    from edflow.datasets.cifar import CIFAR10Test, CIFAR10Train
    from edflow.datasets.fashionmnist import FashionMNISTTrain
    from edflow.datasets.idx import write_idx
    from fairkit.data.fixtures import write_celeba, write_cifar10

    with pytest.raises(FileNotFoundError, match="FashionMNIST"):
        FashionMNISTTrain({})
    write_idx(cache / "FashionMNIST" / "train-images-idx3-ubyte.gz", np.full((2, 28, 28), 255, dtype=np.uint8))
    write_idx(cache / "FashionMNIST" / "train-labels-idx1-ubyte.gz", np.array([7, 1], dtype=np.uint8))
    fashion = FashionMNISTTrain({})
    assert fashion[0]["class"] == 7 and np.all(fashion[0]["image"] == 1.0)

    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py/data_batch_1.*unpacking cifar-10-python"):
        CIFAR10Train({})
    written = write_cifar10(cache / "CIFAR10", n_per_batch=2)
    test = CIFAR10Test({})
    assert len(test) == len(written["test"].labels) and test[1]["image"].shape == (32, 32, 3)
    assert test[1]["class"] == written["test"].labels[1]

    with pytest.raises(FileNotFoundError, match=r"img_align_celeba/.*list_attr_celeba\.txt"):
        CelebATrain({})
    fixture = write_celeba(cache / "CelebA", n=12, seed=1)
    train = CelebATrain({})
    assert set(np.unique(train.labels["attributes"])) <= {-1, 1}
    assert train[0]["image"].shape[2] == 3 and train[0]["fname"].startswith("img_align_celeba/")
    assert len(train) == int(np.sum(np.asarray(fixture.partition) == 0))
