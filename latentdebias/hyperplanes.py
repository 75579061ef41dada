"""Hyperplanes in the GAN's latent space and the complementary latents z' (numpy, float64).

A hyperplane (w, b) with ||w|| = 1 scores a latent z as w.z + b; its sign is the attribute. For the target
hyperplane w_t and the protected hyperplane (w_g, b_g), the complementary latent of z is

    d = w_g.z + b_g,  c = w_g.w_t,  z' = z - 2 d / (1 - c^2) * (w_g - c w_t),

which keeps the target score (w_t.z' = w_t.z) and negates the protected score (w_g.z' + b_g = -d); it is the
smallest change of z that does both. The extensions are the same minimum-norm edit under other constraints
(:func:`min_norm_edit`): a target hyperplane per protected group (domain-dependent: z' must score under the other
group's target hyperplane what z scores under its own), and several protected attributes (any subset flipped, the
others and the target kept).
"""
from __future__ import annotations

import itertools
import warnings
from typing import Sequence

import numpy as np


def normalise(w: np.ndarray, b: float) -> tuple[np.ndarray, float]:
    """(w, b) scaled so that ||w|| = 1; the hyperplane and the sign of every score stay the same."""
    w = np.asarray(w, dtype=np.float64).ravel()
    norm = np.linalg.norm(w)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"a hyperplane needs a non-zero finite normal vector, got ||w|| = {norm}")
    return w / norm, float(b) / norm


def fit_hyperplane(z: np.ndarray, labels: np.ndarray, C: float = 1.0, max_iter: int = 10000,
                   seed: int = 0) -> tuple[np.ndarray, float]:
    """A linear SVM (scikit-learn's LinearSVC) separating latents labelled 1 from those labelled 0, normalised:
    w.z + b > 0 predicts 1."""
    from sklearn.exceptions import ConvergenceWarning  # here: only the synthetic stage needs scikit-learn
    from sklearn.svm import LinearSVC

    z, labels = np.asarray(z, dtype=np.float64), np.asarray(labels).astype(np.int64).ravel()
    if z.ndim != 2 or len(z) != len(labels):
        raise ValueError(f"need latents (N, D) and N labels, got shapes {z.shape} and {labels.shape}")
    counts = np.bincount(labels, minlength=2)
    if len(counts) > 2 or counts.min() == 0:
        raise ValueError(f"a hyperplane needs latents of both labels 0 and 1, got counts {counts.tolist()}")
    svm = LinearSVC(C=C, max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(z, labels)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        warnings.warn(f"LinearSVC did not converge in {max_iter} iterations; the hyperplane may be imprecise "
                      f"(raise Synthetic/svm_max_iter or lower Synthetic/svm_C)", ConvergenceWarning)
    return normalise(svm.coef_[0], svm.intercept_[0])


def scores(z: np.ndarray, w: np.ndarray, b) -> np.ndarray:
    """w.z + b for every latent; several hyperplanes (K, D) and (K,) give (N, K)."""
    return np.asarray(z, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T + np.asarray(b, dtype=np.float64)


def complement_latent(z: np.ndarray, w_t: np.ndarray, w_g: np.ndarray, b_g: float) -> np.ndarray:
    """The spec's z' for unit normals w_t and w_g (see the module's docstring); z is (D,) or (N, D)."""
    z = np.asarray(z, dtype=np.float64)
    c = float(np.dot(w_g, w_t))
    if abs(c) >= 1.0 - 1e-12:
        raise ValueError(f"the target and protected hyperplanes are parallel (w_g.w_t = {c:.6f}): no latent can keep "
                         f"one score and negate the other")
    d = scores(z, w_g, b_g)
    return z - (2.0 * d / (1.0 - c ** 2))[..., None] * (np.asarray(w_g) - c * np.asarray(w_t))


def min_norm_edit(z: np.ndarray, normals: np.ndarray, change: np.ndarray) -> np.ndarray:
    """z + delta with the smallest ||delta|| such that normals @ delta = change, for every row of z.

    ``normals`` (K, D) are linearly independent; ``change`` is (K,) or (N, K). delta = A^T (A A^T)^-1 change."""
    normals = np.asarray(normals, dtype=np.float64)
    gram = normals @ normals.T
    if np.linalg.cond(gram) > 1e12:
        raise ValueError("the hyperplanes' normals are linearly dependent: their scores cannot be set independently")
    coefficients = np.linalg.solve(gram, np.asarray(change, dtype=np.float64).T).T
    return np.asarray(z, dtype=np.float64) + coefficients @ normals


def flip_patterns(num_protected: int) -> list[tuple[bool, ...]]:
    """Every non-empty set of protected attributes to flip, as booleans per attribute: one for a single protected
    attribute, three for two (so each latent comes with all four protected combinations at one target score)."""
    if num_protected < 1:
        raise ValueError("need at least one protected attribute")
    return [flips for flips in itertools.product((False, True), repeat=num_protected) if any(flips)]


def complement_latents(z: np.ndarray, target_w: np.ndarray, target_b: np.ndarray, protected_w: np.ndarray,
                       protected_b: np.ndarray, flips: Sequence[bool] | None = None) -> np.ndarray:
    """z' for every row of z: protected scores of the flipped attributes negated, the others kept, and the target
    score kept.

    ``target_w`` (K, D): K = 1, one target hyperplane; K = 2 (domain-dependent, one protected attribute), the target
    hyperplane of protected group 0 and of group 1: z in group a (protected score > 0 means a = 1) keeps under the
    hyperplane of group 1 - a the score it has under the hyperplane of group a.
    ``protected_w`` (P, D), ``flips`` (P,) booleans (default: flip all).
    """
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    target_w, target_b = np.atleast_2d(target_w), np.atleast_1d(target_b).astype(np.float64)
    protected_w, protected_b = np.atleast_2d(protected_w), np.atleast_1d(protected_b).astype(np.float64)
    flips = np.ones(len(protected_w), dtype=bool) if flips is None else np.asarray(flips, dtype=bool)
    if len(flips) != len(protected_w) or not flips.any():
        raise ValueError(f"flips needs one boolean per protected hyperplane ({len(protected_w)}), at least one true")
    d = scores(z, protected_w, protected_b)                       # (N, P)
    protected_change = np.where(flips, -2.0 * d, 0.0)
    if len(target_w) == 1:
        if len(protected_w) == 1:
            return complement_latent(z, target_w[0], protected_w[0], protected_b[0])
        normals = np.concatenate([protected_w, target_w])
        return min_norm_edit(z, normals, np.concatenate([protected_change, np.zeros((len(z), 1))], axis=1))
    if len(target_w) != 2 or len(protected_w) != 1:
        raise ValueError("domain-dependent hyperplanes are two target hyperplanes (one per group of a single "
                         f"protected attribute); got {len(target_w)} target and {len(protected_w)} protected")
    group = (d[:, 0] > 0).astype(np.int64)
    z_prime = np.empty_like(z)
    for a in (0, 1):
        rows = group == a
        own, other = target_w[a], target_w[1 - a]
        keep = scores(z[rows], own, target_b[a]) - scores(z[rows], other, target_b[1 - a])
        change = np.stack([protected_change[rows, 0], keep], axis=1)
        z_prime[rows] = min_norm_edit(z[rows], np.stack([protected_w[0], other]), change)
    return z_prime
