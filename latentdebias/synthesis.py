"""The synthetic stage's work: label generated images, fit the hyperplanes, build the complementary pairs (and,
optionally, pairs from inverted real images), and write them as one table of rows.

The synthetic set (``<run>/synthetic/synthetic.npz``) holds one row per image:

- ``image`` uint8 (M, 3, H, W), ``latent`` float32 (M, D);
- ``source``: index into :data:`latentdebias.data.SOURCES` (sampled G(z), complement G(z'), inverted G(z_inv),
  inverted_complement G(z_inv'));
- ``target`` (M,) and ``protected`` (M, P): the training labels. G(z) has the classifiers' labels of G(z) (at
  their validation-F1 thresholds); G(z') has G(z)'s target label and its protected labels flipped where z' flips
  them; inverted images have the real image's labels (flipped likewise for their complements);
- ``pair``: the row index of the sampled/inverted image a complement belongs to (its own index otherwise);
- ``score`` (M, 1 + P): the classifiers' probabilities on the row's own image (diagnostics);
- ``target_name``, ``protected_names``: which attributes the labels are.
"""
from __future__ import annotations

import os
import warnings
from typing import Mapping, Sequence

import numpy as np
import torch

from edflow.config import ConfigError, section
from edflow.logger import save_image_grid
from fairkit.metrics import to_uint8_rgb
from latentdebias.data import SOURCES
from latentdebias.hyperplanes import fit_hyperplane, flip_patterns
from latentdebias.inversion import INVERSION_DEFAULTS, invert

MODES = ("standard", "domain_dependent")
DEGENERATE_POLICIES = ("error", "random")
SYNTHETIC_DEFAULTS = {
    "mode": "standard",                     # standard | domain_dependent (a target hyperplane per protected group)
    "target_stage": "target_clf",           # first-stage names: the target classifier,
    "protected_stages": ["protected_clf"],  # the protected classifiers (in Data/protected's order),
    "gan_stage": "gan",                     # and the GAN (a fairkit.nets.gan.GAN)
    "classifier_checkpoint": "best",        # best: the classifiers' best validation-AP checkpoint if kept; latest
    "svm_C": 1.0,
    "svm_max_iter": 10000,
    "degenerate_labels": "error",           # error | random (a random split, smoke tests) when all labels are equal
    "seed": None,                           # seed of the latents (default: the run's seed)
    "generate_batch_size": 250,
    "num_grid_pairs": 32,
    "inversion": {"num_images": 0, **INVERSION_DEFAULTS},  # num_images > 0: also invert real training images
}


def synthetic_options(config: Mapping) -> dict:
    options = section(config, "Synthetic", SYNTHETIC_DEFAULTS)
    options["inversion"] = section(options, "inversion", SYNTHETIC_DEFAULTS["inversion"])
    if options["mode"] not in MODES:
        raise ConfigError(f"Synthetic/mode {options['mode']!r} is not one of {MODES}")
    if options["degenerate_labels"] not in DEGENERATE_POLICIES:
        raise ConfigError(f"Synthetic/degenerate_labels {options['degenerate_labels']!r} is not one of "
                          f"{DEGENERATE_POLICIES}")
    if options["classifier_checkpoint"] not in ("best", "latest"):
        raise ConfigError("Synthetic/classifier_checkpoint is best or latest, got "
                          f"{options['classifier_checkpoint']!r}")
    return options


