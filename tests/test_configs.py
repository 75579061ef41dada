"""Every config in configs/, at paper scale and with its CPU-scale overlay, built and trained for a few steps
(`edflow -t -d`) on tiny data, in the order their first stages need; CelebA and CIFAR-10 come from fixtures."""
import glob
import os
from graphlib import TopologicalSorter

import pytest
import torch
import yaml

from edflow.main import run
from fairkit.data.fixtures import write_celeba, write_cifar10

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))


def run_name(path):
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    return config.get("experiment_name") or os.path.splitext(os.path.basename(path))[0], config


def stage_names(first_stage):
    if not first_stage:
        return []
    if "run" in first_stage:
        return [str(first_stage["run"])]
    return [name for sub in first_stage.values() if isinstance(sub, dict) for name in stage_names(sub)]


def in_dependency_order(paths):
    names = {}
    needs = {}
    for path in paths:
        name, config = run_name(path)
        names[name] = path
        needs[path] = stage_names(config.get("first_stage"))
    graph = {path: {names[n] for n in deps if n in names} for path, deps in needs.items()}
    return list(TopologicalSorter(graph).static_order())


def variants():
    for path in in_dependency_order(CONFIGS):
        name = os.path.basename(path)
        yield pytest.param([path], id=name)
        overlay = os.path.join(ROOT, "configs", "cpu", name)
        if os.path.isfile(overlay):
            yield pytest.param([path, overlay], id=f"cpu/{name}")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    write_celeba(data / "celeba", n=48)
    write_cifar10(data / "cifar10", n_per_batch=8)
    logs = tmp_path_factory.mktemp("logs")
    previous = os.environ.get("FAIRKIT_DATA")
    os.environ["FAIRKIT_DATA"] = str(data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: more threads only add synchronisation
    yield logs
    torch.set_num_threads(threads)
    if previous is None:
        os.environ.pop("FAIRKIT_DATA", None)
    else:
        os.environ["FAIRKIT_DATA"] = previous


def test_there_are_configs():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_has_a_debug_section_and_a_cpu_variant(path):
    name, config = run_name(path)
    assert config.get("debug"), f"{path} needs a debug: section that makes -d runs tiny"
    # fairgen and latent de-biasing are CelebA-only methods: their CPU-scale variants are the MNIST stand-in configs
    celeba_only = os.path.basename(path).startswith(("celeba_fairgen", "celeba_latentdebias"))
    assert celeba_only or os.path.isfile(os.path.join(ROOT, "configs", "cpu", os.path.basename(path))), \
        f"no CPU overlay for {path}"


@pytest.mark.parametrize("configs", list(variants()))
def test_config_trains_a_few_steps(configs, workspace):
    root = run(["-b", *configs, "-t", "-d", "--log-root", str(workspace)])
    checkpoints = glob.glob(os.path.join(root, "train", "checkpoints", "model-*.ckpt"))
    assert checkpoints, f"no checkpoint written by {configs}"
    with open(os.path.join(root, "status.yaml")) as f:
        assert yaml.safe_load(f)["status"] == "finished"
