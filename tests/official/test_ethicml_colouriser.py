"""Our coloured MNIST against EthicML's ``LdColorizer`` (EthicML 0.1.0a8, the release nifr pins), which colours
nifr's digits: the same grey digit and the same colour draw must give the same pixels, and sigma must mean the same.

EthicML's package __init__ imports optional dependencies (GitPython, pandas, ...) that the colouriser does not need,
so only its module ``ethicml/vision/data/label_dependent_transforms.py`` is loaded (it imports numpy and torch).
``pip install --no-deps EthicML==0.1.0a8`` is enough. With FAIRKIT_OFFICIAL_NIFR naming a checkout of
wearepal/nifr, the grey digit also goes through nifr's own 5-bit quantisation and dequantisation noise first.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairkit.data import load_mnist
from nullsample.data import PALETTE, colour_std, colourise, sample_colours


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ld_colorizer():
    spec = importlib.util.find_spec("ethicml")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("EthicML cannot be imported; pip install --no-deps EthicML==0.1.0a8 to compare with its colouriser")
    path = Path(list(spec.submodule_search_locations)[0]) / "vision" / "data" / "label_dependent_transforms.py"
    if not path.exists():
        pytest.skip(f"this EthicML has no {path.name} (the colouriser of 0.1.0a8); install EthicML==0.1.0a8")
    return load_module(path, "ethicml_label_dependent_transforms").LdColorizer


@pytest.fixture(scope="module")
def grey_digits(mnist_available):
    images, labels = load_mnist("test")
    return torch.from_numpy(np.asarray(images[:200])), torch.from_numpy(np.asarray(labels[:200])).long()


def nifr_grey(digits: torch.Tensor, transforms_module=None) -> torch.Tensor:
    """nifr's grey input: padded by 2, in [0, 1] (ToTensor), then its Quantize(5) and NoisyDequantize(5) if given."""
    x = F.pad(digits.float()[:, None] / 255.0, (2, 2, 2, 2))
    if transforms_module is not None:
        x = transforms_module.NoisyDequantize(5)(transforms_module.Quantize(5)(x))
    return x


def colours_of(images: torch.Tensor, digits: torch.Tensor) -> torch.Tensor:
    """The colour of each image, read off one of its digit pixels (every digit pixel carries it)."""
    flat = (digits > 127).flatten(1)
    first = flat.float().argmax(1)
    rows, cols = first // digits.shape[-1] + 2, first % digits.shape[-1] + 2
    return images[torch.arange(len(images)), :, rows, cols]


def ours(digits: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    return colourise(digits > 127, colours, 32)


def test_palette_is_ethicmls(ld_colorizer):
    colorizer = ld_colorizer(scale=0.0, binarize=True)
    assert np.allclose(np.stack(colorizer.palette), PALETTE, atol=1e-7)


@pytest.mark.parametrize("sigma", [0.0, 0.05])
def test_same_grey_digit_and_colour_draw_give_ethicmls_pixels(ld_colorizer, grey_digits, sigma):
    digits, _ = grey_digits
    s = torch.arange(len(digits)) % 10
    colorizer = ld_colorizer(scale=sigma, binarize=True, background=False, black=True, seed=3)
    theirs = colorizer(nifr_grey(digits), s)
    colours = colours_of(theirs, digits)
    if sigma == 0:
        assert torch.equal(colours, torch.from_numpy(PALETTE)[s])
    assert torch.equal(ours(digits, colours), theirs)


def test_nifrs_quantisation_and_noise_of_the_grey_digit_do_not_change_the_pixels(ld_colorizer, grey_digits):
    root = os.environ.get("FAIRKIT_OFFICIAL_NIFR")
    if not root:
        pytest.skip("FAIRKIT_OFFICIAL_NIFR is unset; point it at a checkout of wearepal/nifr")
    transforms = load_module(Path(root) / "nifr" / "data" / "transforms.py", "nifr_data_transforms")
    digits, _ = grey_digits
    s = torch.arange(len(digits)) % 10
    torch.manual_seed(0)
    theirs = ld_colorizer(scale=0.0, binarize=True)(nifr_grey(digits, transforms), s)
    assert torch.equal(ours(digits, torch.from_numpy(PALETTE)[s]), theirs)


@pytest.mark.parametrize("sigma", [0.0025, 0.05])
def test_sigma_is_the_variance_of_ethicmls_colour_draw_and_of_ours(ld_colorizer, sigma):
    # the green channel of colour 3, (0, 128, 0): unclipped at sigma 0.0025 (10 standard deviations from 0 and 1),
    # clipped beyond 2.2 at 0.05, where both draws must still agree
    s = np.full(20000, 3)
    colorizer = ld_colorizer(scale=sigma, seed=0)
    theirs = np.stack([colorizer._sample_color(colorizer.palette[3]) for _ in range(len(s))])
    mine = sample_colours(s, colour_std(sigma, "variance"), np.random.default_rng(0))
    if sigma < 0.01:
        for colours in (theirs, mine):
            assert colours[:, 1].var() == pytest.approx(sigma, rel=0.05)
    assert mine[:, 1].var() == pytest.approx(theirs[:, 1].var(), rel=0.05)
    assert mine[:, 1].mean() == pytest.approx(theirs[:, 1].mean(), abs=0.01)
