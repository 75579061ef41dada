"""IIN's evaluations, run after every epoch on every evaluation split (and by ``edflow -p``).

- ``fid``: FID of ``reconstructions`` and ``samples`` (one per validation image) against the split's images, with
  fairkit's streaming FID. Configured by ``fid: {extractor: classifier, run: <a classifier run, e.g. mnist_fidnet>}``
  or ``fid: {extractor: inception, inception_weights: <path>}`` (plus fairkit's ``batch_size``, ``cache_dir``);
  without them FID is skipped with a logged message.
- ``image_grids``: PNG grids of reconstructions and samples.
- ``factor_dims``: the dimension estimate per factor from pairs of first-stage codes: for each semantic factor f,
  score_f = sum_d mean_pairs[(za_d - m_d)(zb_d - m_d)] / sum_d Var(z_d) (m: the mean over that factor's pairs), the
  residual scores 1; dims = floor(softmax(scores) * D), the residual taking the rest.
- ``factor_swaps``: grids where one factor of T(z_a) is replaced by that of T(z_b), decoded.
- ``swap_eval`` (ColorfulMNIST, when the config has a ``swap_eval`` section): the share of factor swaps that change a
  colour probe's answer while keeping a digit probe's answer (and the converse); the two small probe classifiers
  are trained once on SingleColorfulMNISTTrain and kept in ``<run>/probes/``.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from edflow.config import section
from edflow.data import fetch_batch
from edflow.first_stage import load_stage, resolve_run
from edflow.logger import save_image_grid
from fairkit.metrics import configured_extractor, dataset_cache_key, make_fid_callback
from fairkit.metrics.callbacks import write_results
from fairkit.nets import ConvNet

logger = logging.getLogger("iin")
GENERATED_KEYS = ("reconstructions", "samples")
GRID_SIZE = 64
SWAP_GRID_SIZE = 8
SWAP_EVAL_DEFAULTS = {"n_pairs": 1000, "probe_steps": 600, "probe_subset": 20000, "probe_batch_size": 64,
                      "probe_lr": 1e-3, "seed": 0}


# ---------------------------------------------------------------------------------------------------------------
# Callback sets attached by the trainers
# ---------------------------------------------------------------------------------------------------------------
def generative_callbacks(iterator) -> dict:
    return {"fid": lambda root, data_in, data_out, config: fid_callback(root, data_in, data_out, config,
                                                                        iterator.device),
            "image_grids": image_grids_callback}


def factor_callbacks(iterator) -> dict:
    found = {"factor_dims": factor_dims_callback}
    if iterator.can_decode:
        found["factor_swaps"] = lambda root, data_in, data_out, config: factor_swaps_callback(iterator, root, data_in)
        if iterator.config.get("swap_eval") is not None:
            found["swap_eval"] = lambda root, data_in, data_out, config: swap_eval_callback(iterator, root, data_in)
    return found


# ---------------------------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------------------------
def fid_not_configured(settings: Mapping) -> str | None:
    """Why FID cannot run with these ``fid`` settings, or None."""
    name = settings.get("extractor")
    if not name:
        return ("no fid/extractor in the config; set fid: {extractor: classifier, run: <classifier run>} or "
                "fid: {extractor: inception, inception_weights: <path>}")
    if name == "classifier" and not settings.get("run"):
        return "fid/extractor is classifier but fid/run (the classifier's run, e.g. mnist_fidnet) is not set"
    if name == "inception" and not settings.get("inception_weights"):
        return "fid/extractor is inception but fid/inception_weights (a local weights file) is not set"
    return None


def check_fid_classifier(config: Mapping) -> None:
    """A FID classifier run that does not exist is an error when training starts, not after the first epoch."""
    settings = config.get("fid") or {}
    if not fid_not_configured(settings) and settings["extractor"] == "classifier":
        resolve_run(str(settings["run"]))


class FirstImages:
    """The images of a dataset (the first image of each pair for pair datasets), batched for FID."""

    def __init__(self, data):
        self.data = data
        self.labels = getattr(data, "labels", {})

    def __len__(self) -> int:
        return len(self.data)

    def get_batch(self, indices) -> dict:
        return {"image": first_image(fetch_batch(self.data, indices, keys=("example1", "image")))}


def first_image(example: Mapping):
    return example["example1"]["image"] if "example1" in example else example["image"]


def fid_callback(root, data_in, data_out, config, device="cpu") -> dict:
    settings = dict(config.get("fid") or {})
    problem = fid_not_configured(settings)
    if problem:
        logger.warning("FID skipped: %s", problem)
        return {}
    keys = [k for k in GENERATED_KEYS if k in data_out.labels]
    if not keys:
        logger.warning("FID skipped: the evaluation produced no images (no decoder in the first stage)")
        return {}
    shape = "x".join(map(str, np.asarray(data_out.labels[keys[0]]).shape[1:]))
    settings.setdefault("reference_key", f"{dataset_cache_key(data_in)}-{shape}")
    settings["keys"] = keys
    settings["device"] = str(settings.get("device") or device)  # fid/device, else the run's device
    # fairkit's extractor for the section (one cache for every method); runs load through this module's load_stage,
    # which tests replace with a stand-in classifier
    compute = make_fid_callback(configured_extractor(settings, device=settings["device"], load=load_stage))
    return compute(root, FirstImages(data_in), data_out, {**config, "fid": settings})


# ---------------------------------------------------------------------------------------------------------------
# Image grids
# ---------------------------------------------------------------------------------------------------------------
def image_grids_callback(root, data_in, data_out, config) -> dict:
    for key in GENERATED_KEYS:
        if key in data_out.labels:
            save_generated_grid(data_out.labels[key], os.path.join(root, f"{key}.png"))
    return {}


def save_generated_grid(images, path: str) -> str:
    """The first GRID_SIZE of a split's generated images (in evaluation order) as one PNG grid."""
    return save_image_grid(np.asarray(images[:GRID_SIZE]), path)


