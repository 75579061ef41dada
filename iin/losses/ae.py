"""Stage-1 loss ``LossPND``: a Gaussian-like likelihood with a learnable scalar log-variance, the KL to N(0, I), and
a PatchGAN discriminator whose generator term is weighted adaptively (``Loss`` section of the config).

- rec = |x - x^| (+ perceptual_weight * LPIPS(x, x^), needs local weights: ``lpips_weights: {vgg, lin}``)
- nll = sum(rec * exp(-l) + l) / B, l a learnable scalar (init ``logvar_init``)
- kl = sum KL(q(z|x) || N(0, I)) / B
- from ``disc_start`` on: g = -mean D(x^), weighted by disc_factor * lambda with
  lambda = ||grad_W nll|| / (||grad_W g|| + 1e-4) on the decoder's last weight W, clamped to [0, 1e4], detached;
  ``calibrate: false`` weighs it by disc_factor * discriminator_weight instead. As in the original,
  discriminator_weight does nothing while calibrate is on (the paper configs' 150 is inert);
- discriminator: L_D = disc_factor * 0.5 [mean softplus(-D(x)) + mean softplus(D(x^))].
"""
from __future__ import annotations

import contextlib
import importlib.util
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from edflow.config import ConfigError, section
from fairkit.nets import PatchDiscriminator

LOSS_DEFAULTS = {
    "calibrate": True,
    "disc_in_channels": 3,
    "disc_start": 25001,
    "logvar_init": 0.0,
    "kl_weight": 1.0,
    "perceptual_weight": 1.0,
    "lpips_weights": None,  # {vgg: <vgg16-397923af.pth>, lin: <lpips weights/v0.1/vgg.pth>}
    "discriminator_weight": 1.0,  # only with calibrate: false
    "disc_factor": 1.0,
    "d_lr_factor": 1.0,
    "spectral_norm": False,
    "disc_ndf": 64,
    "disc_layers": 3,
    "disc_norm": "bn",
}
MAX_ADAPTIVE_WEIGHT = 1e4


