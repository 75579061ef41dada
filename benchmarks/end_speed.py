"""EnD training speed: images/s of the trainer's step (forward, CE + EnD terms, backward, Adam) on Biased-MNIST
sized batches, and the share of the machine's measured fp32 matmul FLOP/s that the step reaches.

    python benchmarks/end_speed.py                      # widths 0.25 0.5 1.0, batch 256, all threads
    python benchmarks/end_speed.py --widths 0.25 --threads 1

FLOPs of a step are counted by torch's FlopCounterMode (convolutions and matmuls, forward and backward). Steps
and 2048^3 matmuls are timed alternately and the fastest of each is kept, so that the ratio holds on a busy
machine too.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from end.iterators import Trainer
from end.models import Model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_trainer(width: float, root: str) -> Trainer:
    config = {"Model": {"width": width}, "Loss": {"alpha": 0.1, "beta": 0.1}, "batch_size": 256}
    return Trainer(config, root, Model(config))


def make_batch(batch_size: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 10, (batch_size,), generator=generator)
    colours = torch.where(torch.rand(batch_size, generator=generator) < 0.9, digits,
                          torch.randint(0, 10, (batch_size,), generator=generator))
    return {"image": torch.rand(batch_size, 3, 28, 28, generator=generator) * 2 - 1, "class": digits,
            "color": colours}


def step_flops(trainer: Trainer, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.step_op(trainer.model, **batch)["train_op"]()
    return counter.get_total_flops()


def best_times(trainer: Trainer, batch: dict, repeats: int, matmul_size: int = 2048) -> tuple[float, float]:
    """Fastest training step and fastest matmul, measured alternately so that both see the same machine load."""
    a, b = torch.randn(matmul_size, matmul_size), torch.randn(matmul_size, matmul_size)
    train_op = lambda: trainer.step_op(trainer.model, **batch)["train_op"]()  # noqa: E731
    matmul = lambda: a @ b  # noqa: E731
    train_op(), matmul()  # warm-up
    steps, matmuls = [], []
    for _ in range(repeats):
        steps.append(timed(train_op))
        matmuls.append(timed(matmul))
    return min(steps), min(matmuls)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = make_batch(args.batch_size)
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}")
    print(f"{'width':>6} {'s/step':>8} {'images/s':>9} {'GFLOP/step':>11} {'GFLOP/s':>8} {'matmul GFLOP/s':>15} "
          f"{'share':>6}")
    with tempfile.TemporaryDirectory() as root:
        for width in args.widths:
            trainer = make_trainer(width, root)
            flops = step_flops(trainer, batch)
            seconds, matmul_seconds = best_times(trainer, batch, args.repeats)
            peak = 2 * 2048 ** 3 / matmul_seconds
            achieved = flops / seconds
            print(f"{width:>6g} {seconds:>8.3f} {args.batch_size / seconds:>9.1f} {flops / 1e9:>11.2f} "
                  f"{achieved / 1e9:>8.1f} {peak / 1e9:>15.1f} {achieved / peak:>6.1%}")


if __name__ == "__main__":
    main()
