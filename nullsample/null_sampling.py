"""Null-sampling as a stage: every image of a dataset replaced by its null-sample under a trained first stage
(cFlow or cVAE), computed once, in batches, and held in memory as uint8."""
from __future__ import annotations

from typing import Mapping

import torch
from tqdm.auto import tqdm

from edflow.data.dataset import ArrayDataset
from edflow.data.loader import make_loader
from nullsample.quantization import to_signed_range, to_unit_range

# Data settings that change which images or labels a split holds; stages chained on each other must agree on them.
# (Data/redraw is not among them: it changes only the pretrain split, which no second stage reads.)
DISTRIBUTION_KEYS = ("sigma", "sigma_kind", "seed", "pretrain_frac", "image_size", "unbiased_frac",
                     "pretrain_frac_of_unbiased", "s_attribute", "y_attribute")


class NullSampledDataset(ArrayDataset):
    """Null-sampled images (uint8 in memory) with the source's y and s; examples as the source's."""

    def __init__(self, images: torch.Tensor, y: torch.Tensor, s: torch.Tensor):
        if images.dtype != torch.uint8:
            raise ValueError(f"NullSampledDataset holds uint8 images, got {images.dtype}")
        super().__init__({"image": images, "y": y, "s": s})

    @property
    def labels(self) -> dict:
        return {"y": self.arrays["y"].numpy(), "s": self.arrays["s"].numpy()}

    def process_batch(self, batch: dict) -> dict:
        return {**batch, "image": to_signed_range(batch["image"].float() / 255.0)}


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images as uint8, as they would be saved."""
    return torch.round(to_unit_range(images).clamp(0.0, 1.0) * 255.0).to(torch.uint8)


@torch.no_grad()
def null_sample_dataset(stage: torch.nn.Module, dataset, batch_size: int = 256, device: str | torch.device = "cpu",
                        desc: str = "null-sampling", num_workers: int = 0) -> NullSampledDataset:
    """Every image of ``dataset`` (examples with image, y, s) passed through ``stage.null_sample``."""
    if not hasattr(stage, "null_sample"):
        raise TypeError(f"first stage {type(stage).__name__} has no null_sample(x); chain a cFlow or cVAE run")
    stage.eval()
    loader = make_loader(dataset, batch_size, shuffle=False, seed=0, drop_last=False, num_workers=num_workers)
    images, ys, ss = [], [], []
    for batch in tqdm(loader, desc=desc, leave=False):
        images.append(to_uint8(stage.null_sample(batch["image"].to(device)).cpu()))
        ys.append(torch.as_tensor(batch["y"]))
        ss.append(torch.as_tensor(batch["s"]))
    return NullSampledDataset(torch.cat(images), torch.cat(ys).long(), torch.cat(ss).long())


def check_same_data(stage_options: Mapping, options: Mapping) -> None:
    """Raise if the first stage was trained on differently generated data (say another colour sigma).

    Both arguments are complete ``Data`` sections (defaults filled in)."""
    differing = {key: (stage_options.get(key), options.get(key)) for key in DISTRIBUTION_KEYS
                 if stage_options.get(key) != options.get(key)}
    if differing:
        details = ", ".join(f"Data/{k}: first stage {a!r}, this stage {b!r}" for k, (a, b) in differing.items())
        raise ValueError(f"the first stage was trained on other data than this stage uses ({details}); set the same "
                         f"Data values here or point first_stage/run to a stage trained with them")
