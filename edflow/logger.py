"""Where scalars and images go: an append-only metrics.jsonl, PNG grids, TensorBoard and W&B when switched on."""
from __future__ import annotations

import glob
import io
import json
import math
import os
import secrets
import string
import sys
import time
from typing import Mapping

import numpy as np
import torch

from edflow import safe_io
from edflow.config import ConfigError

WANDB_ID_FILE = "wandb_id.txt"


def to_float(value) -> float:
    if torch.is_tensor(value):
        value = value.detach().float().mean().item()
    return float(np.mean(value))


def scalars_of(value) -> dict[str, float]:
    """The loggable scalars of what a train_op or log_op returned: one number (as ``loss``) or a mapping's
    one-element entries."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): to_float(v) for k, v in value.items() if _is_scalar(v)}
    if _is_scalar(value):
        return {"loss": to_float(value)}
    return {}


def _is_scalar(value) -> bool:
    if torch.is_tensor(value):
        return value.numel() == 1
    if isinstance(value, np.ndarray):  # edflow 0.4 iterators log numpy scalars
        return value.size == 1
    return isinstance(value, (int, float, np.floating, np.integer))


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError):  # a line cut short by a kill
        return math.inf


def save_image_grid(images, path: str, nrow: int | None = None) -> str:
    """Save a batch (B, C, H, W) or (B, H, W, C) with values in [-1, 1] as one PNG grid."""
    from PIL import Image

    images = torch.as_tensor(images).detach().float().cpu()
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim == 4 and images.shape[1] not in (1, 3, 4) and images.shape[-1] in (1, 3, 4):
        images = images.permute(0, 3, 1, 2)  # (B, H, W, C), as edflow 0.4's iterators and callbacks gave them
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
    """Logs of one run. Only the process with rank 0 writes; other ranks get a logger that does nothing.

    TensorBoard's writer is opened on first use, so that a resumed run can first say where it resumed
    (``forget_after``): TensorBoard then drops the events past that step. W&B continues the run whose id is kept in
    the run folder (``wandb_id.txt``)."""

    def __init__(self, root: str, config: Mapping, enabled: bool = True, name: str = "run"):
        self.root = root
        self.enabled = enabled
        self.name = name
        self.metrics_path = os.path.join(root, "metrics.jsonl")
        integrations = config.get("integrations") or {}
        self._tensorboard_on = enabled and self._tensorboard_available(integrations.get("tensorboard"))
        self._tensorboard_writer = None
        self._purge_step: int | None = None
        self.wandb = self._wandb(integrations.get("wandb"), config) if enabled else None

    @property
    def tensorboard_dir(self) -> str:
        return os.path.join(self.root, "tensorboard")

    @property
    def tensorboard(self):
        """The SummaryWriter (None when TensorBoard is off)."""
        if self._tensorboard_on and self._tensorboard_writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard_writer = SummaryWriter(self.tensorboard_dir, purge_step=self._purge_step)
        return self._tensorboard_writer

    @staticmethod
    def _tensorboard_available(options) -> bool:
        if not _switched_on(options):
            return False
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as error:
            raise ConfigError("integrations/tensorboard is on but tensorboard is not installed: "
                              "pip install 'fairtoolkit[tensorboard]' or set integrations.tensorboard=false") from error
        return True

    @property
    def wandb_id_path(self) -> str:
        return os.path.join(self.root, WANDB_ID_FILE)

    def _wandb(self, options, config):
        if not _switched_on(options):
            return None
        try:
            import wandb
        except ImportError as error:
            raise ConfigError("integrations/wandb is on but wandb is not installed: "
                              "pip install 'fairtoolkit[wandb]' or set integrations.wandb=false") from error
        options = options if isinstance(options, Mapping) else {}
        run_id = self._wandb_run_id()
        return wandb.init(project=options.get("project") or "fairtoolkit", entity=options.get("entity"),
                          name=os.path.basename(self.root), id=run_id, resume="allow",
                          dir=self.root, config=dict(config), mode=options.get("mode"), reinit="finish_previous")

    def _wandb_run_id(self) -> str:
        """The id this run folder's W&B run has had since its first start (written before ``wandb.init``, so a
        start that dies during it is continued under the same id)."""
        if os.path.isfile(self.wandb_id_path):
            with open(self.wandb_id_path) as f:
                run_id = f.read().strip()
            if run_id:
                return run_id
        run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # W&B's form
        safe_io.write_text(self.wandb_id_path, run_id + "\n")
        return run_id

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
        """Drop records past ``step``: a run resumed from there logs those steps again. TensorBoard drops its
        events past ``step`` when the writer opens (``purge_step``)."""
        if not self.enabled:
            return
        if self._tensorboard_on and glob.glob(os.path.join(self.tensorboard_dir, "events.out.tfevents.*")):
            if self._tensorboard_writer is not None:  # opened before the resume step was known
                self._tensorboard_writer.close()
                self._tensorboard_writer = None
            self._purge_step = int(step) + 1
        if not os.path.isfile(self.metrics_path):
            return
        with open(self.metrics_path) as f:
            lines = [line for line in f if line.strip() and _step_of(line) <= step]
        safe_io.write_text(self.metrics_path, "".join(lines))

    def images(self, images: Mapping, step: int, folder: str, *, prefix: str = "") -> list[str]:
        """Each batch as a PNG grid ``<folder>/<name>_<step>.png``, and to the trackers as ``<prefix><name>``."""
        if not self.enabled:
            return []
        paths = []
        for name, batch in images.items():
            path = save_image_grid(batch, os.path.join(folder, f"{name.replace('/', '_')}_{step:07d}.png"))
            paths.append(path)
            self.image_files({f"{prefix}{name}": path}, step)
        return paths

    def figures(self, figures: Mapping, step: int, folder: str, *, prefix: str = "") -> list[str]:
        """Each matplotlib figure as ``<folder>/<name>_<step>.png`` (then closed), and to the trackers."""
        if not self.enabled:
            return []
        import matplotlib.pyplot as plt

        paths = []
        for name, figure in figures.items():
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=100)
            plt.close(figure)
            path = os.path.join(folder, f"{name.replace('/', '_')}_{step:07d}.png")
            safe_io.write_bytes(path, buffer.getvalue())
            paths.append(path)
            self.image_files({f"{prefix}{name}": path}, step)
        return paths

    @property
    def tracking(self) -> bool:
        """Whether TensorBoard or W&B is on in this process."""
        return self.enabled and bool(self._tensorboard_on or self.wandb)

    def image_files(self, files: Mapping[str, str], step: int) -> None:
        """PNG files already written (a callback's plots) to the trackers, under the given tags."""
        if not self.tracking or not files:
            return
        from PIL import Image

        for tag, path in files.items():
            try:
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
            except (OSError, ValueError) as error:  # a picture the trackers miss is no reason to stop training
                print(f"edflow: warning: {path} is not sent to the trackers: {error}", file=sys.stderr)
                continue
            if self.tensorboard:
                self.tensorboard.add_image(tag, pixels, step, dataformats="HWC")
            if self.wandb:
                import wandb

                self.wandb.log({tag: wandb.Image(path)}, step=step)

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
        if self._tensorboard_writer is not None:
            self._tensorboard_writer.close()
            self._tensorboard_writer = None
        if self.wandb:
            self.wandb.finish()
            self.wandb = None


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