@contextlib.contextmanager
def frozen(module: nn.Module):
    """No parameter gradients for ``module`` inside the block (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


VGG_FILE = "vgg16-397923af.pth"
VGG_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth"


def default_lpips_file(kind: str) -> str | None:
    """Where a null ``lpips_weights/<kind>`` is looked for: torchvision's download folder for VGG-16, the installed
    lpips package for the linear layers."""
    if kind == "vgg":
        return os.path.join(torch.hub.get_dir(), "checkpoints", VGG_FILE)
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    return os.path.join(next(iter(spec.submodule_search_locations)), "weights", "v0.1", "vgg.pth")


def lpips_files(options: dict) -> tuple[dict, list[str]]:
    """The two LPIPS weight files (as named, else at their default places) and what is missing, with where to put
    it; nothing when the perceptual term is off."""
    if float(options["perceptual_weight"]) == 0:
        return {}, []
    weights = options["lpips_weights"] or {}
    if not isinstance(weights, dict):
        return {}, [f"Loss/lpips_weights must be {{vgg: <path>, lin: <path>}} or null, got {weights!r}"]
    files, problems = {}, []
    off = "or set Loss.perceptual_weight=0 to train without the perceptual term"
    for kind in ("vgg", "lin"):
        path = weights.get(kind) or default_lpips_file(kind)
        if path and os.path.isfile(os.path.expanduser(path)):
            files[kind] = os.path.expanduser(path)
        elif kind == "vgg":
            problems.append(f"Loss/lpips_weights/vgg: {path} does not exist; download {VGG_URL} there (or set "
                            f"Loss.lpips_weights.vgg=<its path>), {off}")
        elif path:
            problems.append(f"Loss/lpips_weights/lin: {path} does not exist; download {LIN_URL} there (or set "
                            f"Loss.lpips_weights.lin=<its path>), {off}")
        else:
            problems.append(f"Loss/lpips_weights/lin is not set and the lpips package, which ships it, is not "
                            f"installed: pip install 'fairtoolkit[paper]' (or download {LIN_URL} and set "
                            f"Loss.lpips_weights.lin=<its path>), {off}")
    return files, problems


def build_lpips(options: dict):
    """LPIPS when the perceptual term is on (imported only then: torchvision is slow to import)."""
    files, problems = lpips_files(options)
    if problems:
        raise ConfigError("; ".join(problems))
    if not files:
        return None
    from iin.losses.lpips import LPIPS

    return LPIPS(files["vgg"], files["lin"])


def discriminator_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def adaptive_weight(nll: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """||grad nll|| / (||grad g|| + 1e-4) on ``last_layer``, clamped to [0, 1e4] and detached."""
    nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = nll_grad.norm() / (g_grad.norm() + 1e-4)
    return weight.clamp(0.0, MAX_ADAPTIVE_WEIGHT).detach()


class LossPND(nn.Module):
    """Holds the learnable log-variance, the discriminator and (optionally) LPIPS.

    ``generator_loss(...)`` gives the autoencoder's loss, ``discriminator_loss(...)`` the discriminator's; the
    trainer optimises them separately (the discriminator after the autoencoder's backward pass).
    """

    @staticmethod
    def preflight(config) -> list[str]:
        """For ``edflow``'s preflight: the LPIPS weight files, when the perceptual term is on."""
        return lpips_files(section(config, "Loss", LOSS_DEFAULTS))[1]

    def __init__(self, config: dict):
        super().__init__()
        options = section(config, "Loss", LOSS_DEFAULTS)
        self.options = options
        self.disc_start = int(options["disc_start"])
        self.kl_weight = float(options["kl_weight"])
        self.perceptual_weight = float(options["perceptual_weight"])
        self.discriminator_weight = float(options["discriminator_weight"])
        self.disc_factor = float(options["disc_factor"])
        self.calibrate = bool(options["calibrate"])
        self.d_lr_factor = float(options["d_lr_factor"])
        self.logvar = nn.Parameter(torch.tensor(float(options["logvar_init"])))
        self.discriminator = PatchDiscriminator(int(options["disc_in_channels"]), ndf=int(options["disc_ndf"]),
                                                n_layers=int(options["disc_layers"]), norm=options["disc_norm"],
                                                use_spectral_norm=bool(options["spectral_norm"]))
        lpips = build_lpips(options)
        self.lpips = [lpips] if lpips is not None else []  # a list keeps its frozen weights out of checkpoints

    def discriminator_active(self, global_step: int) -> bool:
        return global_step >= self.disc_start

    def reconstruction(self, x: torch.Tensor, xrec: torch.Tensor) -> torch.Tensor:
        """Per-pixel reconstruction error (B, C, H, W)."""
        rec = (x - xrec).abs()
        if self.lpips:
            self.lpips[0].to(x.device)
            rec = rec + self.perceptual_weight * self.lpips[0](x, xrec)
        return rec

    def nll(self, rec: torch.Tensor) -> torch.Tensor:
        return (rec * torch.exp(-self.logvar) + self.logvar).sum() / rec.shape[0]

    def generator_loss(self, x: torch.Tensor, xrec: torch.Tensor, posterior, last_layer: torch.Tensor,
                       global_step: int) -> tuple[torch.Tensor, dict]:
        rec = self.reconstruction(x, xrec)
        nll = self.nll(rec)
        kl = posterior.kl().sum() / x.shape[0]
        loss = nll + self.kl_weight * kl
        logs = {"nll": nll.detach(), "kl": kl.detach(), "rec_loss": rec.detach().mean(),
                "logvar": self.logvar.detach()}
        if self.discriminator_active(global_step):
            with frozen(self.discriminator):
                logits_fake = self.discriminator(xrec)
            g_loss = -logits_fake.mean()
            if not self.calibrate:
                weight = torch.tensor(self.discriminator_weight, device=x.device)
            elif torch.is_grad_enabled():
                weight = adaptive_weight(nll, g_loss, last_layer)
            else:  # no gradients to calibrate on (evaluation): lambda = 1
                weight = torch.ones((), device=x.device)
            loss = loss + self.disc_factor * weight * g_loss
            logs.update(g_loss=g_loss.detach(), d_weight=weight)
        logs["loss"] = loss.detach()
        return loss, logs

    def discriminator_loss(self, x: torch.Tensor, xrec: torch.Tensor) -> tuple[torch.Tensor, dict]:
        logits_real = self.discriminator(x.detach())
        logits_fake = self.discriminator(xrec.detach())
        loss = self.disc_factor * discriminator_loss(logits_real, logits_fake)
        return loss, {"d_loss": loss.detach(), "logits_real": logits_real.detach().mean(),
                      "logits_fake": logits_fake.detach().mean()}
