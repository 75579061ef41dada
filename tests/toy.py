"""A tiny regression problem that exercises the runner: data, model, iterator, callback; and helpers that run it."""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from edflow import TemplateIterator
from edflow import checkpoint as ckpt
from edflow.config import section
from edflow.data.dataset import ArrayDataset, DatasetMixin


def make_arrays(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=generator)
    return {"x": x, "y": y}


class ToyTrain(ArrayDataset):
    def __init__(self, config=None):
        super().__init__(make_arrays(64, seed=1))

    def process_batch(self, batch):  # random per-batch processing, as dequantisation noise would be
        return {**batch, "x": batch["x"] + 0.01 * torch.randn_like(batch["x"])}


class ToyPlain(ArrayDataset):
    """The training data without per-batch noise: the same batches give the same gradients on any number of ranks."""

    def __init__(self, config=None):
        super().__init__(make_arrays(64, seed=1))


class ToyValidation(ArrayDataset):
    def __init__(self, config=None):
        super().__init__(make_arrays(32, seed=2))


class ToyPerExample(DatasetMixin):
    """The same data served one example at a time, through DataLoader's collation."""

    def __init__(self, config=None):
        self.arrays = {k: v.numpy() for k, v in make_arrays(64, seed=1).items()}

    def get_example(self, i):
        return {k: v[i] for k, v in self.arrays.items()}

    def __len__(self):
        return 64


class Model(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        options = section(config, "Model", {"hidden": 8, "dropout": 0.1, "batchnorm": False})
        norm = torch.nn.BatchNorm1d(options["hidden"]) if options["batchnorm"] else torch.nn.Identity()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, options["hidden"]), norm, torch.nn.ReLU(),
                                       torch.nn.Dropout(options["dropout"]), torch.nn.Linear(options["hidden"], 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


class Trainer(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = section(self.config, "Trainer", {"lr": 1e-2, "explode_at": None, "explode_steps": []})
        self.explode_at, self.explode_steps = options["explode_at"], options["explode_steps"]
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=options["lr"])
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=5, gamma=0.5)
        self.losses = []
        self.trained_model = self.wrap_ddp(self.model)  # the model itself unless run under torchrun

    def step_op(self, model, x, y, **batch):
        def train_op():
            with self.autocast():
                prediction = self.trained_model(x)
            loss = F.mse_loss(prediction.float(), y)
            step = self.get_global_step()
            if self.explode_at is not None and step >= self.explode_at or step in self.explode_steps:
                loss = loss * float("nan")
            if self.optimize(loss, self.optimizer):
                self.scheduler.step()
            self.losses.append(loss.item())
            return {"mse": loss}

        def log_op():
            return {"scalars": {"loss": F.mse_loss(model(x), y)}, "images": {"inputs": x.view(-1, 1, 2, 2)}}

        def eval_op():
            return {"prediction": model(x), "target": y, "loss": F.mse_loss(model(x), y)}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}


def mse_callback(root, data_in, data_out, config):
    error = data_out.labels["prediction"] - data_out.labels["target"]
    return {"mse": float(np.mean(error ** 2)), "n": len(data_out)}


HERE = os.path.dirname(os.path.abspath(__file__))
TOY = os.path.join(HERE, "toy.yaml")
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.path.dirname(HERE)}", "OMP_NUM_THREADS": "1"}
TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")


def train(log_root, *extra):
    from edflow.main import run

    return run(["-b", TOY, "-t", "--log-root", str(log_root), *extra])


def metrics(root):
    with open(os.path.join(root, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(root):
    return {r["step"]: r["train/loss"] for r in metrics(root) if "train/loss" in r}


def final_weights(root):
    path = ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))
    return ckpt.load(path)["state"]["model"]


def failing_callback(root, data_in, data_out, config):
    """Raises at the evaluation of step ``fail_eval_at`` (a config key the tests add), as a buggy metric would."""
    if config.get("fail_eval_at") is not None and int(os.path.basename(os.path.dirname(root))) >= config["fail_eval_at"]:
        raise ZeroDivisionError("a bug in the metric")
    return {}
