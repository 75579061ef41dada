"""What lets code written for edflow 0.4 run unchanged on this runner.

An iterator is in edflow 0.4's style when its class writes its own checkpoints, i.e. overrides ``save`` (edflow 0.4's
``TemplateIterator`` had no default, so every such iterator does). For these iterators:

- ``save(checkpoint_path)`` is called with a temporary path in an existing folder; the runner then flushes the file
  to disk, renames it to ``model-<step>.ckpt`` and records its size, sha256 and the run's counters in the sidecar
  ``model-<step>.ckpt.json``, so a kill during the user's write never leaves a truncated newest checkpoint.
- after the user's ``restore(checkpoint_path)`` the step is set from that sidecar, else from the file name
  (``model-<step>.ckpt``, as edflow parsed it); epoch and position in the epoch likewise.
- step ops receive numpy batches (nested dicts included), as edflow's batches were; ``numpy_batches = False`` on
  the class asks for tensors instead.
- ``num_steps`` is filled in from ``num_epochs`` when missing (edflow 0.4 did so, and iterators read it), and
  ``test_mode: true`` is set when evaluating.
- evaluation callbacks also come from ``eval_hook/eval_callbacks`` and from the iterator's or model's
  ``callbacks["eval_op"]``; a callback may return ``{"scalars": {...}}`` as edflow's did.

Hooks: ``edflow.hooks.Hook`` subclasses are called with edflow's arguments every ``hook_freq`` steps; other hooks
get the iterator.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Callable, Mapping

import numpy as np
import torch

from edflow import checkpoint as ckpt
from edflow.runner_keys import runner_value
from edflow.util import get_obj_from_str, retrieve


def _template_iterator():
    from edflow.iterators.template_iterator import TemplateIterator  # here: template_iterator imports this module

    return TemplateIterator


def overrides(cls_or_obj, name: str) -> bool:
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return getattr(cls, name) is not getattr(_template_iterator(), name)


def is_edflow04_style(cls_or_obj) -> bool:
    return overrides(cls_or_obj, "save")


def wants_numpy_batches(cls_or_obj) -> bool:
    chosen = getattr(cls_or_obj, "numpy_batches", None)
    return is_edflow04_style(cls_or_obj) if chosen is None else bool(chosen)


# --- checkpoints ---------------------------------------------------------------------------------------------------
def save(iterator, path: str) -> None:
    """The iterator's state at ``path``: the runner's own format, or the user's ``save`` made atomic."""
    if not overrides(iterator, "save"):
        iterator.save(path)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    iterator.save(tmp)
    if not os.path.isfile(tmp):
        raise ckpt.CheckpointError(
            f"{type(iterator).__name__}.save(checkpoint_path) wrote no file at the path it was given ({tmp}); "
            f"write the whole checkpoint to exactly that path, e.g. torch.save(state, checkpoint_path)")
    digest = hashlib.sha256()
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(os.path.dirname(path) or ".")
    record = {"bytes": os.path.getsize(path), "sha256": digest.hexdigest(), "step": iterator.global_step,
              "epoch": iterator.epoch, "batch_in_epoch": iterator.batch_in_epoch,
              "global_batch_size": _global_batch_size(iterator), "written_by": f"{type(iterator).__name__}.save"}
    ckpt._write_durably(ckpt.sidecar(path), json.dumps(record).encode())


def _fsync_folder(folder: str) -> None:
    # the rename itself reaches the disk only with its folder
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _global_batch_size(iterator) -> int:
    from edflow import distributed as dist

    return iterator.batch_size(train=True) * dist.world_size()


def step_from_name(path: str) -> int | None:
    """edflow's rule: the number after the last ``-`` before ``.ckpt`` (``model-40.ckpt`` -> 40)."""
    stem = os.path.basename(path).rsplit(".ckpt", 1)[0]
    tail = stem.rsplit("-", 1)[-1] if "-" in stem else ""
    return int(tail) if tail.isdigit() else None


