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
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sys
import time
from typing import Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import compat
from edflow import distributed as dist
from edflow import safe_io
from edflow.config import ConfigError, dump_yaml, to_plain
from edflow.data.dataset import ExampleDataset
from edflow.data.loader import make_loader
from edflow.device import resolve_device
from edflow.logger import Logger, to_float
from edflow.util import get_obj_from_str, retrieve


class NonFiniteLossError(FloatingPointError):
    pass


class EvaluationError(RuntimeError):
    """An evaluation callback raised; the message names it and the step, the original error is ``__cause__``."""


MAX_SKIPPED_IN_A_ROW = 20  # under nan_policy: skip, more than this means the model itself is broken


class TemplateIterator:
    not_saved = ("config", "datasets", "logger", "first_stage", "first_stages", "hooks")

    def __init__(self, config: dict, root: str, model: torch.nn.Module, datasets: Mapping | None = None,
                 first_stage=None, logger: Logger | None = None, **kwargs):
        self.config = config
        self.root = root
        self.device = torch.device(resolve_device(config.get("device", "auto")))
        self.model = self.prepare_model(model) if isinstance(model, torch.nn.Module) else model
        self.datasets = dict(datasets or {})
        self.first_stages = first_stage if isinstance(first_stage, Mapping) else None
        self.first_stage = None if self.first_stages is not None else first_stage
        self.logger = logger or Logger(root, config, enabled=dist.is_main_process(), name=type(self).__name__)
        self.hooks: list = []
        self.amp = config.get("amp")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be one of null, bf16, fp16; got {self.amp!r}")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.nan_policy = config.get("nan_policy", "stop")
        if self.nan_policy not in ("stop", "skip"):
            raise ConfigError(f"nan_policy must be 'stop' or 'skip'; got {self.nan_policy!r}")
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
        self.hook_freq = int(kwargs.get("hook_freq", config.get("hook_freq", 1)) or 1)
        self.num_epochs = kwargs.get("num_epochs", config.get("num_epochs", 1))
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

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, retain_graph: bool = False) -> bool:
        """zero_grad, backward (scaled under fp16), gradients averaged over ranks, step.

        Under ``nan_policy: skip`` a non-finite loss (on any rank) skips the step; returns whether it stepped."""
        if self.nan_policy == "skip" and dist.any_rank(not bool(torch.isfinite(loss.detach()).all())):
            self._skipped_in_a_row += 1
            return False
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=False):  # backward takes the forward pass's dtypes
            self.scaler.scale(loss).backward(retain_graph=retain_graph)
        self.average_gradients(optimizer)
        self.scaler.step(optimizer)
        self.scaler.update()
        return True

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
        if self.config.get("sync_batchnorm"):
            if dist.world_size() > 1 and self.device.type == "cpu":
                raise ConfigError("sync_batchnorm: true needs GPUs (torch's SyncBatchNorm has no CPU kernel); "
                                  "set sync_batchnorm: false for runs on CPUs")
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        options = self.config.get("compile")
        if options:
            model.compile(**({} if options is True else dict(options)))  # in place: state_dict keys unchanged
        return model

    def modules(self) -> list[torch.nn.Module]:
        return [m for m in self.stateful_attributes().values() if isinstance(m, torch.nn.Module)]

    # --- state ---------------------------------------------------------------------------------------------
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
            ckpt.prune(self.checkpoint_dir, self.config.get("ckpt_keep", 3))
            self._write_status("running")
        dist.barrier()
        return path

    # --- training ------------------------------------------------------------------------------------------
    def batch_size(self, train: bool) -> int:
        size = self.config.get("batch_size", 32) if train else (self.config.get("eval_batch_size")
                                                                 or self.config.get("batch_size", 32))
        return int(size)

    def make_loader(self, dataset, train: bool):
        limit = self.config.get("eval_max_batches")
        return make_loader(dataset, self.batch_size(train), shuffle=train, seed=int(self.config.get("seed", 0)),
                           drop_last=bool(self.config.get("drop_last", True)) and train,
                           num_workers=int(self.config.get("num_workers", 0)),
                           pin_memory=self.device.type == "cuda", rank=dist.rank(), world_size=dist.world_size(),
                           pad=train, limit=None if train or limit is None else int(limit) * self.batch_size(False))

    def synchronise_buffers(self) -> None:
        for module in self.modules():
            dist.average_buffers_(module)

    def to_device(self, batch: Mapping) -> dict:
        if self._numpy_batches:
            return compat.numpy_batch(batch)
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def num_training_steps(self) -> int:
        """How many steps this run will train in all (for learning-rate schedules built in ``__init__``)."""
        return self.total_steps(len(epoch_sampler(self.make_loader(self.datasets["train"], train=True))))

    def total_steps(self, steps_per_epoch: int) -> int:
        """``num_steps``, or the steps left until ``num_epochs`` counted from where the run stands."""
        if self.config.get("num_steps"):
            return int(self.config["num_steps"])
        done = self.epoch * steps_per_epoch + self.batch_in_epoch
        return self.global_step + int(self.config.get("num_epochs", 1)) * steps_per_epoch - done

    def fit(self) -> None:
        if "train" not in self.datasets:
            raise ValueError("training needs datasets/train in the config")
        loader = self.make_loader(self.datasets["train"], train=True)
        sampler = epoch_sampler(loader)
        steps_per_epoch = len(sampler)
        total = self.total_steps(steps_per_epoch)
        self._write_status("running")
        if dist.is_main_process():
            ckpt.remove_stale_temporaries(self.checkpoint_dir)
            self.logger.forget_after(self.global_step)
        for module in self.modules():
            dist.broadcast_module_(module)
        bar = tqdm(total=total, initial=self.global_step, desc="train", disable=not dist.is_main_process(),
                   dynamic_ncols=True)
        last_saved = last_evaluated = None
        closed_after_save = False
        with contextlib.closing(bar), self._deferred_interrupts():  # closed on errors too: messages start a line
            # an epoch whose batches are all done but which was saved before it was closed (see below) is closed
            # first, with its evaluation
            while (self.global_step < total or self.batch_in_epoch >= steps_per_epoch) and not self._stop_requested:
                sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
                bar.set_postfix(epoch=self.epoch)
                self.model.train()
                for batch in loader:
                    self.run_step(batch)
                    bar.update(1)
                    if self.config.get("ckpt_freq") and self.global_step % int(self.config["ckpt_freq"]) == 0:
                        last_saved, closed_after_save = self.save_checkpoint(), False
                    if self.global_step >= total or self.stop_requested():
                        break
                if self.batch_in_epoch >= steps_per_epoch:
                    evaluate = (self.epoch + 1) % int(self.config.get("eval_freq", 1)) == 0
                    if evaluate and (last_saved is None or ckpt.checkpoint_step(last_saved) != self.global_step):
                        # saved before the epoch is closed: resuming from it closes the epoch and evaluates
                        # again, so an evaluation that fails loses no training
                        last_saved = self.save_checkpoint()
                    # a checkpoint of this step, if any, predates the close: the hooks and evaluation below may
                    # change state (a scheduler's step, fitted buffers), so the final step is saved again
                    closed_after_save = last_saved is not None and ckpt.checkpoint_step(last_saved) == self.global_step
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    compat.run_hooks(self, "after_epoch")
                    if evaluate:
                        self.select_model(self.evaluate_all(), last_saved)
                        last_evaluated = self.global_step
            if self.global_step >= total and last_evaluated != self.global_step:
                if last_saved is None or ckpt.checkpoint_step(last_saved) != self.global_step:
                    last_saved = self.save_checkpoint()  # before the final evaluation, for the same reason
                self.select_model(self.evaluate_all(), last_saved)
            if last_saved is None or ckpt.checkpoint_step(last_saved) != self.global_step or closed_after_save:
                last_saved = self.save_checkpoint()
                if self.best is not None and self.best.get("step") == self.global_step:
                    self.select_model({}, last_saved)  # the kept best is this step: keep its closed state too
        status = "stopped" if self._stop_requested and self.global_step < total else "finished"
        self._write_status(status)
        self.logger.close()

    def run_step(self, batch: Mapping) -> None:
        batch = self.to_device(batch)
        ops = self.step_op(self.model, **batch)
        compat.run_hooks(self, "before_step", batch=batch, ops=ops)
        skipped_before = self._skipped_in_a_row
        result = ops["train_op"]()
        self.global_step += 1
        self.batch_in_epoch += 1
        if self._skipped_in_a_row > skipped_before:
            self.note_skipped_step()
        else:
            self._skipped_in_a_row = 0
            self.check_finite(dist.average_scalars(_scalars_of(result)), "train_op")
        log_freq = int(self.config.get("log_freq", 100))
        if "log_op" in ops and (self.global_step % log_freq == 0 or self.global_step == 1):
            self.log(ops["log_op"]() or {})
        compat.run_hooks(self, "after_step", step=self.global_step - 1)

    def check_finite(self, scalars: Mapping[str, float], where: str) -> None:
        for name, number in scalars.items():
            if not math.isfinite(number):
                self.stop_on_non_finite(f"{where} returned {name} = {number} at step {self.global_step}")

    def note_skipped_step(self) -> None:
        self.skipped_steps += 1
        tqdm.write(f"step {self.global_step}: non-finite loss, batch skipped (nan_policy: skip; "
                   f"{self.skipped_steps} skipped so far)", file=sys.stderr)
        if self._skipped_in_a_row > MAX_SKIPPED_IN_A_ROW:
            self.stop_on_non_finite(f"{self._skipped_in_a_row} batches in a row up to step {self.global_step} had "
                                    f"a non-finite loss")

    def stop_on_non_finite(self, what: str) -> None:
        last = ckpt.latest_checkpoint(self.checkpoint_dir)
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        self._write_status("failed", reason=what)
        raise NonFiniteLossError(
            f"{what}; training stopped and this state was not saved ({kept}). Lower the learning rate, check the "
            f"inputs, or set nan_policy: skip, then resume with `edflow -p {self.root} -t`.")

    def log(self, logs: Mapping) -> None:
        scalars = dist.average_scalars(_scalars_of(logs.get("scalars", {})))
        if self.nan_policy == "stop":
            self.check_finite(scalars, "log_op")
        self.logger.scalars({f"train/{k}": v for k, v in scalars.items()}, self.global_step, epoch=self.epoch)
        folder = os.path.join(self.root, "train", "log_op")
        self.logger.images(logs.get("images", {}), self.global_step, folder)
        self.logger.figures(logs.get("figures", {}), self.global_step, folder)

    def stop_requested(self) -> bool:
        """A signal seen by any rank stops every rank at the same step."""
        if dist.world_size() > 1:
            self._stop_requested = dist.any_rank(self._stop_requested)
        return self._stop_requested

    # --- evaluation ----------------------------------------------------------------------------------------
    def eval_splits(self) -> list[str]:
        return [name for name in self.datasets if name != "train"]

    def evaluate_all(self) -> dict:
        """eval_op over every evaluation dataset, then the callbacks; results land in eval/<ts>/<step>/.

        Evaluation leaves the RNG states as it found them, so when and how often a run evaluates never changes
        its training."""
        results = {}
        failure = None
        saved_rng = ckpt.rng_state()
        self.synchronise_buffers()
        try:
            for split in self.eval_splits():
                results.update(self.evaluate(split))
        except EvaluationError as error:  # raised on rank 0 only: every rank stops with it
            failure = error
        finally:
            ckpt.set_rng_state(saved_rng)
        message = dist.broadcast_object(str(failure) if failure else None)
        if message:
            raise failure if failure else EvaluationError(message)
        if dist.is_main_process() and results:
            folder = os.path.join(self.root, "eval", self._session, str(self.global_step))
            dump_yaml({"step": self.global_step, "epoch": self.epoch, **results}, os.path.join(folder, "results.yaml"))
            self.logger.scalars(results, self.global_step, epoch=self.epoch)
        return dist.broadcast_object(results)

    def collect_outputs(self, split: str) -> tuple[dict, dict]:
        """Per-example outputs of eval_op (arrays with a batch axis) and the batch means of its 0-d outputs."""
        loader = self.make_loader(self.datasets[split], train=False)
        self.model.eval()
        rows: dict[str, list] = {}
        means: dict[str, list] = {}
        sizes: list[int] = []
        with torch.no_grad():
            for batch in tqdm(loader, desc=f"eval {split}", leave=False, disable=not dist.is_main_process()):
                sizes.append(_batch_length(batch))
                outputs = self.step_op(self.model, **self.to_device(batch)).get("eval_op", lambda: {})() or {}
                for key, value in _flatten_outputs(outputs).items():
                    array = _to_numpy(value)
                    (means if array.ndim == 0 else rows).setdefault(key, []).append(array)
        self.model.train()
        positions = epoch_sampler(loader).order()[:sum(sizes)].numpy()
        gathered = dist.all_gather_objects((rows, means, sizes, positions))
        return _merge_rank_outputs(gathered)

    def evaluate(self, split: str) -> dict:
        rows, means = self.collect_outputs(split)
        if not dist.is_main_process():
            return {}
        results = {f"{split}/{k}": v for k, v in means.items()}
        root = os.path.join(self.root, "eval", self._session, str(self.global_step), split)
        safe_io.makedirs(root)
        data_out = ExampleDataset(rows)
        callbacks = self.get_callbacks()
        for name, callback in tqdm(callbacks.items(), desc=f"callbacks {split}", leave=False,
                                   disable=not callbacks):
            before = _png_files(root) if self.logger.tracking else {}
            try:
                values = callback(root, self.datasets[split], data_out, self.config)
                self.log_evaluation_pictures(values, root, split, before)
            except (KeyboardInterrupt, SystemExit, safe_io.WriteError):
                raise
            except Exception as error:
                raise EvaluationError(f"evaluation callback {name!r} failed at step {self.global_step} on "
                                      f"{split}: {type(error).__name__}: {' '.join(str(error).split())}") from error
            for key, value in compat.callback_scalars(values).items():
                results[f"{split}/{key}"] = to_float(value)
        return results

    def log_evaluation_pictures(self, values, root: str, split: str, before: Mapping[str, float]) -> None:
        """What a callback drew, to TensorBoard and W&B as ``eval/<split>/<name>``: the PNGs it wrote into its
        folder (new or rewritten since ``before``), and the ``images`` and ``figures`` it returned."""
        prefix = f"eval/{split}/"
        if self.logger.tracking:
            written = {path: mtime for path, mtime in _png_files(root).items() if before.get(path) != mtime}
            self.logger.image_files({prefix + os.path.splitext(os.path.relpath(path, root))[0].replace(os.sep, "/"):
                                     path for path in sorted(written)}, self.global_step)
        if isinstance(values, Mapping):
            if isinstance(values.get("images"), Mapping):
                self.logger.images(values["images"], self.global_step, root, prefix=prefix)
            if isinstance(values.get("figures"), Mapping):
                self.logger.figures(values["figures"], self.global_step, root, prefix=prefix)

    def select_model(self, results: Mapping, checkpoint_path: str | None) -> None:
        """Keep ``best.ckpt`` at the evaluation that is best by ``model_selection: {metric, mode}``."""
        selection = self.config.get("model_selection")
        if not selection or not dist.is_main_process():
            return
        metric, mode = selection["metric"], selection.get("mode", "max")
        if metric in results:
            value = results[metric]
            better = self.best is None or (value > self.best["value"] if mode == "max" else value < self.best["value"])
            if better:
                self.best = {"metric": metric, "value": value, "step": self.global_step, "epoch": self.epoch,
                             "results": dict(results)}
        elif results and metric not in results:
            raise KeyError(f"model_selection/metric {metric!r} is not among the evaluation results "
                           f"{sorted(results)}; pick one of them")
        if self.best and checkpoint_path and self.best["step"] == ckpt.checkpoint_step(checkpoint_path):
            ckpt.copy(checkpoint_path, os.path.join(self.checkpoint_dir, "best.ckpt"))
            dump_yaml(to_plain(self.best), os.path.join(self.root, "train", "best.yaml"))

    # --- bookkeeping ---------------------------------------------------------------------------------------
    def _new_session_name(self) -> str:
        """eval/<ts>: a new folder for each start, even for two starts within one second."""
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
        name, n = stamp, 1
        while os.path.exists(os.path.join(self.root, "eval", name)):
            name, n = f"{stamp}_{n}", n + 1
        return name

    def _write_status(self, status: str, **extra) -> None:
        if dist.is_main_process():
            dump_yaml({"status": status, "step": self.global_step, "epoch": self.epoch, "pid": os.getpid(),
                       "host": socket.gethostname(), "time": time.time(), **extra}, os.path.join(self.root, "status.yaml"))

    @contextlib.contextmanager
    def _deferred_interrupts(self):
        """Ctrl-C or SIGTERM stop the run at the next step boundary, so the state saved is a consistent one."""
        def request_stop(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            tqdm.write(f"signal {signum}: stopping after this step and saving a checkpoint (again to abort)")

        if threading_is_main():
            previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        else:
            previous = {}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _scalars_of(value) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if _is_scalar(v):
                out[str(k)] = to_float(v)
        return out
    if _is_scalar(value):
        return {"loss": to_float(value)}
    return {}


def _is_scalar(value) -> bool:
    if torch.is_tensor(value):
        return value.numel() == 1
    if isinstance(value, np.ndarray):  # edflow 0.4 iterators log numpy scalars
        return value.size == 1
    return isinstance(value, (int, float, np.floating, np.integer))


def _png_files(folder: str) -> dict[str, float]:
    """The PNG files under ``folder`` with their modification times."""
    found = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(".png"):
                path = os.path.join(directory, name)
                with contextlib.suppress(OSError):
                    found[path] = os.stat(path).st_mtime_ns
    return found


def epoch_sampler(loader):
    """The loader's EpochBatchSampler (a sampler of whole batches for in-memory datasets)."""
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler


def _batch_length(batch: Mapping) -> int:
    for value in batch.values():
        if torch.is_tensor(value) or isinstance(value, np.ndarray):
            if value.ndim:
                return len(value)
        elif isinstance(value, (list, tuple)):
            return len(value)
    raise ValueError("a batch needs at least one tensor, array or list with a batch axis")


def _merge_rank_outputs(gathered: list) -> tuple[dict, dict]:
    """Per-example rows back in dataset order, and 0-d outputs as means weighted by batch size, so evaluating on
    N ranks gives the numbers of one process."""
    order = np.argsort(np.concatenate([p for *_, p in gathered]), kind="stable")
    rows = {}
    for key in dict.fromkeys(k for r, *_ in gathered for k in r):
        array = np.concatenate([a for r, *_ in gathered for a in r.get(key, [])])
        rows[key] = array[order] if len(array) == len(order) else array
    means = {}
    for key in dict.fromkeys(k for _, m, *_ in gathered for k in m):
        values = [v for _, m, *_ in gathered for v in m.get(key, [])]
        weights = [n for _, m, s, _ in gathered for n in s[:len(m.get(key, []))]]
        means[key] = float(np.average(values, weights=weights))
    return rows, means


def _flatten_outputs(outputs: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in outputs.items():
        if isinstance(value, Mapping):
            flat.update(_flatten_outputs(value, "" if key == "labels" else f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _to_numpy(value) -> np.ndarray:
    if torch.is_tensor(value):
        value = value.detach().float().cpu() if value.is_floating_point() else value.detach().cpu()
        return value.numpy()
    return np.asarray(value)


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
