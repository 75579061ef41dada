"""The cFlow: a Glow-like multi-scale flow on 5-bit images whose latent splits into z_-s and z_s."""
from __future__ import annotations

import torch
import torch.nn as nn

from edflow.config import section
from fairkit.nets import MultiScaleFlow
from nullsample.partition import zero_s, zs_size
from nullsample.quantization import dequantize, quantize, to_signed_range, to_unit_range

# dequantize, actnorm and factored_channels default to this code's first choices; the coloured-MNIST configs set
# nifr's (exact inputs, no ActNorm, the first half factored out).
CFLOW_DEFAULTS = {"in_channels": 3, "image_size": 32, "levels": 3, "level_depth": 24, "coupling_channels": 512,
                  "zs_frac": 0.002, "n_bits": 5, "factor_out": True, "dequantize": True, "actnorm": True,
                  "factored_channels": "last"}
FACTORED_CHANNELS = ("last", "first")


class CFlow(nn.Module):
    """Images (B, C, H, W) in [-1, 1] <-> flat latents (B, C*H*W).

    The flow itself maps its inputs to z (``forward``) and back (``reverse``): with ``Model/dequantize: true``
    images quantised to ``n_bits``, dequantised and centred to [-0.5, 0.5); with ``false`` (nifr on coloured MNIST)
    the images' exact values in [0, 1], without noise (a continuous density on discrete data: the NLL is unbounded
    below). ``encode``/``decode``/``null_sample``/``reconstruct`` work on [-1, 1] images as the datasets give them.
    """

    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Model", CFLOW_DEFAULTS)
        size = int(options["image_size"])
        self.n_bits = int(options["n_bits"])
        self.dequantize = bool(options["dequantize"])
        if options["factored_channels"] not in FACTORED_CHANNELS:
            raise ValueError(f"Model/factored_channels={options['factored_channels']!r} must be one of "
                             f"{FACTORED_CHANNELS}")
        self.flow = MultiScaleFlow(int(options["in_channels"]), int(options["levels"]), int(options["level_depth"]),
                                   int(options["coupling_channels"]), scale="sigmoid", input_size=size,
                                   actnorm=bool(options["actnorm"]), factor_out=bool(options["factor_out"]),
                                   factor_first=options["factored_channels"] == "first")
        self.image_shape = (int(options["in_channels"]), size, size)
        self.num_dims = self.image_shape[0] * size * size
        self.zs_dims = zs_size(self.num_dims, float(options["zs_frac"]))

    @property
    def input_offset(self) -> float:
        """What ``flow_input`` subtracts from [0, 1] images."""
        return 0.5 if self.dequantize else 0.0

    @property
    def discrete_bits(self) -> int | None:
        """The bits per dimension of the bins the likelihood is over (None: a density on exact values)."""
        return self.n_bits if self.dequantize else None

    def flow_input(self, x: torch.Tensor, noise: bool) -> torch.Tensor:
        """[-1, 1] images -> n_bits bins, dequantised (uniform noise, or bin centres) and centred to [-0.5, 0.5);
        without ``dequantize`` their exact values in [0, 1] (``noise`` is then ignored)."""
        if not self.dequantize:
            return to_unit_range(x)
        return dequantize(quantize(to_unit_range(x), self.n_bits), self.n_bits, noise) - self.input_offset

    def forward(self, flow_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, log|det dz/dx|) of flow inputs."""
        return self.flow(flow_input)

    def reverse(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow.reverse(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of [-1, 1] images, quantised to their bin centres (deterministic)."""
        return self.flow(self.flow_input(x, noise=False))[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] of latents, clamped to the valid range."""
        return to_signed_range(torch.clamp(self.reverse(z) + self.input_offset, 0.0, 1.0))

    def adversary_input(self, z: torch.Tensor) -> torch.Tensor:
        """[z_-s, 0]: what the discriminators see."""
        return zero_s(z, self.zs_dims)

    @torch.no_grad()
    def null_code(self, x: torch.Tensor) -> torch.Tensor:
        """[z_-s, 0] of [-1, 1] images: the code a null-sample is decoded from."""
        return zero_s(self.encode(x), self.zs_dims)

    @torch.no_grad()
    def null_sample(self, x: torch.Tensor) -> torch.Tensor:
        """clamp(INN^-1([z_-s, 0])): x with the information of z_s removed, in [-1, 1]."""
        return self.decode(self.null_code(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """INN^-1(INN(x)): x (quantised to n_bits with ``dequantize``; the flow is exact; ``s`` is not needed)."""
        return self.decode(self.encode(x))
