"""Stage-1 trainer: the autoencoder against ``loss:`` (``iin.losses.ae.LossPND``), its discriminator after it."""
from __future__ import annotations

import torch

from edflow.util import get_obj_from_str
from iin import callbacks
from iin.iterators.base import Iterator


class Trainer(Iterator):
    """Batches need ``image``. eval_op gives per example ``reconstructions`` (decoded posterior mean) and ``samples``
    (decoded prior samples, one per image) for the FID and grid callbacks."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss = get_obj_from_str(self.config.get("loss") or "iin.losses.ae.LossPND")(self.config).to(self.device)
        self.optimizer = self.adam(list(self.model.parameters()) + [self.loss.logvar])
        self.d_optimizer = self.adam(self.loss.discriminator.parameters(), lr_factor=self.loss.d_lr_factor)
        callbacks.check_fid_classifier(self.config)

    def get_callbacks(self) -> dict:
        return {**super().get_callbacks(), **callbacks.generative_callbacks(self)}

    def step_op(self, model, image, **batch):
        step = self.get_global_step()

        def forward():
            with self.autocast():
                return model(image)

        def train_op():
            xrec, posterior = forward()
            with self.autocast():
                loss, logs = self.loss.generator_loss(image, xrec, posterior, model.get_last_layer(), step)
            logs["lr"] = self.update_lr(self.optimizer, self.d_optimizer)
            self.optimize(loss, self.optimizer)
            if self.loss.discriminator_active(step):
                with self.autocast():
                    d_loss, d_logs = self.loss.discriminator_loss(image, xrec)
                self.optimize(d_loss, self.d_optimizer)
                logs.update(d_logs)
            self._last_logs = logs
            return logs

        def log_op():
            with torch.no_grad():
                xrec = model.decode(model.encode(image).mode())
                samples = model.decode(model.sample_prior(image.shape[0]))
            return {"scalars": getattr(self, "_last_logs", {}),
                    "images": {"inputs": image, "reconstructions": xrec, "samples": samples}}

        def eval_op():
            posterior = model.encode(image)
            xrec = model.decode(posterior.mode())
            samples = model.decode(model.sample_prior(image.shape[0], self.eval_generator(batch.get("index_"))))
            return {"reconstructions": xrec, "samples": samples,
                    "rec_loss": (image - xrec).abs().mean(), "kl": posterior.kl().mean()}

        return {"train_op": train_op, "log_op": log_op, "eval_op": eval_op}
