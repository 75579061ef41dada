"""fairgen beside ermongroup/fairgen (``FAIRKIT_OFFICIAL_FAIRGEN``): the density-ratio weights and the weighted hinge
loss of the discriminator, from the same logits.

The official ratio classifier has two outputs, r = softmax(l)_1 / softmax(l)_0 (``clf_models.py`` and the ``__main__``
block of ``get_density_ratios.py``); ours has one logit, which for the same classifier is l_1 - l_0.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _load import load_functions, load_statements, official_checkout, run_statements
from fairgen.losses import density_ratio, discriminator_loss, importance_weights

CHECKOUT = official_checkout("fairgen")
LOSSES = load_functions(CHECKOUT / "src/KL-BigGAN/losses.py", ["loss_hinge_dis"], {"torch": torch, "F": F})
PROBAS = load_statements(CHECKOUT / "src/clf_models.py", ["probas"])
RATIO = load_statements(CHECKOUT / "src/get_density_ratios.py", ["density_ratio"])


def official_ratio(logits: torch.Tensor) -> torch.Tensor:
    scope = run_statements(PROBAS, {"F": F, "logits": logits})
    return run_statements(RATIO, scope)["density_ratio"]


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
def test_density_ratio_weights_and_weighted_hinge_loss(compare, alpha):
    torch.manual_seed(0)
    logits = torch.randn(32, 2) * 2  # the official classifier's two outputs for 32 biased examples
    d_real, d_fake = torch.randn(32, 1) * 2, torch.randn(32, 1) * 2
    ratio = density_ratio(logits[:, 1] - logits[:, 0])
    official = official_ratio(logits)
    compare("density ratio", ratio, official, tol=1e-5)
    weights = importance_weights(ratio, alpha=alpha)
    official_real, official_fake = LOSSES["loss_hinge_dis"](d_fake, d_real, official, alpha=alpha)
    compare("weighted hinge loss (D)", discriminator_loss(d_real, d_fake, weights), official_real + official_fake)


def test_reference_examples_weigh_one(compare):
    """The official code sets the reference set's ratios to ones (``utils.py``: ``torch.ones_like``); ours too."""
    logits = torch.randn(8, 2)
    is_reference = torch.tensor([1, 0] * 4)
    ratio = density_ratio(logits[:, 1] - logits[:, 0], is_reference)
    expected = torch.where(is_reference.bool(), torch.ones(8), official_ratio(logits))
    compare("density ratio", ratio, expected)
