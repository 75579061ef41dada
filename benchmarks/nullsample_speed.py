"""cFlow training speed (images/s, one thread) and the time to null-sample coloured MNIST's test set.

    python benchmarks/nullsample_speed.py                 # the CPU-scale flow (configs/cpu/cmnist_cflow.yaml)
    python benchmarks/nullsample_speed.py --paper --steps 3 --test-subset 512

Numbers from one run on a shared machine vary; compare the printed ratios within a run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from edflow.config import load_configs, with_defaults  # noqa: E402
from nullsample.data import ColoredMNIST  # noqa: E402
from nullsample.iterators import CFlowTrainer  # noqa: E402
from nullsample.models import CFlow  # noqa: E402
from nullsample.null_sampling import null_sample_dataset  # noqa: E402

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def load_config(paper: bool) -> dict:
    paths = [os.path.join(CONFIGS, "cmnist_cflow.yaml")]
    if not paper:
        paths.append(os.path.join(CONFIGS, "cpu", "cmnist_cflow.yaml"))
    return with_defaults(load_configs(paths))


def training_images_per_second(trainer: CFlowTrainer, data: ColoredMNIST, batch_size: int, steps: int) -> float:
    rng = np.random.default_rng(0)
    batches = [data.get_batch(rng.choice(len(data), batch_size, replace=False)) for _ in range(steps + 1)]
    trainer.step_op(trainer.model, **batches[0])["train_op"]()  # ActNorm initialisation and warm-up
    start = time.perf_counter()
    for batch in batches[1:]:
        trainer.step_op(trainer.model, **batch)["train_op"]()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", action="store_true", help="the paper-size flow instead of the CPU-scale one")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--test-subset", type=int, default=None, help="null-sample only this many test images")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = load_config(args.paper)
    batch_size = int(config["batch_size"])
    model = CFlow(config)
    with tempfile.TemporaryDirectory() as root:
        trainer = CFlowTrainer(config, root, model)
        train_speed = training_images_per_second(trainer, ColoredMNIST("pretrain", config=config), batch_size,
                                                 args.steps)
        trainer.logger.close()
    test = ColoredMNIST("test", subset=args.test_subset, config=config)
    start = time.perf_counter()
    null_sample_dataset(model, test, batch_size=int(config["eval_batch_size"] or batch_size))
    null_seconds = time.perf_counter() - start
    null_speed = len(test) / null_seconds

    m = config["Model"]
    print(f"flow: {m['levels']} levels x {m['level_depth']} steps, couplings {m['coupling_channels']} wide, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; {args.threads} thread(s)")
    print(f"training (NLL + adversary, batch {batch_size}): {train_speed:.1f} images/s")
    print(f"null-sampling the test set ({len(test)} images): {null_seconds:.1f} s = {null_speed:.1f} images/s")
    print(f"ratio null-sampling / training throughput: {null_speed / train_speed:.2f}")


if __name__ == "__main__":
    main()
