"""Frechet distance (FID) from streaming feature statistics, KID, and cached reference statistics.

Statistics are running sums in float64 (count, sum, sum of outer products), so batches, processes and cache files
combine by addition; ``FrechetStats.all_reduce`` sums them over torch.distributed ranks.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.linalg
import scipy.linalg.lapack
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from edflow.data import fetch_batch
from fairkit.metrics.extractors import as_extractor, module_device

__all__ = ["FrechetStats", "frechet_distance", "fid", "fid_from_features", "kid", "compute_stats",
           "extract_features", "reference_stats", "dataset_cache_key", "iterate_images"]


def _as_float64_tensor(features) -> torch.Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not torch.is_tensor(features):
        raise TypeError(f"expected features as a torch tensor or numpy array, got {type(features)!r}")
    return features.detach().to("cpu", torch.float64)


class FrechetStats:
    """Count, sum and sum of outer products of feature vectors; mean and unbiased covariance derive from them."""

    def __init__(self, dim: int | None = None):
        self.count = 0
        self.sum = None if dim is None else torch.zeros(dim, dtype=torch.float64)
        self.sum_outer = None if dim is None else torch.zeros(dim, dim, dtype=torch.float64)

    @property
    def dim(self) -> int | None:
        return None if self.sum is None else int(self.sum.shape[0])

    def update(self, features) -> "FrechetStats":
        features = _as_float64_tensor(features)
        if features.dim() != 2:
            raise ValueError(f"expected features of shape (batch, dim), got {tuple(features.shape)}")
        if self.sum is None:
            self.__init__(features.shape[1])
        self._check_dim(features.shape[1])
        self.count += features.shape[0]
        self.sum += features.sum(0)
        self.sum_outer += features.T @ features
        return self

    def merge(self, other: "FrechetStats") -> "FrechetStats":
        if other.sum is None:
            return self
        if self.sum is None:
            self.__init__(other.dim)
        self._check_dim(other.dim)
        self.count += other.count
        self.sum += other.sum
        self.sum_outer += other.sum_outer
        return self

    def __add__(self, other: "FrechetStats") -> "FrechetStats":
        return FrechetStats().merge(self).merge(other)

    def _check_dim(self, dim: int):
        if dim != self.dim:
            raise ValueError(f"feature dimension {dim} does not match these statistics' dimension {self.dim}")

    @property
    def mean(self) -> np.ndarray:
        self._require(1)
        return (self.sum / self.count).numpy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased (n - 1) covariance, as numpy.cov and torch-fidelity compute it."""
        self._require(2)
        mean = self.sum / self.count
        cov = (self.sum_outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return ((cov + cov.T) / 2).numpy()

    def _require(self, count: int):
        if self.count < count:
            raise ValueError(f"these statistics hold {self.count} feature vectors; at least {count} are needed")

    def all_reduce(self) -> "FrechetStats":
        """Sum the statistics over all torch.distributed ranks (a no-op when not initialised). Call it once."""
        if not (dist.is_available() and dist.is_initialized()):
            return self
        if self.sum is None:
            raise ValueError("FrechetStats(dim=...) must know its dimension on every rank before all_reduce")
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        packed = torch.cat([torch.tensor([float(self.count)], dtype=torch.float64), self.sum,
                            self.sum_outer.reshape(-1)]).to(device)
        dist.all_reduce(packed)
        packed = packed.cpu()
        dim = self.dim
        self.count = int(round(packed[0].item()))
        self.sum = packed[1:1 + dim].clone()
        self.sum_outer = packed[1 + dim:].reshape(dim, dim).clone()
        return self

    def state_dict(self) -> dict:
        if self.sum is None:
            return {"count": torch.tensor(0, dtype=torch.int64)}
        return {"count": torch.tensor(self.count, dtype=torch.int64), "sum": self.sum.clone(),
                "sum_outer": self.sum_outer.clone()}

    def load_state_dict(self, state: dict) -> "FrechetStats":
        count = int(np.asarray(state["count"]))
        if "sum" not in state:
            self.__init__()
            return self
        self.count = count
        self.sum = _as_float64_tensor(state["sum"]).clone()
        self.sum_outer = _as_float64_tensor(state["sum_outer"]).clone()
        return self

    def save(self, path: str | os.PathLike):
        """Write to ``path`` (.pt or .npz) atomically; the .npz also holds ``mu`` and ``sigma`` for other tools."""
        path = Path(path)
        _check_suffix(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
        state = self.state_dict()
        if path.suffix == ".pt":
            torch.save(state, temporary)
        else:
            arrays = {key: value.numpy() for key, value in state.items()}
            if self.count >= 2:
                arrays.update(mu=self.mean, sigma=self.cov)
            np.savez(temporary, **arrays)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FrechetStats":
        path = Path(path)
        _check_suffix(path)
        if path.suffix == ".pt":
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            with np.load(path) as data:
                if "sum_outer" not in data and "count" in data and data["count"] > 0:
                    raise ValueError(f"{path} holds no running sums (only {sorted(data)}); re-create it with "
                                     f"FrechetStats.save")
                state = {key: data[key] for key in data.files}
        return cls().load_state_dict(state)

    def __repr__(self):
        return f"FrechetStats(count={self.count}, dim={self.dim})"


def _check_suffix(path: Path):
    if path.suffix not in (".pt", ".npz"):
        raise ValueError(f"statistics files end in .pt or .npz, got {str(path)!r}")


def psd_factor(matrix: np.ndarray) -> np.ndarray:
    """F (d, rank) with F F^T = matrix, for a symmetric positive semi-definite matrix (pivoted Cholesky).

    LAPACK's pstrf stops at the numerical rank, so singular covariances (fewer samples than dimensions, dead
    features) give a thin factor instead of a failure.
    """
    upper, pivots, rank, info = scipy.linalg.lapack.dpstrf(matrix, lower=0)
    if info < 0:
        raise ValueError(f"pivoted Cholesky failed (LAPACK info {info}); is the covariance finite and symmetric?")
    factor = np.empty((matrix.shape[0], rank))
    factor[pivots - 1] = np.triu(upper[:rank]).T
    return factor


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1) + tr(C2) - 2 tr sqrt(C1 C2).

    With C1 = F F^T, C1 C2 has the eigenvalues of the symmetric PSD matrix F^T C2 F: a pivoted Cholesky and one
    symmetric eigenvalue solve, several times faster than scipy.linalg.sqrtm on 2048-d covariances.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1 or cov1.shape != cov2.shape or cov1.shape != mu1.shape * 2:
        raise ValueError(f"shapes do not fit: mu {mu1.shape}, {mu2.shape}; cov {cov1.shape}, {cov2.shape}")
    if not (np.isfinite(cov1).all() and np.isfinite(cov2).all()):
        raise ValueError("covariances contain NaN or inf; check the features (diverged model, NaN images?)")
    factor = psd_factor(cov1)
    trace_sqrt = 0.0
    if factor.shape[1]:
        product = factor.T @ cov2 @ factor
        eigenvalues = scipy.linalg.eigh((product + product.T) / 2, eigvals_only=True, driver="evd",
                                        check_finite=False)
        trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def fid(stats_a: FrechetStats, stats_b: FrechetStats) -> float:
    return frechet_distance(stats_a.mean, stats_a.cov, stats_b.mean, stats_b.cov)


def fid_from_features(features_a, features_b) -> float:
    return fid(FrechetStats().update(features_a), FrechetStats().update(features_b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (x @ y.T * gamma + coef0) ** degree


def _unbiased_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kid(features_a, features_b, subsets: int = 100, subset_size: int = 1000, seed: int = 2020, degree: int = 3,
        gamma: float | None = None, coef0: float = 1.0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased polynomial-kernel MMD^2 over random subsets -> (mean, std).

    Subsets are drawn as torch-fidelity draws them (numpy RandomState(seed), without replacement), so equal
    settings give torch-fidelity's numbers.
    """
    a = _as_float64_tensor(features_a).numpy()
    b = _as_float64_tensor(features_b).numpy()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected two feature arrays (n, d) of equal d, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < subset_size:
        raise ValueError(f"KID subset_size {subset_size} exceeds the number of feature vectors ({len(a)}, "
                         f"{len(b)}); lower subset_size")
    if subset_size < 2:
        raise ValueError("KID needs subset_size >= 2")
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), subset_size, replace=False)]
        y = b[rng.choice(len(b), subset_size, replace=False)]
        values[i] = _unbiased_mmd2(_polynomial_kernel(x, x, degree, gamma, coef0),
                                   _polynomial_kernel(x, y, degree, gamma, coef0),
                                   _polynomial_kernel(y, y, degree, gamma, coef0))
    return float(values.mean()), float(values.std())


def _batches(images_or_batches, batch_size: int) -> tuple[Iterable, int | None]:
    """Split one (N, C, H, W) array/tensor into batches; pass an iterable of batches through."""
    if isinstance(images_or_batches, (np.ndarray, torch.Tensor)):
        images = images_or_batches
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
        starts = range(0, len(images), batch_size)
        return (images[start:start + batch_size] for start in starts), len(starts)
    return images_or_batches, (len(images_or_batches) if hasattr(images_or_batches, "__len__") else None)


def _feature_batches(extractor, images_or_batches, batch_size: int, progress: bool, desc: str):
    batches, total = _batches(images_or_batches, batch_size)
    device = module_device(extractor)
    for batch in tqdm(batches, total=total, desc=desc, unit="batch", leave=False, disable=not progress):
        batch = torch.as_tensor(np.asarray(batch) if not torch.is_tensor(batch) else batch)
        with torch.inference_mode():
            features = extractor(batch.to(device=device, dtype=torch.float32))
        yield features.reshape(features.shape[0], -1)


def compute_stats(extractor, images_or_batches, batch_size: int = 64, progress: bool = True,
                  desc: str = "FID features") -> FrechetStats:
    """Streaming statistics of ``extractor``'s features; images are float in [-1, 1], (N, C, H, W)."""
    stats = FrechetStats()
    for features in _feature_batches(extractor, images_or_batches, batch_size, progress, desc):
        stats.update(features)
    return stats


def extract_features(extractor, images_or_batches, batch_size: int = 64, progress: bool = True,
                     desc: str = "features") -> np.ndarray:
    """All features as one (N, D) array (what KID needs)."""
    parts = [f.cpu().numpy() for f in _feature_batches(extractor, images_or_batches, batch_size, progress, desc)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


def iterate_images(dataset, batch_size: int = 64, image_key: str = "image"):
    """Batches of ``dataset``'s images (whole batches through ``get_batch`` when it has one)."""
    n = len(dataset)
    for start in range(0, n, batch_size):
        indices = np.arange(start, min(start + batch_size, n))
        batch = fetch_batch(dataset, indices, keys=(image_key,))
        if image_key not in batch:
            raise KeyError(f"dataset examples have no key {image_key!r} (keys: {sorted(batch)}); set fid/data_key")
        yield batch[image_key]


class _SizedBatches:
    def __init__(self, dataset, batch_size: int, image_key: str):
        self.dataset, self.batch_size, self.image_key = dataset, batch_size, image_key

    def __iter__(self):
        return iterate_images(self.dataset, self.batch_size, self.image_key)

    def __len__(self):
        return -(-len(self.dataset) // self.batch_size)


def _digest_array(value) -> bytes:
    array = np.asarray(value.numpy() if torch.is_tensor(value) else value)
    if array.dtype == object:
        return repr(array.tolist()).encode()
    return f"{array.dtype}{array.shape}".encode() + np.ascontiguousarray(array).tobytes()


def dataset_cache_key(dataset) -> str:
    """Class, length and a digest of the labels: changes when the dataset's content or split changes."""
    digest = hashlib.sha256()
    for key, value in sorted(getattr(dataset, "labels", {}).items()):
        digest.update(key.encode())
        digest.update(_digest_array(value))
    cls = type(dataset)
    return f"{cls.__module__}.{cls.__qualname__}-n{len(dataset)}-{digest.hexdigest()[:12]}"


def reference_stats(dataset, extractor, cache_dir: str | os.PathLike | None, key: str | None = None,
                    batch_size: int = 64, image_key: str = "image", progress: bool = True) -> FrechetStats:
    """Statistics of a dataset's images, computed once and cached as ``<key>-<extractor>-<weights digest>.npz``.

    ``key`` names the dataset (default: ``dataset_cache_key(dataset)``); ``cache_dir=None`` disables caching.
    """
    extractor = as_extractor(extractor)
    path = None
    if cache_dir is not None:
        key = dataset_cache_key(dataset) if key is None else key
        safe_key = re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)
        path = Path(cache_dir) / f"{safe_key}-{extractor.name}-{extractor.fingerprint()[:16]}.npz"
        if path.is_file():
            return FrechetStats.load(path)
    stats = compute_stats(extractor, _SizedBatches(dataset, batch_size, image_key), batch_size, progress,
                          desc="FID reference features")
    if path is not None:
        stats.save(path)
    return stats
