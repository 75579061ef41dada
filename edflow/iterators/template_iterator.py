"""The training loop. A method subclasses ``TemplateIterator`` and implements ``step_op``::

    class Trainer(TemplateIterator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

        def step_op(self, model, image, cls, **batch):
            def train_op():
                loss = F.cross_entropy(model(image), cls)
                self.optimize(loss, self.optimizer)
                return loss
            def log_op():
                return {"scalars": {"loss": ...}, "images": {"inputs": image}}
            def eval_op():
                return {"pred": model(image).argmax(1), "label": cls}
            return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

Every module, optimiser, scheduler, scaler or other object with ``state_dict`` that the iterator holds is saved
and restored by default, with the RNG states and counters, so a resumed run continues bit for bit.

The class is composed of its concerns: the training loop (edflow/iterators/loop.py), state and checkpoints
(state.py) and evaluation with model selection (evaluation.py); this module holds the set-up and what step ops use.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Callable, Mapping

import torch

from edflow import compat
from edflow import distributed as dist
from edflow.config import ConfigError
from edflow.data.loader import make_loader
from edflow.device import resolve_device
from edflow.iterators.evaluation import Evaluation, EvaluationError
from edflow.iterators.loop import MAX_SKIPPED_IN_A_ROW, NonFiniteLossError, TrainingLoop, epoch_sampler
from edflow.iterators.state import RunState
from edflow.logger import Logger
from edflow.runner_keys import RUNNER, choices_text, runner_value
from edflow.util import get_obj_from_str, retrieve

__all__ = ["TemplateIterator", "NonFiniteLossError", "EvaluationError", "MAX_SKIPPED_IN_A_ROW", "epoch_sampler"]


class TemplateIterator(TrainingLoop, RunState, Evaluation):
    not_saved = ("config", "datasets", "logger", "first_stage", "first_stages", "hooks")

    def __init__(self, config: dict, root: str, model: torch.nn.Module, datasets: Mapping | None = None,
                 first_stage=None, logger: Logger | None = None, **kwargs):
        self.config = config
        self.root = root
        self.device = torch.device(resolve_device(runner_value(config, "device")))
        self.model = self.prepare_model(model) if isinstance(model, torch.nn.Module) else model
        self.datasets = dict(datasets or {})
        self.first_stages = first_stage if isinstance(first_stage, Mapping) else None
        self.first_stage = None if self.first_stages is not None else first_stage
        self.logger = logger or Logger(root, config, enabled=dist.is_main_process(), name=type(self).__name__)
        self.hooks: list = []
        self.amp = runner_value(config, "amp")
        if self.amp not in RUNNER["amp"].choices:
            raise ValueError(f"amp must be one of {choices_text('amp')}; got {self.amp!r}")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.nan_policy = runner_value(config, "nan_policy")
        if self.nan_policy not in RUNNER["nan_policy"].choices:
            raise ConfigError(f"nan_policy must be {choices_text('nan_policy', separator=' or ', quoted=True)}; "
                              f"got {self.nan_policy!r}")
        self.skipped_steps = 0
        self._skipped_in_a_row = 0
        self._ddp_parameters: set[int] = set()
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: dict | None = None
        self._stop_requested = False
        self._session = self._new_session_name()
        # edflow 0.4 passed these to every iterator; its iterators read them as attributes
        self.hook_freq = int(kwargs.get("hook_freq", runner_value(config, "hook_freq")) or 1)
        self.num_epochs = kwargs.get("num_epochs", runner_value(config, "num_epochs"))
        self._numpy_batches = compat.wants_numpy_batches(self)

    # --- what a method implements -------------------------------------------------------------------------
    def step_op(self, model, **batch) -> dict:
        raise NotImplementedError("a TemplateIterator subclass implements step_op(model, **batch)")

    def get_callbacks(self) -> dict[str, Callable]:
        """Evaluation callbacks ``fn(root, data_in, data_out, config) -> dict``; by default those named in
        ``eval_pipeline/callbacks`` (a mapping name -> dotted path)."""
        named = retrieve(self.config, "eval_pipeline/callbacks", default={}) or {}
        callbacks = compat.edflow_callbacks(self)
        callbacks.update({name: get_obj_from_str(path) if isinstance(path, str) else path
                          for name, path in named.items()})
        return callbacks

    # --- helpers for step ops ------------------------------------------------------------------------------
    def get_global_step(self, *args, **kwargs) -> int:
        return self.global_step

    def set_global_step(self, step: int) -> None:
        self.global_step = int(step)

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def average_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """What DDP does for the parameters of modules that ``wrap_ddp`` did not wrap, so any model trains
        data-parallel: G and D of a GAN, or a model whose parts a step op calls one by one."""
        if dist.world_size() == 1:
            return
        dist.average_([p.grad for group in optimizer.param_groups for p in group["params"]
                       if p.grad is not None and id(p) not in self._ddp_parameters])

    def wrap_ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module wrapped in DistributedDataParallel under torchrun (its gradients are then all-reduced during
        backward, overlapping communication with compute), else the module itself."""
        if dist.world_size() == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        self._ddp_parameters.update(id(p) for p in module.parameters())
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """On the device; with SyncBatchNorm and compiled when the config asks for it."""
        model = model.to(self.device)
        if runner_value(self.config, "sync_batchnorm"):
            if dist.world_size() > 1 and self.device.type == "cpu":
                raise ConfigError("sync_batchnorm: true needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
                                  "set sync_batchnorm: false for runs on CPUs")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        options = runner_value(self.config, "compile")
        if options:
            model.compile(**({} if options is True else dict(options)))  # in place: state_dict keys unchanged
        return model

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in self.stateful_attributes().values() if isinstance(m, torch.nn.Module)]

    def batch_size(self, train: bool) -> int:
        batch_size = runner_value(self.config, "batch_size")
        size = batch_size if train else (runner_value(self.config, "eval_batch_size") or batch_size)
        return int(size)

    def make_loader(self, dataset, train: bool):
        limit = runner_value(self.config, "eval_max_batches")
        return make_loader(dataset, self.batch_size(train), shuffle=train, seed=int(runner_value(self.config, "seed")),
                           drop_last=bool(runner_value(self.config, "drop_last")) and train,
                           num_workers=int(runner_value(self.config, "num_workers")),
                           pin_memory=self.device.type == "cuda", rank=dist.rank(), world_size=dist.world_size(),
                           pad=train, limit=None if train or limit is None else int(limit) * self.batch_size(False))

    def synchronise_buffers(self) -> None:
        for module in self.modules():
            dist.average_buffers_(module)

    def to_device(self, batch: Mapping) -> dict:
        if self._numpy_batches:
            return compat.numpy_batch(batch)
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    # --- bookkeeping ---------------------------------------------------------------------------------------
    def _new_session_name(self) -> str:
        """eval/<ts>: a new folder for each start, even for two starts within one second."""
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
        name, n = stamp, 1
        while os.path.exists(os.path.join(self.root, "eval", name)):
            name, n = f"{stamp}_{n}", n + 1
        return name
