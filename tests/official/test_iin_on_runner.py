"""The official IIN code (CompVis/iin, written for edflow 0.4) on our runner, unchanged: its iin.data datasets read
edflow's data cache, and its classifier stage (iin.iterators.clf, iin.models.clf) trains, evaluates and is
evaluated again from its official config. Runs when $FAIRKIT_OFFICIAL_IIN names a checkout of CompVis/iin."""
import glob
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

CHECKOUT = os.environ.get("FAIRKIT_OFFICIAL_IIN")
if not CHECKOUT:
    pytest.skip("FAIRKIT_OFFICIAL_IIN is not set (a checkout of CompVis/iin)", allow_module_level=True)
if not os.path.isfile(os.path.join(CHECKOUT, "iin", "iterators", "clf.py")):
    pytest.skip(f"FAIRKIT_OFFICIAL_IIN={CHECKOUT} holds no iin/iterators/clf.py: not a CompVis/iin checkout",
                allow_module_level=True)
if importlib.util.find_spec("albumentations") is None:
    pytest.skip("albumentations, which the official iin.data imports, is not installed (pip install albumentations)",
                allow_module_level=True)

WORKTREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The official package has no __init__.py, so a regular package named iin anywhere on the path (ours) would win
# over it: the subprocess registers the official folder as the package iin before anything imports it.
BOOT = f"""
import importlib.machinery, importlib.util, sys
spec = importlib.machinery.ModuleSpec("iin", None, is_package=True)
iin = importlib.util.module_from_spec(spec)
iin.__path__ = [{os.path.join(CHECKOUT, "iin")!r}]
sys.modules["iin"] = iin
code, sys.argv = sys.argv[1], ["edflow"] + sys.argv[2:]
if code == "edflow":
    from edflow.main import main
    main()
else:
    exec(code)
"""


def official(*args, cache, cwd, timeout=600):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([CHECKOUT, WORKTREE]), "EDDATA_CACHE": str(cache),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", BOOT, *args], cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """edflow's data cache with a few MNIST, Fashion-MNIST, CIFAR-10 and CelebA images."""
    from edflow.datasets.idx import write_idx
    from fairkit.data.fixtures import write_celeba, write_cifar10

    root = tmp_path_factory.mktemp("eddata_cache")
    rng = np.random.RandomState(0)
    for name in ("MNIST", "FashionMNIST"):
        for split, n in (("train", 64), ("t10k", 32)):
            write_idx(root / name / f"{split}-images-idx3-ubyte.gz",
                      rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8))
            write_idx(root / name / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    write_cifar10(root / "CIFAR10", n_per_batch=4)
    write_celeba(root / "CelebA", n=24, seed=1)
    return root


SHAPES = """
import json
import numpy as np
import iin, iin.data
assert iin.data.__file__.startswith(iin.__path__[0]), iin.data.__file__
shapes = {}
for name in ["MNISTTrain", "MNISTTest", "FashionMNISTTrain", "FashionMNISTTest", "CIFAR10Train", "CIFAR10Test",
             "CelebATrain", "CelebATest", "FactorCelebATrain", "FactorCelebATest", "ColorfulMNISTTrain",
             "ColorfulMNISTTest", "SingleColorfulMNISTTrain", "SingleColorfulMNISTTest"]:
    data = getattr(iin.data, name)({})
    example = data[len(data) - 1]
    pairs = {k: example[k]["image"] for k in ("example1", "example2") if k in example} or {"": example["image"]}
    shapes[name] = {"n": len(data), "factor": int(example.get("factor", -1)),
                    "images": {k: [list(v.shape), str(v.dtype), float(v.min()), float(v.max())]
                               for k, v in pairs.items()}}
print(json.dumps(shapes))
"""


def test_official_iin_datasets_read_edflows_cache(cache, tmp_path):
    shapes = json.loads(official(SHAPES, cache=cache, cwd=tmp_path).stdout.strip().splitlines()[-1])
    expected = {"MNIST": (64, 32, [32, 32, 1]), "FashionMNIST": (64, 32, [32, 32, 1]),
                "CIFAR10": (20, 4, [32, 32, 3]), "CelebA": (16, 10000, [64, 64, 3])}
    for name, (n_train, n_test, shape) in expected.items():
        for split, n in (("Train", n_train), ("Test", n_test)):
            images = shapes[f"{name}{split}"]["images"][""]
            assert shapes[f"{name}{split}"]["n"] == n and images[:2] == [shape, "float32"]
            assert -1 <= images[2] <= images[3] <= 1
    for name in ("FactorCelebATrain", "FactorCelebATest"):
        assert set(shapes[name]["images"]) == {"example1", "example2"} and 0 <= shapes[name]["factor"] <= 4
        assert shapes[name]["images"]["example1"][0] == [64, 64, 3]
    for name in ("ColorfulMNISTTrain", "ColorfulMNISTTest"):
        assert shapes[name]["images"]["example2"][0] == [32, 32, 3] and shapes[name]["factor"] in (0, 1)
    assert shapes["SingleColorfulMNISTTest"]["images"][""][0] == [32, 32, 3]


def test_official_classifier_stage_trains_evaluates_and_resumes(cache, tmp_path):
    config = os.path.join(CHECKOUT, "configs", "cmnist_clf.yaml")
    args = ["-b", config, "-t", "--log-root", str(tmp_path / "logs"), "num_steps=4", "batch_size=8"]
    first = official("edflow", *args, cache=cache, cwd=tmp_path)
    root = first.stderr.split("edflow: run folder ")[-1].strip()
    assert "learning_rate: 3.6e-05" in first.stderr  # the official iterator's self.logger.info: 4.5e-6 * 8
    checkpoints = os.path.join(root, "train", "checkpoints")
    assert os.path.isfile(os.path.join(checkpoints, "model-4.ckpt"))
    with open(os.path.join(checkpoints, "model-4.ckpt.json")) as f:
        assert json.load(f)["step"] == 4
    with open(os.path.join(root, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert any("train/loss" in r and "train/acc" in r and "train/lr_00" in r for r in records)
    final = [r for r in records if "validation/accuracy" in r]  # the official clf_callback's scalars
    assert [r["step"] for r in final] == [4] and 0 <= final[0]["validation/accuracy"] <= 1

    evaluation = official("edflow", "-p", root, "--log-root", str(tmp_path / "logs"), cache=cache, cwd=tmp_path)
    assert "model-4.ckpt (step 4)" in evaluation.stderr
    assert len(glob.glob(os.path.join(root, "eval", "*", "4", "results.yaml"))) == 2

    official("edflow", "-p", root, "-t", "--log-root", str(tmp_path / "logs"), "num_steps=6", cache=cache,
             cwd=tmp_path)
    assert os.path.isfile(os.path.join(checkpoints, "model-6.ckpt"))
