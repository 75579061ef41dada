"""FID speed, measured in one run on this machine.

1. Feature-extraction throughput (images/s) of a small classifier extractor on 32x32 images: the streaming
   ``compute_stats`` path against a bare forward loop over the same batches.
2. Frechet distance of 2048-d statistics: the symmetric-eigensolver route of ``frechet_distance`` against
   scipy.linalg.sqrtm's route (and torch-fidelity's eigvals route), as time ratios.

    python benchmarks/fid_benchmark.py [--images 4096] [--dim 2048] [--threads 2] [--skip-sqrtm]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from fairkit.metrics import ClassifierExtractor, FrechetStats, compute_stats, frechet_distance


class SmallConvNet(nn.Module):
    """A CPU-scale MNIST classifier: three strided convs, 128-d penultimate features."""

    def __init__(self, channels: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 128, 3, 2, 1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def best_time(function, repeats: int) -> tuple[float, object]:
    """Shortest wall-clock time of ``repeats`` calls (the machine is shared, so the minimum is the signal)."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def extraction_throughput(n_images: int, batch_size: int):
    model = SmallConvNet().eval()
    images = torch.rand(n_images, 1, 32, 32) * 2 - 1
    extractor = ClassifierExtractor(model)

    def bare_loop():
        with torch.inference_mode():
            for start in range(0, n_images, batch_size):
                model.features(images[start:start + batch_size])

    def streaming_stats():
        return compute_stats(extractor, images, batch_size, progress=False)

    compute_stats(extractor, images[:batch_size], batch_size, progress=False)  # warm-up
    bare, streaming = float("inf"), float("inf")
    for _ in range(3):  # interleaved, so that load from other processes hits both alike
        bare = min(bare, best_time(bare_loop, 1)[0])
        seconds, stats = best_time(streaming_stats, 1)
        streaming = min(streaming, seconds)
    print(f"feature extraction, {n_images} images 1x32x32, batch {batch_size}, {stats.dim}-d features")
    print(f"  bare forward loop        {n_images / bare:10.0f} images/s")
    print(f"  compute_stats (+stats)   {n_images / streaming:10.0f} images/s   "
          f"(ratio to bare loop {bare / streaming:.2f})")


def sqrtm_route(mu1, cov1, mu2, cov2) -> float:
    root = scipy.linalg.sqrtm(cov1 @ cov2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(root).real)


def eigvals_route(mu1, cov1, mu2, cov2) -> float:
    trace_sqrt = np.sqrt(np.linalg.eigvals(cov1 @ cov2).astype(np.complex128)).real.sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def frechet_timing(dim: int, n_features: int, skip_sqrtm: bool):
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    stats = [FrechetStats().update(np.abs(rng.standard_normal((n_features, dim)) @ mixing + shift))
             for shift in (0.0, 0.1)]  # rectified like pool features; n_features < dim gives singular covariances
    arguments = (stats[0].mean, stats[0].cov, stats[1].mean, stats[1].cov)
    print(f"Frechet distance, {dim}-d, statistics of {n_features} feature vectors each")
    ours, value = best_time(lambda: frechet_distance(*arguments), 3)
    print(f"  pivoted Cholesky + eigvalsh (ours)   {ours:8.2f} s   FID {value:.6f}")
    routes = [("eigvals(C1 C2) (torch-fidelity)", eigvals_route, 2)]
    routes += [] if skip_sqrtm else [("scipy.linalg.sqrtm(C1 C2)", sqrtm_route, 1)]
    for name, route, repeats in routes:
        seconds, other = best_time(lambda: route(*arguments), repeats)
        print(f"  {name:35s}  {seconds:8.2f} s   FID {other:.6f}   ours is {seconds / ours:.1f}x faster "
              f"(relative difference {abs(value - other) / abs(other):.1e})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--features", type=int, default=4096, help="feature vectors behind each statistic")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-sqrtm", action="store_true", help="sqrtm takes minutes at 2048-d")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads (torch and numpy's BLAS/LAPACK): {args.threads}")
    with threadpool_limits(limits=args.threads):
        extraction_throughput(args.images, args.batch_size)
        frechet_timing(args.dim, args.features, args.skip_sqrtm)


if __name__ == "__main__":
    main()