@torch.no_grad()
def swapped_images(iterator, model, xa: torch.Tensor, xb: torch.Tensor, factor: int) -> torch.Tensor:
    """Dec(T^-1(T(z_a) with factor ``factor`` from T(z_b))), rows of xa and xb paired."""
    was_training = model.training
    model.eval()  # a callback must never (re)initialise ActNorm from its batch
    try:
        out_a, _ = model(iterator.codes(xa, sample=False))
        out_b, _ = model(iterator.codes(xb, sample=False))
        return iterator.decode(model.reverse(model.swap(out_a, out_b, factor)))
    finally:
        model.train(was_training)


@torch.no_grad()
def swap_grid(iterator, model, xa: torch.Tensor, xb: torch.Tensor, factor: int = 0) -> torch.Tensor:
    """A (n+1) x (n+1) grid as a batch: row 0 the donors xb, column 0 the inputs xa, cell (i, j) xa_i with factor
    ``factor`` of xb_j."""
    n = min(len(xa), len(xb))
    xa, xb = xa[:n], xb[:n]
    rows = torch.repeat_interleave(torch.arange(n, device=xa.device), n)
    cols = torch.arange(n, device=xa.device).repeat(n)
    cells = swapped_images(iterator, model, xa[rows], xb[cols], factor).view(n, n, *xa.shape[1:])
    corner = -torch.ones_like(xa[:1])
    header = torch.cat([corner, xb])[None]
    body = torch.cat([xa[:, None], cells], dim=1)
    return torch.cat([header, body]).flatten(0, 1)


def first_images(data, indices) -> torch.Tensor:
    return torch.as_tensor(FirstImages(data).get_batch(np.asarray(indices))["image"]).float()


def factor_names(data, n_factors: int) -> list[str]:
    names = list(getattr(data, "factor_names", []))
    return names if len(names) == n_factors else [f"factor{k}" for k in range(n_factors)]


