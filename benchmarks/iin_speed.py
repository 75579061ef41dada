"""Training speed of IIN's stages at CPU scale (the configs with their configs/cpu/ overlays), measured in one run:
steps/s of the autoencoder (before and after the discriminator starts), the IIN and the disentangling IIN on real
MNIST / ColorfulMNIST batches, through the runner's own step (``run_step``), and the ratios between them.

    python benchmarks/iin_speed.py [--steps 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edflow.config import load_configs, with_defaults  # noqa: E402
from edflow.main import instantiate_dataset  # noqa: E402
from edflow.util import get_obj_from_str  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
TRAIN_SUBSET = 4096


def cpu_config(name: str) -> dict:
    config = with_defaults(load_configs([os.path.join(CONFIGS, f"{name}.yaml"),
                                         os.path.join(CONFIGS, "cpu", f"{name}.yaml")]))
    config.update(fid={}, log_freq=10**9, swap_eval=None)
    train = config["datasets"]["train"]
    target = train["target"] if isinstance(train, dict) else train
    config["datasets"] = {"train": {"target": target, "params": {"subset": TRAIN_SUBSET}}}
    return config


def build(name: str, root: str, first_stage=None):
    config = cpu_config(name)
    datasets = {"train": instantiate_dataset(config["datasets"]["train"], config)}
    model = get_obj_from_str(config["model"])(config)
    iterator_cls = get_obj_from_str(config["iterator"])
    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    return iterator_cls(config, folder, model, datasets=datasets, first_stage=first_stage)


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


def steps_per_second(iterator, steps: int, warmup: int = 3) -> float:
    loader = iter(iterator.make_loader(iterator.datasets["train"], train=True))
    batches = [next(loader) for _ in range(warmup + steps)]
    for batch in batches[:warmup]:  # ActNorm init, the first log step, allocator warm-up
        iterator.run_step(batch)
    start = time.perf_counter()
    for batch in batches[warmup:]:
        iterator.run_step(batch)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rates = {}
    with tempfile.TemporaryDirectory() as root:
        ae = build("mnist_ae", root)
        rates["AE (no discriminator yet)"] = steps_per_second(ae, args.steps)
        ae.loss.disc_start = 0
        rates["AE (with discriminator)"] = steps_per_second(ae, args.steps)
        iin = build("mnist_iin", root, first_stage=frozen(ae.model))
        rates["IIN (VectorTransformer)"] = steps_per_second(iin, args.steps)
        colour_ae = frozen(build("cmnist_ae", root).model)
        rates["DIIN (FactorTransformer, pairs)"] = steps_per_second(build("cmnist_diin", root, colour_ae), args.steps)
        batch_sizes = {"AE": ae.batch_size(True), "IIN": iin.batch_size(True)}
    print(f"IIN stages at CPU scale, {args.threads} thread(s), {args.steps} steps each; batch sizes {batch_sizes} "
          f"(the DIIN's batches hold pairs)")
    reference = rates["AE (no discriminator yet)"]
    for name, rate in rates.items():
        print(f"  {name:34s} {rate:7.2f} steps/s   {rate / reference:5.2f} x AE")


if __name__ == "__main__":
    main()
