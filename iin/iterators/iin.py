"""Stage-2 trainers: an invertible transformer T on the codes z = first_stage.encode(x).sample() of a frozen first
stage (``first_stage:`` in the config).

``Trainer``: unsupervised (``iin.losses.iin.Loss``), batches with ``image``.
``FactorTrainer``: disentangling (``iin.losses.iin.FactorLoss``), batches of pairs ``factor``, ``example1``,
``example2``; both codes go through T in one pass.
"""
from __future__ import annotations

import torch

from edflow.first_stage import FirstStageError
from edflow.util import get_obj_from_str
from iin import callbacks
from iin.iterators.base import Iterator


class Stages:
    """A frozen first stage and the transformer on its codes (attributes ``first_stage``, ``model``, ``device``):
    codes, decoding and the images made from them. The trainers mix it in; ``FrozenStages`` holds loaded weights
    (iin.scripts.figures), so the grids are drawn by the same code in a run and from committed weights."""

    @property
    def can_decode(self) -> bool:
        return callable(getattr(self.first_stage, "decode", None))

    @torch.no_grad()
    def codes(self, image: torch.Tensor, sample: bool = True) -> torch.Tensor:
        posterior = self.first_stage.encode(image)
        return (posterior.sample() if sample else posterior.mode()).flatten(1)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.first_stage.decode(z)

    @torch.no_grad()
    def samples(self, model, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Dec(T^-1(eps)) for n draws of eps ~ N(0, I)."""
        return self.decode(model.sample(n, generator))

    def generated(self, model, z: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Reconstructions Dec(T^-1(T(z))) and samples Dec(T^-1(eps)), one per code, when the first stage decodes."""
        if not self.can_decode:
            return {}
        out, _ = model(z)
        return {"reconstructions": self.decode(model.reverse(out)),
                "samples": self.samples(model, z.shape[0], generator)}


class FrozenStages(Stages):
    def __init__(self, *, first_stage, model, device="cpu"):
        self.first_stage, self.model, self.device = first_stage, model, torch.device(device)


class Trainer(Stages, Iterator):
    default_loss = "iin.losses.iin.Loss"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.first_stage is None:
            raise FirstStageError("an IIN trains on a frozen first stage: add `first_stage: {run: <its run name or "
                                  "folder>}` to the config (e.g. first_stage: {run: mnist_ae})")
        check_code_size(self.first_stage, self.model)
        self.first_stage.to(self.device).eval()
        self.loss = get_obj_from_str(self.config.get("loss") or self.default_loss)(self.config).to(self.device)
        self.optimizer = self.adam(self.model.parameters())
        callbacks.check_fid_classifier(self.config)

    def get_callbacks(self) -> dict:
        return {**super().get_callbacks(), **callbacks.generative_callbacks(self)}

    def step_op(self, model, image, **batch):
        def train_op():
            z = self.codes(image)
            with self.autocast():
                out, logdet = model(z)
                loss, logs = self.loss(out, logdet)
            logs["lr"] = self.update_lr(self.optimizer)
            self.optimize(loss, self.optimizer)
            return logs

        def log_op():
            with torch.no_grad():
                z = self.codes(image, sample=False)
                images = {"inputs": image, **self.generated(model, z)}
                out, logdet = model(z)
                _, logs = self.loss(out, logdet)
            return {"scalars": logs, "images": images}

        def eval_op():
            z = self.codes(image, sample=False)
            out, logdet = model(z)
            _, logs = self.loss(out, logdet)
            return {**self.generated(model, z, self.eval_generator(batch.get("index_"))), "loss": logs["loss"]}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}


class FactorTrainer(Trainer):
    default_loss = "iin.losses.iin.FactorLoss"

    def get_callbacks(self) -> dict:
        return {**super().get_callbacks(), **callbacks.factor_callbacks(self)}

    def step_op(self, model, factor, example1, example2, **batch):
        x1, x2 = example1["image"], example2["image"]
        n = x1.shape[0]

        def losses(z1, z2):
            out, logdet = model(torch.cat([z1, z2]))  # one pass: ActNorm's first batch sees both halves
            return self.loss(out[:n], logdet[:n], out[n:], logdet[n:], factor, model.factor_sizes)

        def train_op():
            with self.autocast():
                loss, logs = losses(self.codes(x1), self.codes(x2))
            logs["lr"] = self.update_lr(self.optimizer)
            self.optimize(loss, self.optimizer)
            return logs

        def log_op():
            with torch.no_grad():
                z1, z2 = self.codes(x1, sample=False), self.codes(x2, sample=False)
                _, logs = losses(z1, z2)
                images = {"inputs": x1, "partners": x2, **self.generated(model, z1)}
                if self.can_decode:
                    images.update({f"swap_factor{k}": callbacks.swap_grid(self, model, x1[:8], x2[:8], k)
                                   for k in range(model.n_factors)})
            return {"scalars": logs, "images": images}

        def eval_op():
            z1, z2 = self.codes(x1, sample=False), self.codes(x2, sample=False)
            _, logs = losses(z1, z2)
            return {**self.generated(model, z1, self.eval_generator(batch.get("index_"))),
                    "factor": factor, "z1": z1, "z2": z2, "loss": logs["loss"]}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}


def check_code_size(first_stage, transformer) -> None:
    stage_size = getattr(first_stage, "z_dim", None)
    if stage_size is not None and stage_size != transformer.in_channel:
        raise ValueError(f"the first stage's codes have {stage_size} dims but Transformer/in_channel is "
                         f"{transformer.in_channel}; set Transformer/in_channel: {stage_size}")
