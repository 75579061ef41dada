"""Checkpoints that continue a run bit for bit: written atomically, read with ``weights_only=True``."""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import pickle
import random
import re
import sys

import numpy as np
import torch

from edflow import safe_io

CKPT_PATTERN = re.compile(r"model-(\d+)\.ckpt$")


class CheckpointError(FileNotFoundError):
    pass


def atomic_save(obj, path: str) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename: a crash never leaves half a file.

    A sidecar ``<path>.json`` records the size and sha256 of the bytes, so a file damaged later (a full disk, a
    copy cut short) is recognised before it is loaded."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    _write_durably(path, data)
    _write_durably(sidecar(path), json.dumps({"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}).encode())


def _write_durably(path: str, data: bytes) -> None:
    safe_io.write_bytes(path, data, durable=True)


def sidecar(path: str) -> str:
    return path + ".json"


def copy(source: str, target: str) -> None:
    """Copy a checkpoint with its sidecar, each atomically."""
    for src, dst in ((source, target), (sidecar(source), sidecar(target))):
        if os.path.isfile(src):
            safe_io.copy_file(src, dst)


def damage(path: str) -> str | None:
    """Why ``path`` cannot be trusted (missing, truncated, checksum mismatch), or None if it matches its record."""
    if not os.path.isfile(path):
        return "the file does not exist"
    try:
        with open(sidecar(path)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None  # written by another tool or an older release: torch.load will judge it
    except (OSError, ValueError) as error:
        return f"its record {sidecar(path)} is unreadable ({error})"
    size = os.path.getsize(path)
    if size != record["bytes"]:
        return f"it has {size} bytes but {record['bytes']} were written"
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != record["sha256"]:
        return "its sha256 differs from the one recorded when it was written"
    return None


def load(path: str, map_location="cpu") -> dict:
    """Tensors and plain containers only (``weights_only=True``): loading a checkpoint never runs code."""
    problem = damage(path)
    if problem:
        raise CheckpointError(f"checkpoint {path!r} cannot be used: {problem}. Pick another one with -c "
                              f"(the run's checkpoints are in {os.path.dirname(path) or '.'})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"checkpoint {path!r} is refused: it holds objects other than tensors and plain "
                              f"containers, and checkpoints are loaded with weights_only=True so that loading "
                              f"never runs code") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path!r} is not a readable torch checkpoint ({error})") from None


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
    """The newest checkpoint that matches its record; damaged newer ones are skipped with a warning."""
    for path in reversed(list_checkpoints(folder)):
        problem = damage(path)
        if problem is None:
            return path
        print(f"edflow: warning: skipping checkpoint {path}: {problem}", file=sys.stderr)
    return None


def prune(folder: str, keep: int, protect: tuple[str, ...] = ()) -> None:
    """Keep the newest ``keep`` step checkpoints (0 or None keeps all)."""
    if not keep:
        return
    for path in list_checkpoints(folder)[:-keep]:
        if os.path.abspath(path) not in {os.path.abspath(p) for p in protect}:
            for file in (path, sidecar(path)):
                if os.path.exists(file):
                    os.remove(file)


def remove_stale_temporaries(folder: str) -> None:
    """Half-written files left by a process that was killed while saving."""
    for path in glob.glob(os.path.join(folder, "*.tmp*")):
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
