"""Pieces shared by the image datasets: where data lives, subsets, and the uint8 -> [-1, 1] conversion."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edflow.data.dataset import ArrayDataset

DATA_ENV_VAR = "FAIRKIT_DATA"
RESIZE_MODES = ("bilinear", "pad")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root`` if given, else $FAIRKIT_DATA, else ``data/`` in the current directory."""
    chosen = root if root is not None else os.environ.get(DATA_ENV_VAR) or "data"
    return Path(chosen).expanduser().absolute()  # absolute, so error messages say exactly where


def subset_indices(n: int, subset: int | None, seed: int | None = None) -> np.ndarray | None:
    """Indices of ``subset`` examples out of ``n``: the first ones, or (with a ``seed``) a seeded random choice in
    ascending order. None when ``subset`` is None."""
    if subset is None:
        return None
    if not 0 < int(subset) <= n:
        raise ValueError(f"subset={subset} must be between 1 and the dataset's size {n}")
    if seed is None:
        return np.arange(int(subset))
    return np.sort(np.random.default_rng(seed).choice(n, size=int(subset), replace=False))


def check_resize_mode(resize: str, in_size: int, size: int) -> None:
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize={resize!r} is not one of {RESIZE_MODES}")
    if resize == "pad" and (size < in_size or (size - in_size) % 2):
        raise ValueError(f"resize='pad' needs a size of at least {in_size} that differs from it by an even "
                         f"number of pixels, got size={size}; use resize='bilinear'")


def resize_images(images: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Square float images (B, C, H, H) to (B, C, size, size): bilinear, or zero padding on all four sides."""
    in_size = images.shape[-1]
    if in_size == size:
        return images
    if mode == "pad":
        margin = (size - in_size) // 2
        return F.pad(images, (margin, margin, margin, margin))
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < in_size)


def to_signed_unit_range(images: torch.Tensor, dequantize: bool) -> torch.Tensor:
    """Float pixel values in [0, 255] to [-1, 1]. With ``dequantize``, (x + u) / 256 with one u ~ U[0, 1) per
    image (as IIN trains), which lands in [-1, 1)."""
    if not dequantize:
        return images / 127.5 - 1.0
    noise = torch.rand((images.shape[0],) + (1,) * (images.ndim - 1), dtype=images.dtype, device=images.device)
    return (images + noise) / 128.0 - 1.0


class UInt8ImageDataset(ArrayDataset):
    """Square uint8 images held in memory as one tensor, (N, H, W) or (N, C, H, W), turned into float32
    (C, size, size) in [-1, 1] one batch at a time; the other arrays (labels) pass through unchanged."""

    def __init__(self, images, labels: dict, size: int | None = None, resize: str = "bilinear",
                 dequantize: bool = False, subset: int | None = None, subset_seed: int | None = None):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim not in (3, 4) or images.shape[-1] != images.shape[-2]:
            raise ValueError(f"expected square uint8 images (N, H, W) or (N, C, H, W), got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.in_size = images.shape[-1]
        self.size = self.in_size if size is None else int(size)
        check_resize_mode(resize, self.in_size, self.size)
        self.resize, self.dequantize = resize, dequantize
        arrays = {"image": images, **labels}
        indices = subset_indices(len(images), subset, subset_seed)
        if indices is not None:
            arrays = {k: v[torch.as_tensor(indices)] if torch.is_tensor(v) else np.asarray(v)[indices]
                      for k, v in arrays.items()}
        super().__init__(arrays)

    def get_example(self, i: int) -> dict:
        # Through get_batch, so that single examples and batches are processed by the same code.
        batch = self.get_batch([i])
        return {k: v[0] for k, v in batch.items() if k != "index_"}

    def process_batch(self, batch: dict) -> dict:
        images = batch["image"].float()
        if images.ndim == 3:
            images = images.unsqueeze(1)
        images = resize_images(images, self.size, self.resize)
        return {**batch, "image": to_signed_unit_range(images, self.dequantize)}
