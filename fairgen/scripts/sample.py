"""Draw N images from a trained fairgen GAN run::

    python -m fairgen.scripts.sample -p logs/<run> -n 10000 --out samples.npz

writes ``samples.npz`` with ``x`` (uint8 (N, 3, H, W)), ``z`` (the latents, float32 (N, dim_z)) and, when the run
has an attribute classifier stage, ``group`` (its predicted bias group per sample), plus a PNG grid of the first
64 samples beside it (``samples.png``). Samples come from the EMA generator unless ``--no-ema``; a conditional GAN
samples the reference class unless ``--y`` says otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

from edflow.first_stage import FirstStageError, load_stage
from edflow.logger import save_image_grid
from edflow.first_stage import looking_up_runs
from edflow.runs import add_log_root_argument
from fairgen.data import bias_attributes, data_options
from fairkit.nets.gan import GAN
from fairkit.metrics import to_uint8_rgb


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fairgen.scripts.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("-p", "--project", required=True, help="the GAN's run folder (or its name under the log root)")
    p.add_argument("-n", "--num", type=int, default=10000, help="number of samples")
    p.add_argument("--out", default="samples.npz", help="output .npz (a .png grid is written beside it)")
    p.add_argument("-c", "--checkpoint", help="a checkpoint of the run (default: the newest)")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-ema", action="store_true", help="sample the trained generator, not its EMA")
    p.add_argument("--y", type=int, default=None, help="class of a conditional GAN (default 1, the reference set)")
    p.add_argument("--device", default="cpu")
    add_log_root_argument(p, help="where run names (the run's, and its first stages') are looked up")
    return p


def load_gan(project: str, checkpoint: str | None, device: str, *, log_root: str) -> GAN:
    spec = {"run": project, **({"checkpoint": checkpoint} if checkpoint else {})}
    with looking_up_runs(log_root=log_root):
        model = load_stage(spec, device)
    if not isinstance(model, GAN):
        raise FirstStageError(f"{project!r} is a run of {type(model).__name__}, not of a GAN (fairgen.models.GAN, "
                              f"fairkit.gan.Model)")
    return model


def predicted_groups(config: dict, images: torch.Tensor, device: str, batch_size: int, *,
                     log_root: str) -> np.ndarray | None:
    """The attribute classifier stage's predicted bias group per sample, if the run names that stage."""
    stages = config.get("first_stage") or {}
    if "attr_clf" not in stages:
        return None
    with looking_up_runs(log_root=log_root):
        classifier = load_stage(stages["attr_clf"], device)
    names = bias_attributes(data_options(config))
    parts = [classifier.predict_groups(images[i:i + batch_size].to(device), names)
             for i in range(0, len(images), batch_size)]
    return torch.cat(parts).numpy()


def main(argv: list[str] | None = None) -> str:
    args = parser().parse_args(argv)
    if args.num < 1:
        raise SystemExit("-n must be at least 1")
    try:
        model = load_gan(args.project, args.checkpoint, args.device, log_root=args.log_root)
    except (FirstStageError, FileNotFoundError) as error:
        raise SystemExit(f"fairgen.scripts.sample: error: {error}")
    generator = torch.Generator().manual_seed(args.seed)
    images, latents = model.sample(args.num, args.batch_size, ema=not args.no_ema, generator=generator, y=args.y)
    arrays = {"x": to_uint8_rgb(images).numpy(), "z": latents.numpy().astype(np.float32)}
    groups = predicted_groups(model.stage_config, images, args.device, args.batch_size, log_root=args.log_root)
    if groups is not None:
        arrays["group"] = groups
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez(args.out, **arrays)
    grid = os.path.splitext(args.out)[0] + ".png"
    save_image_grid(images[:64], grid)
    print(f"fairgen.scripts.sample: {args.num} samples -> {args.out} (grid: {grid})", file=sys.stderr)
    return args.out


if __name__ == "__main__":
    main()