class ScoreStore:
    """The classifiers' scores of every latent's image, filled batch by batch; saved with the iterator's state so a
    resumed stage continues where it stopped."""

    def __init__(self, num_latents: int, num_classifiers: int):
        self.scores = torch.full((num_latents, num_classifiers), float("nan"), dtype=torch.float64)

    def put(self, indices: torch.Tensor, scores: torch.Tensor) -> None:
        self.scores[indices.cpu()] = scores.detach().double().cpu()

    def complete(self) -> bool:
        return not torch.isnan(self.scores).any().item()

    def state_dict(self) -> dict:
        return {"scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.scores = state["scores"].double()


# --- labels and hyperplanes --------------------------------------------------------------------------------------

def labels_for_fit(labels: np.ndarray, policy: str, name: str, seed: int) -> np.ndarray:
    """The labels a hyperplane is fitted to; when one label is missing, an error, or (policy ``random``, for smoke
    tests of untrained stages) a seeded random split with a warning."""
    labels = np.asarray(labels, dtype=np.int64)
    if 0 < labels.sum() < len(labels):
        return labels
    message = (f"the {name} classifier gives all {len(labels)} generated images the label {int(labels[0])}, so no "
               f"hyperplane separates them: train the GAN or the classifier longer, or sample more latents")
    if policy == "error":
        raise ValueError(message + " (or set Synthetic/degenerate_labels: random for a smoke test)")
    warnings.warn(message + "; splitting them at random instead (Synthetic/degenerate_labels: random)")
    return np.random.default_rng(seed).permutation(len(labels)) % 2


def fit_latent_hyperplanes(z: np.ndarray, labels: np.ndarray, options: Mapping,
                           names: Sequence[str]) -> tuple[list, list]:
    """Target hyperplane(s) and one protected hyperplane per protected attribute, fitted on the latents z with the
    hallucinated ``labels`` (N, 1 + P) (columns: target, protected...)."""
    fit = {"C": float(options["svm_C"]), "max_iter": int(options["svm_max_iter"])}
    policy = options["degenerate_labels"]
    columns = [labels_for_fit(labels[:, k], policy, name, seed=k) for k, name in enumerate(names)]
    protected = [fit_hyperplane(z, column, **fit) for column in columns[1:]]
    if options["mode"] == "standard":
        return [fit_hyperplane(z, columns[0], **fit)], protected
    if len(protected) != 1:
        raise ConfigError("Synthetic/mode domain_dependent takes one protected attribute")
    target = []
    for group in (0, 1):
        rows = columns[1] == group
        group_labels = labels_for_fit(columns[0][rows], policy, f"{names[0]} (protected group {group})", seed=2 + group)
        target.append(fit_hyperplane(z[rows], group_labels, **fit))
    return target, protected


# --- images ------------------------------------------------------------------------------------------------------

@torch.no_grad()
def render(generator, classifiers: Sequence, z: torch.Tensor, batch_size: int, device) -> tuple[np.ndarray, np.ndarray]:
    """G(z) as uint8 (N, 3, H, W) and the classifiers' probabilities on it (N, len(classifiers))."""
    images, scores = [], []
    for start in range(0, len(z), batch_size):
        batch = generator(z[start:start + batch_size].float().to(device))
        images.append(to_uint8_rgb(batch.cpu()).numpy())
        scores.append(torch.stack([c.scores(batch) for c in classifiers], 1).double().cpu().numpy())
    return np.concatenate(images), np.concatenate(scores)


def rows(source: str, images: np.ndarray, latents, target, protected, pair, scores) -> dict:
    """Rows of the synthetic set (see the module's docstring) for images of one source."""
    n = len(images)
    return {"image": images, "latent": np.asarray(latents, dtype=np.float32),
            "source": np.full(n, SOURCES.index(source)), "target": np.asarray(target, dtype=np.int64),
            "protected": np.asarray(protected, dtype=np.int64).reshape(n, -1),
            "pair": np.asarray(pair, dtype=np.int64), "score": np.asarray(scores, dtype=np.float32)}


def pairs_with_complements(model, generator, classifiers, z: torch.Tensor, target: np.ndarray, protected: np.ndarray,
                           sources: tuple[str, str], batch_size: int, device, offset: int = 0,
                           originals: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Rows for G(z) and, for every flip pattern of the protected attributes, G(z') labelled with z's target and
    its protected labels flipped where the pattern flips them. ``offset``: the row index of z's first image."""
    n = len(z)
    own = np.arange(offset, offset + n)
    images, scores = originals if originals is not None else render(generator, classifiers, z, batch_size, device)
    parts = [rows(sources[0], images, z.cpu().numpy(), target, protected, own, scores)]
    for flips in flip_patterns(protected.shape[1]):
        z_prime = model.complement(z.cpu().double(), flips)
        images_prime, scores_prime = render(generator, classifiers, z_prime, batch_size, device)
        flipped = np.where(np.asarray(flips), 1 - protected, protected)
        parts.append(rows(sources[1], images_prime, z_prime.numpy(), target, flipped, own, scores_prime))
    return parts


def inverted_latents(generator, images: torch.Tensor, dim_z: int, options: Mapping, seed: int,
                     device) -> tuple[torch.Tensor, np.ndarray]:
    """Latents of real images by optimisation (batch by batch), and their reconstruction errors."""
    rng = torch.Generator().manual_seed(seed)
    latents, errors = [], []
    size = int(options["batch_size"])
    for start in range(0, len(images), size):
        z, error = invert(generator, images[start:start + size].to(device), dim_z, int(options["steps"]),
                          float(options["lr"]), float(options["prior_weight"]), int(options["restarts"]), rng)
        latents.append(z.cpu())
        errors.append(error.cpu().numpy())
    return torch.cat(latents), np.concatenate(errors)


def concatenate_rows(parts: Sequence[dict]) -> dict:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def save_synthetic(path: str, table: Mapping, target_name: str, protected_names: Sequence[str]) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **table, target_name=np.array(target_name), protected_names=np.array(list(protected_names)))
    os.replace(tmp, path)
    return path


# --- diagnostics -------------------------------------------------------------------------------------------------

def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def diagnostics(table: Mapping, thresholds: Sequence[float], model, fit_labels: np.ndarray) -> dict:
    """How well the hyperplanes fit the hallucinated labels, how often the classifiers see G(z') with the intended
    protected and target labels, and the target-protected correlation of their labels before and after adding G(z')."""
    source, predicted = table["source"], table["score"] >= np.asarray(thresholds)[None, :]
    sampled, complement = source == SOURCES.index("sampled"), source == SOURCES.index("complement")
    z = torch.as_tensor(table["latent"][sampled], dtype=torch.float64)
    protected_side = (model.protected_scores(z)[:, 0] > 0).numpy()
    results = {"num_sampled": int(sampled.sum()), "num_complement": int(complement.sum()),
               "target_positive_rate": float(fit_labels[:, 0].mean()),
               "protected_positive_rate": float(fit_labels[:, 1].mean()),
               "protected_svm_accuracy": float((protected_side == fit_labels[:, 1]).mean()),
               "cosine_target_protected": float(model.protected_w[0] @ model.target_w[0]),
               "correlation_sampled": correlation(predicted[sampled, 0], predicted[sampled, 1])}
    if not model.domain_dependent:
        results["target_svm_accuracy"] = float(((model.target_scores(z)[:, 0] > 0).numpy() == fit_labels[:, 0]).mean())
    if complement.any():
        # the classifiers' view of G(z'): do they see the intended (flipped) protected labels and the kept target?
        results["complement_protected_agreement"] = float(np.mean(
            predicted[complement, 1:] == table["protected"][complement]))
        results["complement_target_agreement"] = float(np.mean(predicted[complement, 0] == table["target"][complement]))
        both = sampled | complement
        results["correlation_with_complements"] = correlation(predicted[both, 0], predicted[both, 1])
    return results


def save_pair_grid(table: Mapping, path: str, num_pairs: int) -> str | None:
    """Rows of (G(z), G(z')) side by side for the first sampled latents."""
    complement = np.flatnonzero(table["source"] == SOURCES.index("complement"))[:num_pairs]
    if not len(complement):
        return None
    order = np.stack([table["pair"][complement], complement], 1).ravel()
    images = torch.as_tensor(table["image"][order]).float() / 127.5 - 1.0
    return save_image_grid(images, path, nrow=8)
