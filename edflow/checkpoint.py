"""Checkpoints that continue a run bit for bit: written atomically, read with ``weights_only=True``."""
from __future__ import annotations

import glob
import os
import random
import re

import numpy as np
import torch

CKPT_PATTERN = re.compile(r"model-(\d+)\.ckpt$")


class CheckpointError(FileNotFoundError):
    pass


def atomic_save(obj, path: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename: a crash never leaves half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path: str, map_location="cpu") -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict:
    """Every RNG a training step may draw from, in types that ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_step(path: str) -> int:
    match = CKPT_PATTERN.search(os.path.basename(path))
    return int(match.group(1)) if match else -1


def list_checkpoints(folder: str) -> list[str]:
    """Checkpoints of a run's checkpoint folder, oldest first."""
    return sorted(glob.glob(os.path.join(folder, "model-*.ckpt")), key=checkpoint_step)


def latest_checkpoint(folder: str) -> str | None:
    checkpoints = list_checkpoints(folder)
    return checkpoints[-1] if checkpoints else None


def prune(folder: str, keep: int, protect: tuple[str, ...] = ()) -> None:
    """Keep the newest ``keep`` step checkpoints (0 or None keeps all)."""
    if not keep:
        return
    for path in list_checkpoints(folder)[:-keep]:
        if os.path.abspath(path) not in {os.path.abspath(p) for p in protect}:
            os.remove(path)


def model_state_dict(checkpoint: dict) -> dict:
    """The model weights inside one of our checkpoints, or a bare state dict as other releases wrote them."""
    if "state" in checkpoint and "model" in checkpoint["state"]:
        return checkpoint["state"]["model"]
    if "model" in checkpoint and isinstance(checkpoint["model"], dict):
        return checkpoint["model"]
    if "state_dict" in checkpoint:
        return checkpoint["state_dict"]
    return checkpoint
