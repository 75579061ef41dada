"""The runner's config keys, each declared once: its default, the types it accepts, and its choices or range.

``edflow.config`` derives its key checks from ``RUNNER``; code that reads a runner key calls
``runner_value(config, "batch_size")``, so a default is written down only here (docs/runner.md explains the keys).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class RunnerKey:
    """``types`` are Python types, None for null (an int is never a bool); ``range`` holds inclusive bounds of an
    integer key, None for no bound."""
    name: str
    default: Any
    types: tuple
    choices: tuple | None = None
    range: tuple | None = None
    doc: str = ""


_KEYS = (
    RunnerKey("experiment_name", None, (str, None), doc="the run folder's name (default: the last config file's)"),
    RunnerKey("iterator", None, (str, None), doc="dotted path of the iterator class"),
    RunnerKey("model", None, (str, None), doc="dotted path of the model class"),
    RunnerKey("datasets", {}, (Mapping, None), doc="split name -> dotted class path or {target, params}"),
    RunnerKey("dataset", None, (str, Mapping, None), doc="edflow 0.4's datasets/train"),
    RunnerKey("validation_dataset", None, (str, Mapping, None), doc="edflow 0.4's datasets/validation"),
    RunnerKey("batch_size", 32, (int,), range=(1, None), doc="training batch size per process"),
    RunnerKey("eval_batch_size", None, (int, None), range=(1, None), doc="evaluation batch size (null: batch_size)"),
    RunnerKey("num_epochs", 1, (int,), range=(0, None), doc="length of training unless num_steps is set"),
    RunnerKey("num_steps", None, (int, None), range=(0, None), doc="length of training in steps (wins)"),
    RunnerKey("log_freq", 100, (int,), range=(1, None), doc="run log_op every n steps"),
    RunnerKey("hook_freq", 1, (int,), range=(1, None), doc="call edflow 0.4 hooks every n steps"),
    RunnerKey("ckpt_freq", None, (int, None), range=(1, None), doc="checkpoint every n steps as well"),
    RunnerKey("ckpt_keep", 3, (int, None), range=(0, None), doc="keep the newest n checkpoints"),
    RunnerKey("eval_freq", 1, (int,), range=(1, None), doc="evaluate every n epochs"),
    RunnerKey("eval_max_batches", None, (int, None), range=(1, None), doc="evaluate on at most n batches"),
    # the seed must suit numpy's and torch's generators
    RunnerKey("seed", 0, (int,), range=(0, 2**32 - 1), doc="seed of every RNG"),
    RunnerKey("device", "auto", (str,), doc="auto (CUDA when available, else the CPU; edflow/device.py), cpu, cuda:N"),
    RunnerKey("amp", None, (str, None), choices=(None, "bf16", "fp16"), doc="mixed precision, null for float32"),
    RunnerKey("nan_policy", "stop", (str,), choices=("stop", "skip"), doc="what a non-finite loss does"),
    RunnerKey("sync_batchnorm", False, (bool,), doc="SyncBatchNorm under torchrun on GPUs"),
    RunnerKey("compile", False, (bool, Mapping), doc="true, or keyword arguments of torch.compile"),
    RunnerKey("num_workers", 0, (int,), range=(0, None), doc="data loader worker processes"),
    RunnerKey("drop_last", True, (bool,), doc="drop the last incomplete training batch"),
    RunnerKey("integrations", {}, (Mapping, None), doc="optional loggers: tensorboard, wandb"),
    RunnerKey("eval_pipeline", {}, (Mapping, None), doc="{callbacks: {name: dotted path}}"),
    RunnerKey("model_selection", None, (Mapping, None), doc="{metric, mode}: keep best.ckpt"),
    RunnerKey("first_stage", None, (Mapping, None), doc="earlier runs this one builds on"),
    RunnerKey("debug", {}, (Mapping, None), doc="merged over the config under -d"),
)
RUNNER: dict[str, RunnerKey] = {key.name: key for key in _KEYS}


def runner_value(config: Mapping, name: str) -> Any:
    """``config[name]`` if given (null included), else the key's default (a fresh copy of a mutable one)."""
    if name not in RUNNER:
        raise KeyError(f"{name!r} is not a runner key; the runner keys are {', '.join(RUNNER)}")
    if name in config:
        return config[name]
    return copy.deepcopy(RUNNER[name].default)


def choices_text(name: str, *, separator: str = ", ", quoted: bool = False) -> str:
    """A key's choices as error messages list them: ``null, bf16, fp16`` or ``'stop' or 'skip'``."""
    return separator.join("null" if c is None else repr(c) if quoted else str(c) for c in RUNNER[name].choices)
