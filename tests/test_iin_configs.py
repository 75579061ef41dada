"""Every IIN config, as written and with its CPU-scale overlay, builds and trains for two steps on tiny data in
debug mode (the configs' debug sections: 2 steps, tiny nets, small subsets; DomainBed style); second stages find
their first stage by run name in the same log root.
CelebA and CIFAR-10 come from tiny fixture folders under $FAIRKIT_DATA."""
import os

import pytest
import torch
import yaml

from edflow.main import run
from fairkit.data.fixtures import write_celeba, write_cifar10

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
FIRST_STAGES = {"mnist_ae": None, "fashionmnist_ae": None, "cmnist_ae": None, "cifar_ae": None, "celeba_ae": None,
                "cmnist_clf": None,
                "mnist_iin": "mnist_ae", "fashionmnist_iin": "fashionmnist_ae", "cifar_iin": "cifar_ae",
                "celeba_iin": "celeba_ae", "cmnist_diin": "cmnist_ae", "celeba_diin": "celeba_ae",
                "cmnist_clf_diin": "cmnist_clf"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("iin_configs")
    write_celeba(root / "data" / "celeba", n=12)
    write_cifar10(root / "data" / "cifar10", n_per_batch=4)
    previous = {key: os.environ.get(key) for key in ("FAIRKIT_DATA", "EDFLOW_LOG_ROOT")}
    os.environ["FAIRKIT_DATA"] = str(root / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: more threads only add synchronisation
    yield {"logs": str(root / "logs"), "done": set()}
    torch.set_num_threads(threads)
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def train_debug(workspace, name: str, cpu: bool) -> str:
    first = FIRST_STAGES[name]
    if first and first not in workspace["done"]:
        train_debug(workspace, first, cpu=False)
    configs = [os.path.join(CONFIGS, f"{name}.yaml")] + ([os.path.join(CONFIGS, "cpu", f"{name}.yaml")] if cpu else [])
    folder = run(["-b", *configs, "-t", "-d", "--log-root", workspace["logs"]])
    workspace["done"].add(name)
    return folder


@pytest.mark.parametrize("cpu", [False, True], ids=["paper", "cpu"])
@pytest.mark.parametrize("name", list(FIRST_STAGES))
def test_config_trains_two_steps(workspace, name, cpu):
    folder = train_debug(workspace, name, cpu)
    assert os.path.isfile(os.path.join(folder, "train", "checkpoints", "model-2.ckpt"))
    with open(os.path.join(folder, "status.yaml")) as f:
        assert yaml.safe_load(f)["status"] == "finished"
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        keys = set().union(*(yaml.safe_load(line).keys() for line in f))
    assert any(k.startswith("train/") for k in keys) and any(k.startswith("validation/") for k in keys)


def test_every_iin_config_has_a_cpu_overlay_and_a_debug_section():
    for name in FIRST_STAGES:
        with open(os.path.join(CONFIGS, f"{name}.yaml")) as f:
            config = yaml.safe_load(f)
        assert config["experiment_name"] == name and config.get("debug"), name
        assert os.path.isfile(os.path.join(CONFIGS, "cpu", f"{name}.yaml")), name
        if FIRST_STAGES[name]:
            assert config["first_stage"] == {"run": FIRST_STAGES[name]}, name
