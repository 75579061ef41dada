"""TemplateIterator's evaluation: ``eval_op`` over every evaluation split (gathered over ranks in dataset order), the
callbacks, the pictures they draw, and model selection (``best.ckpt``). A mixin of ``TemplateIterator``
(edflow/iterators/template_iterator.py), which sets the attributes used here and the loaders."""
from __future__ import annotations

import contextlib
import os
from typing import Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import compat
from edflow import distributed as dist
from edflow import safe_io
from edflow.config import dump_yaml, to_plain
from edflow.data.dataset import ExampleDataset
from edflow.iterators.loop import epoch_sampler
from edflow.logger import to_float
from edflow.runner_keys import runner_value


class EvaluationError(RuntimeError):
    """An evaluation callback raised; the message names it and the step, the original error is ``__cause__``."""


class Evaluation:
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
        selection = runner_value(self.config, "model_selection")
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
