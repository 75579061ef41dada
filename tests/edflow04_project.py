"""A tiny project written the way edflow 0.4 asked for: the iterator saves and restores itself with
torch.save/torch.load, datasets are DatasetMixins with labels (one wraps another as ``self.data``), step ops get
numpy batches, a Hook runs every ``hook_freq`` steps and a callback returns edflow's ``{"scalars": ...}``."""
import os
import time

import numpy as np
import torch

import edflow
from edflow import TemplateIterator
from edflow.data.dataset import DatasetMixin, PRNGMixin, SubDataset
from edflow.hooks.hook import Hook
from edflow.util import retrieve

HANG_ENV = "EDFLOW04_HANG_IN_SAVE_AT"  # a step: save writes half a file there, leaves a marker and waits


class Points(DatasetMixin, PRNGMixin):
    def __init__(self, config):
        rng = np.random.RandomState(0)
        self.x = rng.randn(48, 2).astype(np.float32)
        self.labels = {"class": (self.x[:, 0] + self.x[:, 1] > 0).astype(np.int64)}

    def get_example(self, i):
        return {"x": self.x[i] + np.float32(0.01) * self.prng.randn(2).astype(np.float32)}

    def __len__(self):
        return len(self.x)


class EvenPoints(DatasetMixin):
    """Length, examples and labels come from ``self.data``, as edflow 0.4's DatasetMixin provided."""

    def __init__(self, config):
        self.data = SubDataset(Points(config), np.arange(0, 48, 2))


class Model(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.net = torch.nn.Linear(2, retrieve(config, "n_classes", default=2))

    def forward(self, x):
        return self.net(x)


class StepRecorder(Hook):
    def __init__(self, path):
        self.path = path

    def after_step(self, step, last_results):
        with open(self.path, "a") as f:
            f.write(f"{step} {last_results['global_step']}\n")


class Trainer(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=retrieve(self.config, "lr", default=0.1))
        self.hooks.append(StepRecorder(os.path.join(self.root, "hook_steps.txt")))
        self.logger.info("num_steps: {}, hook_freq: {}".format(self.config["num_steps"], self.hook_freq))

    def save(self, checkpoint_path):
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if os.environ.get(HANG_ENV) == str(self.get_global_step()):
            with open(checkpoint_path, "wb") as f:
                f.write(b"PK\x03\x04 half a checkpoint")
            with open(os.path.join(self.root, "inside_save"), "w") as f:
                f.write(checkpoint_path)
            time.sleep(120)
        torch.save(state, checkpoint_path)

    def restore(self, checkpoint_path):
        state = torch.load(checkpoint_path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def step_op(self, model, x, **kwargs):
        if not isinstance(x, np.ndarray) or not isinstance(kwargs["class"], np.ndarray):
            raise TypeError(f"edflow 0.4 iterators get numpy batches, got {type(x).__name__}")
        inputs = torch.tensor(x)
        labels = torch.tensor(kwargs["class"])
        logits = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels)

        def train_op():
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

        def log_op():
            return {"scalars": {"loss": loss.detach().numpy(), "step": self.get_global_step()}}

        def eval_op():
            return {"labels": {"logits": logits.detach().numpy()}}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}

    @property
    def callbacks(self):
        return {"eval_op": {"acc": accuracy_callback}}


def accuracy_callback(root, data_in, data_out, config):
    prediction = data_out.labels["logits"].argmax(1)
    accuracy = float((prediction == data_in.labels["class"][:len(prediction)]).mean())
    edflow.get_logger("accuracy_callback").info("accuracy: {}".format(accuracy))
    return {"scalars": {"accuracy": accuracy}}
