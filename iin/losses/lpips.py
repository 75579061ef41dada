"""LPIPS (Zhang et al., CVPR 2018), VGG-16 variant, from two local weight files.

d(x, y) = sum_l mean_hw || w_l * (n(f_l(x)) - n(f_l(y))) ||^2, with f_l the VGG-16 activations relu1_2, relu2_2,
relu3_3, relu4_3, relu5_3 of the rescaled input, n(.) unit-normalisation along channels and w_l non-negative
per-channel weights (the "lin" layers).

- ``vgg_weights``: torchvision's ImageNet VGG-16 (``vgg16-397923af.pth``; only its ``features.*`` are read);
- ``lin_weights``: the lpips package's ``weights/v0.1/vgg.pth`` (keys ``lin<l>.model.1.weight``).
"""
from __future__ import annotations

import os

import torch
import torch.nn as nn
from torchvision.models.vgg import cfgs, make_layers

VGG_SLICES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))  # up to relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
VGG_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = (-0.030, -0.088, -0.188)  # the input scaling LPIPS was trained with, for images in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
WEIGHTS_HINT = ("LPIPS needs two local files: Loss/lpips_weights/vgg = torchvision's vgg16-397923af.pth and "
                "Loss/lpips_weights/lin = the lpips package's weights/v0.1/vgg.pth; or set Loss/perceptual_weight: 0")


def _load(path: str, what: str) -> dict:
    if not path or not os.path.isfile(str(path)):
        raise FileNotFoundError(f"LPIPS {what} weights not found at {path!r}. {WEIGHTS_HINT}")
    return torch.load(path, map_location="cpu", weights_only=True)


class LPIPS(nn.Module):
    """``forward(x, y) -> (B, 1, 1, 1)`` perceptual distances of images in [-1, 1] (gray images are repeated to
    RGB). Frozen: it only provides a loss."""

    def __init__(self, vgg_weights: str, lin_weights: str):
        super().__init__()
        lin_state = _load(lin_weights, "linear-layer")
        missing = [f"lin{i}.model.1.weight" for i in range(len(VGG_CHANNELS))
                   if f"lin{i}.model.1.weight" not in lin_state]
        if missing:
            raise KeyError(f"{lin_weights!r} lacks {missing}; it should be the lpips package's weights/v0.1/vgg.pth. "
                           f"{WEIGHTS_HINT}")
        with torch.device("meta"):  # no random init: every weight comes from the file
            vgg = make_layers(cfgs["D"], batch_norm=False)
        vgg_state = {k[len("features."):]: v for k, v in _load(vgg_weights, "VGG-16").items()
                     if k.startswith("features.")}
        vgg.load_state_dict(vgg_state, assign=True)
        self.slices = nn.ModuleList(nn.Sequential(*vgg[a:b]) for a, b in VGG_SLICES)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in VGG_CHANNELS)
        for i, lin in enumerate(self.lins):
            lin.weight.data.copy_(lin_state[f"lin{i}.model.1.weight"])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # no dropout or statistics to update

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = (x.expand(-1, 3, -1, -1) - self.shift) / self.scale
        outputs = []
        for block in self.slices:
            h = block(h)
            outputs.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return outputs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        distance = 0.0
        for lin, fx, fy in zip(self.lins, self.activations(x), self.activations(y)):
            distance = distance + lin((fx - fy).pow(2)).mean(dim=(2, 3), keepdim=True)
        return distance
