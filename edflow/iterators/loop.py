"""TemplateIterator's training loop: ``fit`` over epochs, ``run_step``, ``optimize``, logging, non-finite losses and
interrupts. A mixin of ``TemplateIterator`` (edflow/iterators/template_iterator.py), which sets the attributes used
here (``config``, ``model``, ``logger``, ``scaler``, ``nan_policy``, the counters) and the loaders."""
from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
from typing import Mapping

import torch
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import compat
from edflow import distributed as dist
from edflow.logger import scalars_of
from edflow.runner_keys import runner_value


class NonFiniteLossError(FloatingPointError):
    pass


MAX_SKIPPED_IN_A_ROW = 20  # under nan_policy: skip, more than this means the model itself is broken


class TrainingLoop:
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

    def num_training_steps(self) -> int:
        """How many steps this run will train in all (for learning-rate schedules built in ``__init__``)."""
        return self.total_steps(len(epoch_sampler(self.make_loader(self.datasets["train"], train=True))))

    def total_steps(self, steps_per_epoch: int) -> int:
        """``num_steps``, or the steps left until ``num_epochs`` counted from where the run stands."""
        if runner_value(self.config, "num_steps"):
            return int(runner_value(self.config, "num_steps"))
        done = self.epoch * steps_per_epoch + self.batch_in_epoch
        return self.global_step + int(runner_value(self.config, "num_epochs")) * steps_per_epoch - done

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
                    ckpt_freq = runner_value(self.config, "ckpt_freq")
                    if ckpt_freq and self.global_step % int(ckpt_freq) == 0:
                        last_saved, closed_after_save = self.save_checkpoint(), False
                    if self.global_step >= total or self.stop_requested():
                        break
                if self.batch_in_epoch >= steps_per_epoch:
                    evaluate = (self.epoch + 1) % int(runner_value(self.config, "eval_freq")) == 0
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
            self.check_finite(dist.average_scalars(scalars_of(result)), "train_op")
        log_freq = int(runner_value(self.config, "log_freq"))
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
        scalars = dist.average_scalars(scalars_of(logs.get("scalars", {})))
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
    return threading.current_thread() is threading.main_thread()


def epoch_sampler(loader):
    """The loader's EpochBatchSampler (a sampler of whole batches for in-memory datasets)."""
    return loader.batch_sampler if loader.batch_sampler is not None else loader.sampler

