"""EnD against its official code (EIDOSlab/entangling-disentangling-bias, ``src/``), run side by side.

Runs when FAIRKIT_OFFICIAL_END names a checkout of that repository (``git clone`` it anywhere), else skips:
- the official Biased MNIST (``colour_mnist.get_biased_mnist_dataloader`` after ``np.random.seed(42)``, as its
  training script calls it) and ours under ``Data/protocol: official`` hold the same images in every split;
- from identical weights and batches, 20 steps of the official training loop (``train`` of
  ``EnD_rebias_mnist_sweep.py`` with its ``abs_regu`` criterion) and of ``end.iterators.Trainer`` give the same losses
  and weights.
The official training script parses the command line and imports wandb and albumentations at its top, so only its
``train`` and ``num_correct`` functions are loaded from the source.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _load import load_functions, official_checkout

CHECKOUT = official_checkout("end")
STEPS = 20


@pytest.fixture(scope="module")
def src():
    path = CHECKOUT / "src"
    if not (path / "EnD.py").is_file():
        raise FileNotFoundError(f"{CHECKOUT} holds no src/EnD.py: not a checkout of "
                                f"EIDOSlab/entangling-disentangling-bias")
    sys.path.insert(0, str(path))
    try:
        import colour_mnist
        import EnD
        import models
    finally:
        sys.path.remove(str(path))
        official = {"EnD": EnD, "models": models, "colour_mnist": colour_mnist, "path": path}
        for name in ("EnD", "models", "colour_mnist"):  # generic names: keep them out of other tests' way
            sys.modules.pop(name, None)
    return official


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: zero bytes, type 0x08 (uint8), the number of dimensions, big-endian sizes, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory, mnist_available):
    """Our MNIST in the layout the official class reads (``<root>/raw/*-ubyte``), so both see the same digits."""
    from fairkit.data.mnist import load_mnist

    root = tmp_path_factory.mktemp("official_mnist")
    (root / "raw").mkdir()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = load_mnist(split)
        write_idx(root / "raw" / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / "raw" / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def official_splits(src, root: Path, rho: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """split -> (images, digits, colours) as the official training script builds its loaders."""
    loaders = src["colour_mnist"].get_biased_mnist_dataloader
    np.random.seed(42)
    train, validation = loaders(str(root), 256, rho, train=True, num_workers=0)
    biased = loaders(str(root), 256, 1.0, train=False, num_workers=0)
    unbiased = loaders(str(root), 256, 0.1, train=False, num_workers=0)
    kept = np.asarray(list(validation.sampler.indices))
    splits = {"train": (train.dataset, slice(None)), "validation": (validation.dataset, kept),
              "test_biased": (biased.dataset, slice(None)), "test_unbiased": (unbiased.dataset, slice(None))}
    return {name: (np.asarray(d.data)[keep], d.targets.numpy()[keep], d.biased_targets.numpy()[keep])
            for name, (d, keep) in splits.items()}


def cell_counts(digits: np.ndarray, colours: np.ndarray) -> np.ndarray:
    return np.bincount(digits * 10 + colours, minlength=100).reshape(10, 10)


@pytest.mark.parametrize("rho", [0.99, 0.997])
def test_official_and_our_biased_mnist_hold_the_same_images(src, mnist_root, rho, compare):
    from end.data import BiasedMNIST

    official = official_splits(src, mnist_root, rho)
    config = {"Data": {"protocol": "official", "rho": rho, "seed": 42}}
    for split, (images, digits, colours) in official.items():
        ours = BiasedMNIST(split, config=config)
        assert len(ours) == len(digits)
        compare(f"images per (digit, colour) cell, rho {rho}", cell_counts(ours.labels["class"], ours.labels["color"]),
                cell_counts(digits, colours), tol=0)
        # one for one, in the official order; the official images are (N, 28, 28, 3) uint8, ours (N, 3, 28, 28)
        compare("digit of every image", ours.labels["class"], digits, tol=0)
        compare("colour of every image", ours.labels["color"], colours, tol=0)
        ours_uint8 = ((ours.get_batch(np.arange(64))["image"].numpy() + 1) * 127.5).round().astype(np.uint8)
        compare("pixels of the first 64 images", ours_uint8, images[:64].transpose(0, 3, 1, 2), tol=0)
    assert len(official["train"][1]) == 60000 and len(official["validation"][1]) == 18000


def batches(n: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    from end.data import BiasedMNIST

    data = BiasedMNIST("train", config={"Data": {"protocol": "official", "rho": 0.99, "train_subset": n * size}})
    order = np.random.default_rng(0).permutation(len(data))
    out = []
    for i in range(n):
        batch = data.get_batch(order[i * size:(i + 1) * size])
        out.append((batch["image"], batch["class"], batch["color"]))
    return out


@pytest.mark.parametrize("alpha, beta", [(0.1, 0.1), (0.7, 0.3), (0.0, 0.0)])
def test_twenty_training_steps_match_the_official_loop(src, mnist_available, tmp_path, alpha, beta, compare):
    from end.iterators import Trainer
    from end.models import Model

    data = batches(STEPS, 32)
    torch.manual_seed(0)
    theirs = src["models"].simple_convnet()
    ours = Model({"Model": {"width": 1.0, "arch": "end"}})
    ours.load_state_dict(theirs.state_dict())

    # the official loop, with the criterion its main() builds (cross-entropy, abs_regu on avgpool's output)
    EnD = src["EnD"]
    official_losses = []
    hook = EnD.Hook(theirs.avgpool, backward=False)

    def ce_abs(outputs, labels, color_labels, weights):
        ce = F.cross_entropy(outputs, labels)
        regu = EnD.abs_regu(hook, labels, color_labels, alpha, beta)
        official_losses.append(float((ce + regu).detach()))
        return ce, regu

    loop = load_functions(src["path"] / "EnD_rebias_mnist_sweep.py", {"train", "num_correct"},
                          {"torch": torch, "F": F, "tqdm": lambda it, **_: it, "device": torch.device("cpu")})
    optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3, weight_decay=1e-4)
    loop["train"](theirs, data, ce_abs, None, optimizer, scheduler=None)

    config = {"batch_size": 32, "Trainer": {"lr": 1e-3, "weight_decay": 1e-4},
              "Loss": {"alpha": alpha, "beta": beta, "par_pairs": "official"}}
    trainer = Trainer(config, str(tmp_path), ours, datasets={})
    ours.train()
    our_losses = []
    for image, target, colour in data:
        our_losses.append(float(trainer.step_op(ours, image=image, **{"class": target, "color": colour})
                                ["train_op"]()["loss"]))

    compare("loss of each of 20 training steps", our_losses, official_losses)
    assert official_losses[0] != pytest.approx(official_losses[-1], rel=1e-3)  # the weights did move
    for (name, mine), (_, official) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        compare("weights after 20 steps", mine, official)
