"""Paper-scale configs on this machine's GPU: for every config whose data, weights and first stages are there, 20
training steps (after 3 warm-up steps) and one evaluation with the config's own ``amp``, printing steps/s, images/s,
peak memory and an estimate of the full run's time (steps x measured step time + evaluations x measured evaluation
time; data loading as measured, so an estimate, not a promise).

    python benchmarks/gpu_check.py                          # every configs/*.yaml whose inputs exist
    python benchmarks/gpu_check.py --configs configs/celeba_iin.yaml --steps 50
    python benchmarks/gpu_check.py --allow-cpu --configs tests/toy.yaml     # try the script out without a GPU

Nothing is written under logs/: each config runs in a temporary folder. First stages are looked up by run name
under $EDFLOW_LOG_ROOT (default logs/), so train the earlier stages first, or the config is skipped with the reason.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import torch

from edflow.config import ConfigError
from edflow.device import resolve_device
from edflow.iterators.template_iterator import epoch_sampler
from edflow.main import build_config, build_iterator, instantiate_dataset, parser, seed_everything
from edflow.preflight import preflight
from edflow.runner_keys import runner_value

WARMUP_STEPS = 3


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(path: str, steps: int, device: str) -> dict | str:
    """The measurements of one config, or why it was skipped."""
    args, overrides = parser().parse_known_args(["-b", path, "-t", f"device={device}"])
    try:
        config, _ = build_config(args, overrides)
    except ConfigError as error:
        return f"config error: {error}"
    seed_everything(int(runner_value(config, "seed")))
    report = preflight(config, build_dataset=instantiate_dataset, train=True)
    if report.problems:
        return f"{len(report.problems)} missing input(s), first: {str(report.problems[0]).splitlines()[0]}"
    with tempfile.TemporaryDirectory() as root:
        iterator = build_iterator(config, root, train=True, datasets=report.datasets)
        loader = iterator.make_loader(iterator.datasets["train"], train=True)
        steps_per_epoch = len(epoch_sampler(loader))
        total = iterator.total_steps(steps_per_epoch)
        batches = iter(loader)

        def step():
            nonlocal batches
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            iterator.run_step(batch)

        for _ in range(WARMUP_STEPS):
            step()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        synchronise(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        synchronise(device)
        step_seconds = (time.perf_counter() - start) / steps
        start = time.perf_counter()
        iterator.evaluate_all()
        synchronise(device)
        eval_seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    evaluations = max(1, total // (steps_per_epoch * int(runner_value(config, "eval_freq"))))
    return {"steps/s": 1 / step_seconds, "images/s": iterator.batch_size(True) / step_seconds, "peak GiB": peak,
            "eval s": eval_seconds, "steps": total, "evaluations": evaluations,
            "estimate h": (total * step_seconds + evaluations * eval_seconds) / 3600, "amp": config.get("amp")}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", default=sorted(glob.glob("configs/*.yaml")))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--allow-cpu", action="store_true", help="measure on the CPU when there is no GPU (a dry run)")
    args = p.parse_args(argv)
    device = resolve_device("auto")
    if device == "cpu" and not args.allow_cpu:
        print(f"gpu_check: CUDA is not available on this machine (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none'}): nothing to measure. Run it on a GPU machine, or pass --allow-cpu "
              f"for a dry run on the CPU.", file=sys.stderr)
        sys.exit(2)
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"gpu_check on {name}, {args.steps} steps after {WARMUP_STEPS} warm-up steps; the full-run times are "
          f"estimates: steps x measured step time + evaluations x measured evaluation time\n")
    print("| config | amp | steps/s | images/s | peak GiB | eval s | steps | evals | estimate h |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path in args.configs:
        result = measure(path, args.steps, device)
        if isinstance(result, str):
            print(f"| {os.path.basename(path)} | skipped: {result} |")
            continue
        print(f"| {os.path.basename(path)} | {result['amp']} | {result['steps/s']:.2f} | {result['images/s']:.0f} | "
              f"{result['peak GiB']:.2f} | {result['eval s']:.1f} | {result['steps']} | {result['evaluations']} | "
              f"{result['estimate h']:.1f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
