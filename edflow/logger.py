"""Where scalars and images go: an append-only metrics.jsonl, PNG grids, TensorBoard and W&B when switched on."""
from __future__ import annotations

import io
import json
import math
import os
import time
from typing import Mapping

import numpy as np
import torch

from edflow import safe_io
from edflow.config import ConfigError


def to_float(value) -> float:
    if torch.is_tensor(value):
        value = value.detach().float().mean().item()
    return float(np.mean(value))


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):  # a line cut short by a kill
        return math.inf


def save_image_grid(images, path: str, nrow: int | None = None) -> str:
    """Save a batch (B, C, H, W) with values in [-1, 1] as one PNG grid."""
    from PIL import Image

    images = torch.as_tensor(images).detach().float().cpu()
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    b, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    rows = math.ceil(b / nrow)
    grid = torch.ones(c, rows * (h + 2) + 2, nrow * (w + 2) + 2)
    for i in range(b):
        r, k = divmod(i, nrow)
        grid[:, 2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + k * (w + 2): 2 + k * (w + 2) + w] = images[i]
    array = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()  # encoded first, so a failed write knows the bytes it needed
    Image.fromarray(array[..., 0] if c == 1 else array[..., :3]).save(buffer, format="PNG")
    safe_io.write_bytes(path, buffer.getvalue())
    return path


class Logger:
    """Logs of one run. Only the process with rank 0 writes; other ranks get a logger that does nothing."""

    def __init__(self, root: str, config: Mapping, enabled: bool = True, name: str = "run"):
        self.root = root
        self.enabled = enabled
        self.name = name
        self.metrics_path = os.path.join(root, "metrics.jsonl")
        integrations = config.get("integrations") or {}
        self.tensorboard = self._tensorboard(integrations.get("tensorboard")) if enabled else None
        self.wandb = self._wandb(integrations.get("wandb"), config) if enabled else None

    def _tensorboard(self, options):
        if not _switched_on(options):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError("integrations/tensorboard is on but tensorboard is not installed: "
                              "pip install 'fairtoolkit[tensorboard]' or set integrations.tensorboard=false") from error
        return SummaryWriter(os.path.join(self.root, "tensorboard"))

    def _wandb(self, options, config):
        if not _switched_on(options):
            return None
        try:
            import wandb
        except ImportError as error:
            raise ConfigError("integrations/wandb is on but wandb is not installed: "
                              "pip install 'fairtoolkit[wandb]' or set integrations.wandb=false") from error
        options = options if isinstance(options, Mapping) else {}
        return wandb.init(project=options.get("project") or "fairtoolkit", entity=options.get("entity"),
                          name=os.path.basename(self.root),
                          dir=self.root, config=dict(config), mode=options.get("mode"), reinit=True)

    def scalars(self, scalars: Mapping, step: int, **fields) -> None:
        if not self.enabled or not scalars:
            return
        values = {k: to_float(v) for k, v in scalars.items()}
        record = {"step": int(step), "time": time.time(), **fields, **values}
        safe_io.append_text(self.metrics_path, json.dumps(record) + "\n")
        if self.tensorboard:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, step)
        if self.wandb:
            self.wandb.log(values, step=step)

    def forget_after(self, step: int) -> None:
        """Drop records past ``step``: a run resumed from there logs those steps again."""
        if not self.enabled or not os.path.isfile(self.metrics_path):
            return
        with open(self.metrics_path) as f:
            lines = [line for line in f if line.strip() and _step_of(line) <= step]
        safe_io.write_text(self.metrics_path, "".join(lines))

    def images(self, images: Mapping, step: int, folder: str) -> list[str]:
        if not self.enabled:
            return []
        paths = []
        for name, batch in images.items():
            path = save_image_grid(batch, os.path.join(folder, f"{name.replace('/', '_')}_{step:07d}.png"))
            paths.append(path)
            if self.tensorboard:
                from PIL import Image

                self.tensorboard.add_image(name, np.asarray(Image.open(path).convert("RGB")), step, dataformats="HWC")
            if self.wandb:
                import wandb

                self.wandb.log({name: wandb.Image(path)}, step=step)
        return paths

    def figures(self, figures: Mapping, step: int, folder: str) -> None:
        if not self.enabled:
            return
        import matplotlib.pyplot as plt

        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            safe_io.write_bytes(os.path.join(folder, f"{name.replace('/', '_')}_{step:07d}.png"), buffer.getvalue())
            if self.tensorboard:
                self.tensorboard.add_figure(name, figure, step, close=False)
            plt.close(figure)

    # edflow 0.4's iterators had a standard logger as self.logger: its message methods go to the terminal
    def messages(self):
        from edflow.custom_logging import get_logger

        return get_logger(self.name)

    def debug(self, *args, **kwargs):
        self.messages().debug(*args, **kwargs)

    def info(self, *args, **kwargs):
        self.messages().info(*args, **kwargs)

    def warning(self, *args, **kwargs):
        self.messages().warning(*args, **kwargs)

    def error(self, *args, **kwargs):
        self.messages().error(*args, **kwargs)

    def exception(self, *args, **kwargs):
        self.messages().exception(*args, **kwargs)

    def critical(self, *args, **kwargs):
        self.messages().critical(*args, **kwargs)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()


def _switched_on(options) -> bool:
    if isinstance(options, Mapping):
        return bool(options.get("active", True))
    return bool(options)


def read_metrics(run_root: str) -> list[dict]:
    path = os.path.join(run_root, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
