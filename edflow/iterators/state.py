"""TemplateIterator's state: what is saved (every attribute with ``state_dict``, the counters, the RNG states),
restoring it, checkpoints and ``status.yaml``. A mixin of ``TemplateIterator`` (edflow/iterators/template_iterator.py),
which sets the counters, ``not_saved`` and the first stages used here."""
from __future__ import annotations

import os
import socket
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import compat
from edflow import distributed as dist
from edflow.config import dump_yaml
from edflow.runner_keys import runner_value


class RunState:
    def stateful_attributes(self) -> dict:
        seen = set(map(id, self.first_stages.values())) if self.first_stages else {id(self.first_stage)}
        attributes = {}
        for name, value in vars(self).items():
            if (name in self.not_saved or name.startswith("_") or id(value) in seen
                    or isinstance(value, torch.nn.parallel.DistributedDataParallel)  # its module is saved
                    or not callable(getattr(value, "state_dict", None))
                    or not callable(getattr(value, "load_state_dict", None))):
                continue
            seen.add(id(value))  # an object held under two names is saved once, under the first
            attributes[name] = value
        return attributes

    def save(self, path: str) -> None:
        state = {name: obj.state_dict() for name, obj in self.stateful_attributes().items()}
        ckpt.atomic_save({"state": state, "global_step": self.global_step, "epoch": self.epoch,
                          "batch_in_epoch": self.batch_in_epoch, "best": self.best, "rng": ckpt.rng_state(),
                          "skipped_steps": self.skipped_steps,
                          "global_batch_size": self.batch_size(train=True) * dist.world_size()}, path)

    def restore(self, path: str) -> None:
        checkpoint = ckpt.load(path, map_location=self.device)
        attributes = self.stateful_attributes()
        missing = set(checkpoint["state"]) - set(attributes)
        if missing:
            raise ckpt.CheckpointError(f"checkpoint {path!r} holds state for {sorted(missing)}, which this run's "
                                       f"iterator lacks: was it written by another method or config?")
        for name, state in checkpoint["state"].items():
            configured = _configured_lrs(attributes[name])
            try:
                attributes[name].load_state_dict(state)
            except (RuntimeError, ValueError, KeyError) as error:
                raise ckpt.CheckpointError(f"checkpoint {path!r} does not fit this run's {name}: "
                                           f"{str(error).strip().splitlines()[0]} (was it written with another "
                                           f"architecture or config?)") from None
            _warn_if_lrs_replaced(name, configured, _configured_lrs(attributes[name]))
        self.global_step = checkpoint.get("global_step", 0)
        self.epoch = checkpoint.get("epoch", 0)
        self.batch_in_epoch = self._batches_seen(checkpoint)
        self.best = checkpoint.get("best")
        self.skipped_steps = checkpoint.get("skipped_steps", 0)
        if "rng" in checkpoint:
            ckpt.set_rng_state(checkpoint["rng"])

    def _batches_seen(self, checkpoint: dict) -> int:
        """The position in the epoch in batches of this run's global batch size, which may differ from the saved
        run's when it is resumed on another number of ranks: the examples seen so far are a prefix of the epoch's
        order whatever the number of ranks, so the position carries over."""
        batches = checkpoint.get("batch_in_epoch", 0)
        now = self.batch_size(train=True) * dist.world_size()
        saved = checkpoint.get("global_batch_size", now)
        if saved == now:
            return batches
        seen = batches * saved
        if seen % now:
            tqdm.write(f"resuming with global batch {now} (was {saved}): the {seen % now} examples after the last "
                       f"full batch of this epoch are trained on again", file=sys.stderr)
        return seen // now

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.root, "train", "checkpoints")

    def save_checkpoint(self) -> str | None:
        path = os.path.join(self.checkpoint_dir, f"model-{self.global_step}.ckpt")
        self.synchronise_buffers()
        if dist.is_main_process():
            compat.save(self, path)
            ckpt.prune(self.checkpoint_dir, runner_value(self.config, "ckpt_keep"))
            self._write_status("running")
        dist.barrier()
        return path

    def _write_status(self, status: str, **extra) -> None:
        if dist.is_main_process():
            dump_yaml({"status": status, "step": self.global_step, "epoch": self.epoch, "pid": os.getpid(),
                       "host": socket.gethostname(), "time": time.time(), **extra}, os.path.join(self.root, "status.yaml"))


def _configured_lrs(obj) -> list[float] | None:
    """The learning rates an optimiser was built with (``initial_lr`` once a scheduler has moved ``lr``)."""
    if not isinstance(obj, torch.optim.Optimizer):
        return None
    return [float(group.get("initial_lr", group["lr"])) for group in obj.param_groups]


def _warn_if_lrs_replaced(name: str, configured: list[float] | None, restored: list[float] | None) -> None:
    # torch restores an optimiser's hyperparameters with its state, so a changed lr in the config is dropped.
    if configured is None or restored is None or np.allclose(configured, restored, rtol=1e-6, atol=0):
        return
    print(f"edflow: warning: {name}'s learning rates {configured} from the config are replaced by the "
          f"checkpoint's {restored}; resuming continues the saved run as it was; to train with other rates, "
          f"start a new run.", file=sys.stderr)
