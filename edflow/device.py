"""The run's device from the config key ``device``: ``auto`` (the default: CUDA when available, else the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

Every part of a run uses the resolved device: the model, the data batches, first stages, the FID extractor (unless
``fid/device`` names another) and the evaluation callbacks, which read it from ``config["device"]``.
"""
from __future__ import annotations

import re

import torch

from edflow.config import ConfigError

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def device_problem(spec) -> str | None:
    """Why ``spec`` cannot be used on this machine, in words that say what to set instead; None if it can."""
    if not isinstance(spec, str):
        return f"config key 'device' must be one of {DEVICE_FORMS}; got {spec!r}"
    if spec in ("auto", "cpu"):
        return None
    if spec == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "device: mps was asked for but this machine has no usable MPS backend; set device=auto or cpu"
        return None
    match = _CUDA.match(spec)
    if not match:
        return f"config key 'device' must be one of {DEVICE_FORMS}; got {spec!r}"
    if not torch.cuda.is_available():
        return (f"device: {spec} was asked for but CUDA is not available here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); set device=auto or cpu, or install a CUDA build")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        return f"device: {spec} was asked for but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
    return None


def resolve_device(spec="auto") -> str:
    """``auto`` made concrete (``cuda`` when CUDA is available, else ``cpu``); any other usable form unchanged."""
    problem = device_problem(spec)
    if problem:
        raise ConfigError(problem)
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec
