"""Speed of fairgen's GAN training: discriminator and generator steps per second, and one training iteration
(d_steps D steps + 1 G step + EMA) through GANTrainer against the same work in a bare PyTorch loop.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fairgen_gan_speed.py                        # CPU-scale config
    .venv/bin/python benchmarks/fairgen_gan_speed.py --configs configs/attrmnist_fairgen_gan.yaml   # paper scale

Synthetic images stand in for data (speed does not depend on content); the weights are random r(x).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from edflow.config import load_configs, with_defaults
from edflow.data.dataset import ArrayDataset
from fairgen.iterators import GANTrainer
from fairgen.losses import discriminator_loss, generator_loss
from fairgen.models import GAN

DEFAULT_CONFIGS = ["configs/attrmnist_fairgen_gan.yaml", "configs/cpu/attrmnist_fairgen_gan.yaml"]


def timed(fn, repeats: int) -> float:
    """Seconds per call, after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def bare_iteration(model: GAN, opt_g, opt_d, real: torch.Tensor, weights: torch.Tensor, d_steps: int, step: list):
    """One iteration written directly in PyTorch: the reference the trainer's overhead is measured against."""
    d_batch = len(real) // d_steps
    for k in range(d_steps):
        z = torch.randn(d_batch, model.dim_z)
        with torch.no_grad():
            fake = model.generator(z)
        loss = discriminator_loss(model.discriminator(real[k * d_batch:(k + 1) * d_batch]), model.discriminator(fake),
                                  weights[k * d_batch:(k + 1) * d_batch])
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
    model.discriminator.requires_grad_(False)
    loss = generator_loss(model.discriminator(model.generator(torch.randn(d_batch, model.dim_z))))
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()
    model.discriminator.requires_grad_(True)
    model.update_ema(step[0])
    step[0] += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    config = with_defaults(load_configs(args.configs))
    config["Model"]["conditional"] = False
    config["Trainer"]["reweight"] = 0  # no ratio stage here; random weights are passed below instead
    torch.manual_seed(0)
    model = GAN(config)
    d_steps = int(config["Trainer"].get("d_steps", 4))
    batch = int(config["batch_size"])
    d_batch = batch // d_steps
    resolution = model.generator.resolution
    real = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    weights = torch.rand(batch) * 2
    with tempfile.TemporaryDirectory() as root:
        trainer = GANTrainer(config, root, model, datasets={})
        trainer.weights = weights
        index = torch.arange(batch)

        def d_step():
            trainer.discriminator_step(model, real[:d_batch], None, weights[:d_batch])

        def g_step():
            trainer.generator_step(model, d_batch)

        def trainer_iteration():
            trainer.step_op(model, image=real, index_=index)["train_op"]()

        counter = [0]
        bare_opt_g = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.0, 0.999))
        bare_opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.0, 0.999))
        d_seconds = timed(d_step, args.repeats * d_steps)
        g_seconds = timed(g_step, args.repeats)
        trainer_seconds = timed(trainer_iteration, args.repeats)
        bare_seconds = timed(lambda: bare_iteration(model, bare_opt_g, bare_opt_d, real, weights, d_steps, counter),
                             args.repeats)
    print(f"configs: {' + '.join(args.configs)}; threads: {torch.get_num_threads()}")
    print(f"G: ch {config['Model']['ch']}, dim_z {model.dim_z}, {resolution} px, "
          f"{sum(p.numel() for p in model.generator.parameters()) / 1e6:.2f} M params; "
          f"D: {sum(p.numel() for p in model.discriminator.parameters()) / 1e6:.2f} M params")
    print(f"D batch {d_batch} (real) + {d_batch} (fake), d_steps {d_steps}")
    print(f"D steps/s: {1 / d_seconds:.2f}   G steps/s: {1 / g_seconds:.2f}   "
          f"(a G step costs {g_seconds / d_seconds:.2f} D steps)")
    print(f"iterations/s: trainer {1 / trainer_seconds:.3f}, bare PyTorch loop {1 / bare_seconds:.3f} "
          f"(trainer / bare time: {trainer_seconds / bare_seconds:.3f})")


if __name__ == "__main__":
    main()
