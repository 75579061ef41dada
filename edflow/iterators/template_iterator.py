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
import shutil
import signal
import socket
import time
from typing import Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import distributed as dist
from edflow.config import dump_yaml, to_plain
from edflow.data.dataset import ExampleDataset
from edflow.data.loader import make_loader
from edflow.logger import Logger, to_float
from edflow.util import get_obj_from_str, retrieve


class NonFiniteLossError(FloatingPointError):
    pass


class TemplateIterator:
    not_saved = ("config", "datasets", "logger", "first_stage", "first_stages", "hooks")

    def __init__(self, config: dict, root: str, model: torch.nn.Module, datasets: Mapping | None = None,
                 first_stage=None, logger: Logger | None = None, **kwargs):
        self.config = config
        self.root = root
        self.device = torch.device(config.get("device", "cpu"))
        self.model = model.to(self.device) if isinstance(model, torch.nn.Module) else model
        self.datasets = dict(datasets or {})
        self.first_stages = first_stage if isinstance(first_stage, Mapping) else None
        self.first_stage = None if self.first_stages is not None else first_stage
        self.logger = logger or Logger(root, config, enabled=dist.is_main_process())
        self.hooks: list = []
        self.amp = config.get("amp")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be one of null, bf16, fp16; got {self.amp!r}")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")
        self.global_step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: dict | None = None
        self._stop_requested = False
        self._session = self._new_session_name()

    # --- what a method implements -------------------------------------------------------------------------
    def step_op(self, model, **batch) -> dict:
        raise NotImplementedError("a TemplateIterator subclass implements step_op(model, **batch)")

    def get_callbacks(self) -> dict[str, Callable]:
        """Evaluation callbacks ``fn(root, data_in, data_out, config) -> dict``; by default those named in
        ``eval_pipeline/callbacks`` (a mapping name -> dotted path)."""
        named = retrieve(self.config, "eval_pipeline/callbacks", default={}) or {}
        return {name: get_obj_from_str(path) if isinstance(path, str) else path for name, path in named.items()}

    # --- helpers for step ops ------------------------------------------------------------------------------
    def get_global_step(self) -> int:
        return self.global_step

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, retain_graph: bool = False) -> None:
        """zero_grad, backward (scaled under fp16) and step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward(retain_graph=retain_graph)
        self.scaler.step(optimizer)
        self.scaler.update()

    def wrap_ddp(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module wrapped for DistributedDataParallel when running under torchrun, else itself."""
        if dist.world_size() == 1 or not any(p.requires_grad for p in module.parameters()):
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    # --- state ---------------------------------------------------------------------------------------------
    def stateful_attributes(self) -> dict:
        frozen = set(map(id, self.first_stages.values())) if self.first_stages else {id(self.first_stage)}
        return {name: value for name, value in vars(self).items()
                if name not in self.not_saved and not name.startswith("_") and id(value) not in frozen
                and not isinstance(value, torch.nn.parallel.DistributedDataParallel)  # its module is saved
                and callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None))}

    def save(self, path: str) -> None:
        state = {name: obj.state_dict() for name, obj in self.stateful_attributes().items()}
        ckpt.atomic_save({"state": state, "global_step": self.global_step, "epoch": self.epoch,
                          "batch_in_epoch": self.batch_in_epoch, "best": self.best, "rng": ckpt.rng_state()}, path)

    def restore(self, path: str) -> None:
        checkpoint = ckpt.load(path, map_location=self.device)
        attributes = self.stateful_attributes()
        missing = set(checkpoint["state"]) - set(attributes)
        if missing:
            raise KeyError(f"checkpoint {path!r} holds state for {sorted(missing)} which this iterator lacks")
        for name, state in checkpoint["state"].items():
            attributes[name].load_state_dict(state)
        self.global_step = checkpoint.get("global_step", 0)
        self.epoch = checkpoint.get("epoch", 0)
        self.batch_in_epoch = checkpoint.get("batch_in_epoch", 0)
        self.best = checkpoint.get("best")
        if "rng" in checkpoint:
            ckpt.set_rng_state(checkpoint["rng"])

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.root, "train", "checkpoints")

    def save_checkpoint(self) -> str | None:
        path = os.path.join(self.checkpoint_dir, f"model-{self.global_step}.ckpt")
        if dist.is_main_process():
            self.save(path)
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
        return make_loader(dataset, self.batch_size(train), shuffle=train, seed=int(self.config.get("seed", 0)),
                           drop_last=bool(self.config.get("drop_last", True)) and train,
                           num_workers=int(self.config.get("num_workers", 0)),
                           pin_memory=self.device.type == "cuda", rank=dist.rank(), world_size=dist.world_size())

    def to_device(self, batch: Mapping) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    def num_training_steps(self) -> int:
        """How many steps this run will train in all (for learning-rate schedules built in ``__init__``)."""
        sampler = self.make_loader(self.datasets["train"], train=True)
        return self.total_steps(len(sampler.batch_sampler if sampler.batch_sampler is not None else sampler.sampler))

    def total_steps(self, steps_per_epoch: int) -> int:
        if self.config.get("num_steps"):
            return int(self.config["num_steps"])
        return int(self.config.get("num_epochs", 1)) * steps_per_epoch

    def fit(self) -> None:
        if "train" not in self.datasets:
            raise ValueError("training needs datasets/train in the config")
        loader = self.make_loader(self.datasets["train"], train=True)
        sampler = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
        steps_per_epoch = len(sampler)
        total = self.total_steps(steps_per_epoch)
        self._write_status("running")
        bar = tqdm(total=total, initial=self.global_step, desc="train", disable=not dist.is_main_process(),
                   dynamic_ncols=True)
        last_saved = last_evaluated = None
        with self._deferred_interrupts():
            while self.global_step < total and not self._stop_requested:
                sampler.set_epoch(self.epoch, start=self.batch_in_epoch)
                bar.set_postfix(epoch=self.epoch)
                self.model.train()
                for batch in loader:
                    self.run_step(batch)
                    bar.update(1)
                    if self.config.get("ckpt_freq") and self.global_step % int(self.config["ckpt_freq"]) == 0:
                        last_saved = self.save_checkpoint()
                    if self.global_step >= total or self._stop_requested:
                        break
                if self.batch_in_epoch >= steps_per_epoch:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    for hook in self.hooks:
                        getattr(hook, "after_epoch", lambda it: None)(self)
                    if self.epoch % int(self.config.get("eval_freq", 1)) == 0:
                        results = self.evaluate_all()
                        last_evaluated = self.global_step
                        last_saved = self.save_checkpoint()
                        self.select_model(results, last_saved)
            if self.global_step >= total and last_evaluated != self.global_step:
                self.select_model(self.evaluate_all(), None)
            if last_saved is None or ckpt.checkpoint_step(last_saved) != self.global_step:
                last_saved = self.save_checkpoint()
            if self.best is not None and self.best.get("step") == self.global_step:
                self.select_model({}, last_saved)
        bar.close()
        status = "stopped" if self._stop_requested and self.global_step < total else "finished"
        self._write_status(status)
        self.logger.close()

    def run_step(self, batch: Mapping) -> None:
        batch = self.to_device(batch)
        ops = self.step_op(self.model, **batch)
        result = ops["train_op"]()
        self.global_step += 1
        self.batch_in_epoch += 1
        self.check_finite(result, "train_op")
        log_freq = int(self.config.get("log_freq", 100))
        if "log_op" in ops and (self.global_step % log_freq == 0 or self.global_step == 1):
            self.log(ops["log_op"]() or {})
        for hook in self.hooks:
            getattr(hook, "after_step", lambda it: None)(self)

    def check_finite(self, value, where: str) -> None:
        for name, number in _scalars_of(value).items():
            if not math.isfinite(number):
                last = ckpt.latest_checkpoint(self.checkpoint_dir)
                kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
                self._write_status("failed", reason=f"{where} {name} = {number}")
                raise NonFiniteLossError(
                    f"{where} returned {name} = {number} at step {self.global_step}; training stopped and this "
                    f"state was not saved ({kept}). Lower the learning rate or check the inputs, then resume with "
                    f"`edflow -p {self.root} -t`.")

    def log(self, logs: Mapping) -> None:
        scalars = logs.get("scalars", {})
        self.check_finite(scalars, "log_op")
        self.logger.scalars({f"train/{k}": v for k, v in scalars.items()}, self.global_step, epoch=self.epoch)
        folder = os.path.join(self.root, "train", "log_op")
        self.logger.images(logs.get("images", {}), self.global_step, folder)
        self.logger.figures(logs.get("figures", {}), self.global_step, folder)

    # --- evaluation ----------------------------------------------------------------------------------------
    def eval_splits(self) -> list[str]:
        return [name for name in self.datasets if name != "train"]

    def evaluate_all(self) -> dict:
        """eval_op over every evaluation dataset, then the callbacks; results land in eval/<ts>/<step>/.

        Evaluation leaves the RNG states as it found them, so when and how often a run evaluates never changes
        its training."""
        results = {}
        saved_rng = ckpt.rng_state()
        try:
            for split in self.eval_splits():
                results.update(self.evaluate(split))
        finally:
            ckpt.set_rng_state(saved_rng)
        if dist.is_main_process() and results:
            folder = os.path.join(self.root, "eval", self._session, str(self.global_step))
            dump_yaml({"step": self.global_step, "epoch": self.epoch, **results}, os.path.join(folder, "results.yaml"))
            self.logger.scalars(results, self.global_step, epoch=self.epoch)
        return dist.broadcast_object(results)

    def collect_outputs(self, split: str) -> tuple[dict, dict]:
        """Per-example outputs of eval_op (arrays with a batch axis) and the batch means of its 0-d outputs."""
        loader = self.make_loader(self.datasets[split], train=False)
        limit = self.config.get("eval_max_batches")
        self.model.eval()
        rows: dict[str, list] = {}
        means: dict[str, list] = {}
        with torch.no_grad():
            for b, batch in enumerate(tqdm(loader, desc=f"eval {split}", leave=False,
                                           disable=not dist.is_main_process())):
                if limit is not None and b >= int(limit):
                    break
                outputs = self.step_op(self.model, **self.to_device(batch)).get("eval_op", lambda: {})() or {}
                for key, value in _flatten_outputs(outputs).items():
                    array = _to_numpy(value)
                    (means if array.ndim == 0 else rows).setdefault(key, []).append(array)
        self.model.train()
        gathered = dist.all_gather_objects((rows, means))
        rows = {k: np.concatenate([a for r, _ in gathered for a in r[k]]) for k in rows}
        means = {k: float(np.mean([a for _, m in gathered for a in m[k]])) for k in means}
        return rows, means

    def evaluate(self, split: str) -> dict:
        rows, means = self.collect_outputs(split)
        if not dist.is_main_process():
            return {}
        results = {f"{split}/{k}": v for k, v in means.items()}
        root = os.path.join(self.root, "eval", self._session, str(self.global_step), split)
        os.makedirs(root, exist_ok=True)
        data_out = ExampleDataset(rows)
        callbacks = self.get_callbacks()
        for name, callback in tqdm(callbacks.items(), desc=f"callbacks {split}", leave=False,
                                   disable=not callbacks):
            for key, value in (callback(root, self.datasets[split], data_out, self.config) or {}).items():
                results[f"{split}/{key}"] = to_float(value)
        return results

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
            best_path = os.path.join(self.checkpoint_dir, "best.ckpt")
            shutil.copyfile(checkpoint_path, best_path + ".tmp")
            os.replace(best_path + ".tmp", best_path)
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
            if torch.is_tensor(v) and v.numel() == 1 or isinstance(v, (int, float, np.floating)):
                out[str(k)] = to_float(v)
        return out
    if torch.is_tensor(value) and value.numel() == 1 or isinstance(value, (float, int, np.floating)):
        return {"loss": to_float(value)}
    return {}


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