def swap_inputs(data) -> tuple[list[int], list[int]]:
    """The dataset indices of the swap grids' inputs (column 0) and donors (row 0): the first 2n examples."""
    n = min(SWAP_GRID_SIZE, len(data) // 2)
    return list(range(n)), list(range(n, 2 * n))


def save_swap_grids(stages, data, root: str, *, inputs, donors, factors=None) -> list[str]:
    """``swap_<factor>.png`` for each factor (by name; all when None) of ``stages.model``, inputs and donors given
    as dataset indices (``stages``: an IIN trainer or iin.iterators.iin.FrozenStages)."""
    xa = first_images(data, inputs).to(stages.device)
    xb = first_images(data, donors).to(stages.device)
    names = factor_names(data, stages.model.n_factors)
    unknown = sorted(set(factors or ()) - set(names))
    if unknown:
        raise ValueError(f"factor(s) {unknown} are not among the dataset's factors {names}")
    paths = []
    for k, name in enumerate(names):
        if factors is None or name in factors:
            grid = swap_grid(stages, stages.model, xa, xb, k)
            paths.append(save_image_grid(grid, os.path.join(root, f"swap_{name}.png"), nrow=min(len(xa), len(xb)) + 1))
    return paths


def factor_swaps_callback(iterator, root, data_in) -> dict:
    inputs, donors = swap_inputs(data_in)
    if inputs:
        save_swap_grids(iterator, data_in, root, inputs=inputs, donors=donors)
    return {}


# ---------------------------------------------------------------------------------------------------------------
# Dimension estimate
# ---------------------------------------------------------------------------------------------------------------
def factor_scores(za: np.ndarray, zb: np.ndarray, factor: np.ndarray, n_factors: int,
                  residual_index: int) -> np.ndarray:
    """score_f = sum_d mean_pairs[(za - m)(zb - m)] / sum_d Var(z) for semantic f; 1 for the residual."""
    za, zb = za.reshape(len(za), -1).astype(np.float64), zb.reshape(len(zb), -1).astype(np.float64)
    both = np.concatenate([za, zb])
    total_variance = both.var(axis=0).sum()
    scores = np.ones(n_factors)
    for f in range(n_factors):
        if f == residual_index:
            continue
        pairs = factor == f
        if not pairs.any():
            raise ValueError(f"no pairs share factor {f}; the dimension estimate needs pairs of every factor")
        a, b = za[pairs], zb[pairs]
        m = 0.5 * (a.mean(0) + b.mean(0))
        scores[f] = ((a - m) * (b - m)).mean(0).sum() / total_variance
    return scores


def estimate_factor_dims(za: np.ndarray, zb: np.ndarray, factor: np.ndarray, n_factors: int,
                         residual_index: int) -> list[int]:
    """Dimensions per factor: floor(softmax(scores) * D), the residual taking what is left."""
    scores = factor_scores(za, zb, factor, n_factors, residual_index)
    shares = np.exp(scores - scores.max())
    shares /= shares.sum()
    dim = za.reshape(len(za), -1).shape[1]
    dims = [int(s * dim) for s in shares]
    dims[residual_index] = dim - (sum(dims) - dims[residual_index])
    return dims


def factor_dims_callback(root, data_in, data_out, config) -> dict:
    labels = data_out.labels
    n_factors = int(getattr(data_in, "n_factors", 0))
    if not n_factors or not {"z1", "z2", "factor"} <= set(labels):
        logger.warning("factor dimension estimate skipped: it needs a pair dataset and z1, z2, factor outputs")
        return {}
    residual = int(getattr(data_in, "residual_index", n_factors - 1))
    missing = sorted(set(range(n_factors)) - {residual} - set(np.asarray(labels["factor"]).tolist()))
    if missing:
        logger.warning("factor dimension estimate skipped: no evaluated pair shares factor(s) %s", missing)
        return {}
    dims = estimate_factor_dims(labels["z1"], labels["z2"], np.asarray(labels["factor"]), n_factors, residual)
    results = {f"dim_{name}": d for name, d in zip(factor_names(data_in, n_factors), dims)}
    write_results(root, "factor_dims", results)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Colour-swap evaluation with probe classifiers
# ---------------------------------------------------------------------------------------------------------------
def colour_bins(colours: torch.Tensor) -> torch.Tensor:
    """8 colour classes: which of R, G, B exceed 0.5."""
    bits = (torch.as_tensor(colours) > 0.5).long()
    return bits[:, 0] * 4 + bits[:, 1] * 2 + bits[:, 2]


@torch.enable_grad()
def train_probe(data, target: str, steps: int, batch_size: int, lr: float) -> torch.nn.Module:
    """A small ConvNet predicting ``class`` (10 digits) or ``color`` (8 bins) from coloured digits."""
    n_classes = 10 if target == "class" else 8
    net = ConvNet(in_channels=3, num_classes=n_classes, channels=(16, 32, 64))
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        batch = data.get_batch(torch.randint(0, len(data), (batch_size,)).numpy())
        labels = batch["class"] if target == "class" else colour_bins(batch["color"])
        loss = F.cross_entropy(net(batch["image"]), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return net.eval()


def load_or_train_probes(iterator, options: Mapping) -> dict:
    """The digit and colour probes of this run, trained once (seeded, without touching the training RNG)."""
    from iin.data import SingleColorfulMNISTTrain

    path = os.path.join(iterator.root, "probes", "colour_digit_probes.pt")
    probes = {"class": ConvNet(3, 10, (16, 32, 64)), "color": ConvNet(3, 8, (16, 32, 64))}
    if os.path.isfile(path):
        state = torch.load(path, map_location="cpu", weights_only=True)
        for name, net in probes.items():
            net.load_state_dict(state[name])
    else:
        data = SingleColorfulMNISTTrain(iterator.config, subset=int(options["probe_subset"]))
        with torch.random.fork_rng():
            torch.manual_seed(int(options["seed"]))
            probes = {name: train_probe(data, name, int(options["probe_steps"]), int(options["probe_batch_size"]),
                                        float(options["probe_lr"])) for name in probes}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save({name: net.state_dict() for name, net in probes.items()}, path)
    return {name: net.to(iterator.device).eval() for name, net in probes.items()}


def changed_and_kept_share(changed_a, changed_b, changed_swap, kept_a, kept_swap) -> float:
    """Among pairs whose ``changed`` predictions differ for a and b: the share of swaps whose ``changed``
    prediction differs from a's while the ``kept`` prediction equals a's."""
    changed_a, changed_b, changed_swap, kept_a, kept_swap = map(np.asarray, (changed_a, changed_b, changed_swap,
                                                                              kept_a, kept_swap))
    eligible = changed_a != changed_b
    if not eligible.any():
        return float("nan")
    success = (changed_swap != changed_a) & (kept_swap == kept_a)
    return float(success[eligible].mean())


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    return torch.cat([net(images[i:i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)]).cpu().numpy()


@torch.no_grad()
def oracle_swap_shares(data, colours: torch.Tensor, probes: dict, digit: dict, colour: dict, device) -> dict:
    """The same shares for perfect swaps of the first len(colours) images, rendered from the data (a's digit in b's
    colour and vice versa): the ceiling that the probes' own errors leave."""
    indices = np.arange(len(colours))
    recoloured = data.coloured(indices, torch.roll(colours, 1, dims=0))["image"].to(device)
    redigited = data.coloured(np.roll(indices, 1), colours)["image"].to(device)
    return {"oracle_color_swap/color_changed_digit_kept": changed_and_kept_share(
                colour["a"], colour["b"], predict(probes["color"], recoloured), digit["a"],
                predict(probes["class"], recoloured)),
            "oracle_digit_swap/digit_changed_color_kept": changed_and_kept_share(
                digit["a"], digit["b"], predict(probes["class"], redigited), colour["a"],
                predict(probes["color"], redigited))}


@torch.no_grad()
def swap_eval_callback(iterator, root, data_in) -> dict:
    names = factor_names(data_in, iterator.model.n_factors)
    if "color" not in names or "digit" not in names:
        logger.warning("swap_eval skipped: it needs ColorfulMNIST pairs (factors digit and color)")
        return {}
    options = section(iterator.config, "swap_eval", SWAP_EVAL_DEFAULTS)
    probes = load_or_train_probes(iterator, options)
    n = min(int(options["n_pairs"]), len(data_in))
    batch = data_in.get_batch(np.arange(n))["example1"]
    xa = batch["image"].to(iterator.device)
    xb = torch.roll(xa, 1, dims=0)
    truth_colour = colour_bins(batch["color"]).numpy()
    results = {"probe_digit_accuracy": float((predict(probes["class"], xa) == batch["class"].numpy()).mean()),
               "probe_color_accuracy": float((predict(probes["color"], xa) == truth_colour).mean())}
    digit = {"a": predict(probes["class"], xa), "b": predict(probes["class"], xb)}
    colour = {"a": predict(probes["color"], xa), "b": predict(probes["color"], xb)}
    for k, name in enumerate(names):
        swapped = torch.cat([swapped_images(iterator, iterator.model, xa[i:i + 256], xb[i:i + 256], k)
                             for i in range(0, n, 256)])
        digit_swap, colour_swap = predict(probes["class"], swapped), predict(probes["color"], swapped)
        results[f"swap_{name}/color_changed_digit_kept"] = changed_and_kept_share(
            colour["a"], colour["b"], colour_swap, digit["a"], digit_swap)
        results[f"swap_{name}/digit_changed_color_kept"] = changed_and_kept_share(
            digit["a"], digit["b"], digit_swap, colour["a"], colour_swap)
    results.update(oracle_swap_shares(data_in, batch["color"], probes, digit, colour, iterator.device))
    with open(os.path.join(root, "swap_eval.yaml"), "w") as f:
        yaml.safe_dump(results, f, sort_keys=True)
    return results