def read_record(path: str) -> dict:
    try:
        with open(ckpt.sidecar(path)) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def restore(iterator, path: str) -> None:
    """``iterator.restore(path)``; for a user-written ``restore``, the file is checked against its record first and
    the step, epoch and position in the epoch are set afterwards, as edflow's checkpoint hook did."""
    if not overrides(iterator, "restore"):
        iterator.restore(path)
        return
    problem = ckpt.damage(path)
    if problem:
        raise ckpt.CheckpointError(f"checkpoint {path!r} cannot be used: {problem}. Pick another one with -c "
                                   f"(the run's checkpoints are in {os.path.dirname(path) or '.'})")
    iterator.restore(path)
    record = read_record(path)
    step = record.get("step")
    if step is None:
        step = step_from_name(path)
    if step is None:
        print(f"edflow: warning: the step of checkpoint {path} is unknown (no record beside it and no "
              f"model-<step>.ckpt name); the run continues from step {iterator.global_step}", file=sys.stderr)
        return
    iterator.set_global_step(int(step))
    if "epoch" in record:
        iterator.epoch = int(record["epoch"])
        iterator.batch_in_epoch = iterator._batches_seen(record)
    else:  # written by edflow 0.4 itself: the step counts whole batches from the start
        per_epoch = _steps_per_epoch(iterator)
        if per_epoch:
            iterator.epoch, iterator.batch_in_epoch = divmod(int(step), per_epoch)


def _steps_per_epoch(iterator) -> int | None:
    if "train" not in iterator.datasets:
        return None
    return steps_per_epoch(iterator.config, len(iterator.datasets["train"]))


def steps_per_epoch(config: Mapping, n: int) -> int:
    from edflow import distributed as dist
    from edflow.data.loader import EpochBatchSampler

    return len(EpochBatchSampler(n, int(runner_value(config, "batch_size")), shuffle=False, seed=0,
                                 drop_last=bool(runner_value(config, "drop_last")), world_size=dist.world_size()))


# --- config --------------------------------------------------------------------------------------------------------
def prepare_config(config: dict, iterator_cls, datasets: Mapping, train: bool) -> None:
    """What edflow 0.4 put into the config before building an iterator of its style (in place)."""
    if not is_edflow04_style(iterator_cls):
        return
    if not train:
        config.setdefault("test_mode", True)
    elif not config.get("num_steps") and "train" in datasets:
        config["num_steps"] = int(runner_value(config, "num_epochs")) * steps_per_epoch(config, len(datasets["train"]))


# --- batches -------------------------------------------------------------------------------------------------------
def numpy_batch(batch):
    if torch.is_tensor(batch):
        return batch.detach().cpu().numpy()
    if isinstance(batch, Mapping):
        return {k: numpy_batch(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and batch and torch.is_tensor(batch[0]):
        return type(batch)(numpy_batch(v) for v in batch)
    return batch


# --- evaluation callbacks --------------------------------------------------------------------------------------------
def edflow_callbacks(iterator) -> dict[str, Callable]:
    """Callbacks named in ``eval_hook/eval_callbacks`` (a path or a mapping of paths) and in the iterator's or
    model's ``callbacks["eval_op"]``."""
    found: dict = {}
    named = retrieve(iterator.config, "eval_hook/eval_callbacks", default={}) or {}
    if not isinstance(named, Mapping):
        named = {"cb": named}
    found.update(named)
    for owner in (iterator, getattr(iterator, "model", None)):
        callbacks = getattr(owner, "callbacks", None)
        if isinstance(callbacks, Mapping):
            found.update(callbacks.get("eval_op") or {})
    return {name: get_obj_from_str(fn) if isinstance(fn, str) else fn for name, fn in found.items()}


def callback_scalars(result) -> dict:
    """The scalars of a callback's result: a flat mapping, or edflow's ``{"scalars": {...}, "images": ...}``."""
    if not isinstance(result, Mapping):
        return {}
    if "scalars" in result and isinstance(result["scalars"], Mapping):
        return _flat(result["scalars"])
    return _flat({k: v for k, v in result.items() if k not in ("images", "figures")})


def _flat(values: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}/"))
        elif (value.numel() == 1 if torch.is_tensor(value) else np.size(value) == 1):
            flat[f"{prefix}{key}"] = value
    return flat


# --- hooks ---------------------------------------------------------------------------------------------------------
def run_hooks(iterator, event: str, batch=None, ops=None, step: int | None = None) -> None:
    """``event`` is before_step, after_step or after_epoch. Step events come with the index of the training step
    (the global step before it, as in edflow) and are called when it is a multiple of ``hook_freq``."""
    from edflow.hooks.hook import Hook

    step = iterator.global_step if step is None else step
    if event.endswith("_step") and step % iterator.hook_freq:
        return
    for hook in list(iterator.hooks):
        method = getattr(hook, event, None)
        if method is None:
            continue
        if not isinstance(hook, Hook):
            if event != "before_step":
                method(iterator)
        elif event == "before_step":
            method(step, ops, batch, batch)
        elif event == "after_step":
            method(step, {"global_step": step})
        else:
            method(iterator.epoch - 1)


__all__ = ["is_edflow04_style", "save", "restore", "prepare_config", "numpy_batch", "edflow_callbacks",
           "callback_scalars", "run_hooks", "step_from_name"]
