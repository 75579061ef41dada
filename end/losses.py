"""The EnD regulariser: disentangle samples that share a bias class, entangle samples of one target class whose
bias classes differ.

On the batch's L2-normalised features D (B, F), G is the strictly lower-triangular part of D D^T clamped to
[-1, 1], so every unordered pair of samples {i, j} appears once, as G[i, j] with i > j.

- Disentangling: R_perp = sum_b |sum of G over pairs within bias class b| / number of such pairs.
- Entangling: R_par = 1 - mean over pairs of one target class and different bias classes of (1 + G) / 2,
  and 0 when the batch holds no such pair. Which pairs (``par_pairs``): ``official``, as EnD's ``abs_parallel``
  counts them, only the pairs i > j whose bias label of i is the smaller (its loop over sorted bias classes b and
  the classes after b): about half of them; ``all``: every such pair, as the paper's formula reads.

Loss = CE + alpha R_perp + beta R_par. :class:`EnDRegularizer` reads D through a forward hook on a layer named in
the config, so it works with any model that has such a layer.
"""
from __future__ import annotations

import difflib

import torch
import torch.nn.functional as F


def pairwise_similarity(features: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """G: dot products of the flattened rows of ``features`` (B, ...), strictly lower-triangular, clamped to [-1, 1];
    cosine similarities when ``normalize`` (or when the rows already have unit length).

    The regulariser takes its layer's output as it is (``normalize=False``), as EnD's code does: SimpleConvNet's
    ``features_norm`` is already unit-length, and normalising again, though equal in exact arithmetic, changes the
    rounding enough that Adam's updates drift from the official code's within a few steps.
    """
    rows = features.flatten(1)
    if normalize:
        rows = F.normalize(rows, dim=1)
    return torch.tril(rows @ rows.T, diagonal=-1).clamp(-1.0, 1.0)


def check_labels(gram: torch.Tensor, **labels: torch.Tensor) -> None:
    for name, values in labels.items():
        if values.ndim != 1 or len(values) != len(gram):
            raise ValueError(f"{name} must hold one label per sample, shape ({len(gram)},); got {tuple(values.shape)}")


def disentangling_term(gram: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """R_perp from G (B, B, strictly lower-triangular) and bias labels (B,); 0 when no two samples share a bias."""
    check_labels(gram, bias=bias)
    _, group = torch.unique(bias, return_inverse=True)
    members = F.one_hot(group).to(gram.dtype)  # (B, K)
    # G is strictly lower-triangular, so m_b^T G m_b sums G over the pairs i > j of class b.
    within = torch.einsum("ib,ij,jb->b", members, gram, members)
    sizes = members.sum(0)
    pairs = (sizes * (sizes - 1) / 2).sum()
    if pairs == 0:
        return gram.new_zeros(())
    return within.abs().sum() / pairs


PAR_PAIRS = ("official", "all")


def entangling_term(gram: torch.Tensor, target: torch.Tensor, bias: torch.Tensor,
                    pairs: str = "official") -> torch.Tensor:
    """R_par from G (B, B, strictly lower-triangular), target and bias labels (B,); 0 when no pair of one target
    class has different bias labels. ``pairs``: see the module's docstring."""
    check_labels(gram, target=target, bias=bias)
    if pairs not in PAR_PAIRS:
        raise ValueError(f"par_pairs={pairs!r}; choose one of {list(PAR_PAIRS)}")
    same_target = target[:, None] == target[None, :]
    other_bias = bias[:, None] < bias[None, :] if pairs == "official" else bias[:, None] != bias[None, :]
    mask = torch.tril(same_target & other_bias, diagonal=-1).to(gram.dtype)
    count = mask.sum()
    if count == 0:
        return gram.new_zeros(())
    return 1.0 - ((1.0 + gram) / 2 * mask).sum() / count


def end_terms(features: torch.Tensor, target: torch.Tensor, bias: torch.Tensor,
              which: tuple[str, ...] = ("perp", "par"), par_pairs: str = "official",
              normalize: bool = True) -> dict[str, torch.Tensor]:
    """{"perp": R_perp, "par": R_par} (only those in ``which``) from a batch of features (see
    :func:`pairwise_similarity` for ``normalize``)."""
    gram = pairwise_similarity(features, normalize=normalize)
    terms = {}
    if "perp" in which:
        terms["perp"] = disentangling_term(gram, bias)
    if "par" in which:
        terms["par"] = entangling_term(gram, target, bias, par_pairs)
    return terms


def find_layer(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """``model``'s submodule called ``name`` (as in named_modules()), or an error naming the closest ones."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"{type(model).__name__} has no layer named {name!r} to read the EnD features from.{hint} "
                     f"Set Loss/feature_layer to one of the names of model.named_modules().")


class EnDRegularizer:
    """alpha R_perp + beta R_par on the output of ``model``'s layer ``feature_layer``, captured by a forward hook.

    After every forward pass of the model, ``self(target, bias)`` returns {"loss", "perp", "par"} for that pass;
    a term whose weight is 0 is not computed (and absent from the dict unless ``all_terms``).
    """

    def __init__(self, model: torch.nn.Module, feature_layer: str, alpha: float = 0.1, beta: float = 0.1,
                 par_pairs: str = "official", normalize: bool = False):
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha={alpha} and beta={beta} weigh penalties and must be >= 0")
        if par_pairs not in PAR_PAIRS:
            raise ValueError(f"Loss/par_pairs={par_pairs!r}; choose one of {list(PAR_PAIRS)}")
        self.alpha, self.beta, self.par_pairs, self.normalize = float(alpha), float(beta), par_pairs, normalize
        self.feature_layer = feature_layer
        self.features: torch.Tensor | None = None
        self.handle = find_layer(model, feature_layer).register_forward_hook(self.capture)

    def capture(self, module, inputs, output) -> None:
        self.features = output

    def remove(self) -> None:
        self.handle.remove()

    @property
    def weights(self) -> dict[str, float]:
        return {"perp": self.alpha, "par": self.beta}

    def __call__(self, target: torch.Tensor, bias: torch.Tensor, all_terms: bool = False) -> dict[str, torch.Tensor]:
        if self.features is None:
            raise RuntimeError(f"no features captured from layer {self.feature_layer!r}: run the model forward "
                               f"before computing the EnD terms")
        which = tuple(name for name, weight in self.weights.items() if weight > 0 or all_terms)
        terms = end_terms(self.features, target, bias, which, self.par_pairs, self.normalize) if which else {}
        loss = sum((self.weights[name] * value for name, value in terms.items() if self.weights[name] > 0),
                   start=self.features.new_zeros(()))
        return {"loss": loss, **terms}
