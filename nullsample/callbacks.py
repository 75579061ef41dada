"""Evaluations of null-sampling: the downstream classifier's accuracy and fairness, and image grids.

Fairness of predictions y^ with respect to s (``fairness_callback``):

- ``accuracy`` and ``hgr`` (HGR maximal correlation of y^ and s) for any number of classes;
- binary y: ``positive_rate_s<g>`` = P(y^ = 1 | s = g) per group, ``dp`` = the largest minus the smallest of them,
  ``tpr_diff`` and ``tnr_diff`` = the spread over groups of P(y^ = 1 | y = 1, s) and P(y^ = 0 | y = 0, s);
- multi-class y (coloured MNIST: 10 digits, 10 colours): the same three differences one class k against the rest,
  averaged over k: ``dp`` = mean_k [max_g P(y^ = k | s = g) - min_g P(y^ = k | s = g)], ``tpr_diff`` likewise with
  P(y^ = k | y = k, s), ``tnr_diff`` with P(y^ != k | y != k, s). The full table P(y^ = k | s = g) goes to
  ``positive_rates.yaml`` in the evaluation folder rather than into the metrics.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import yaml
from torchvision.utils import save_image

from edflow.data import fetch_batch
from fairkit.metrics import fairness


def one_vs_rest_mean(metric, *arrays_and_group, classes: np.ndarray) -> float:
    """mean over k of ``metric`` applied to the arrays binarised as (array == k), the group left as it is; classes
    where the metric is undefined (NaN: a group without examples of class k) are left out."""
    *arrays, group = arrays_and_group
    values = np.array([metric(*[(np.asarray(a) == k).astype(np.int64) for a in arrays], group) for k in classes])
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if len(defined) else float("nan")


def positive_rates(pred: np.ndarray, group: np.ndarray, classes: np.ndarray) -> dict:
    """{k: {g: P(y^ = k | s = g)}}."""
    return {int(k): fairness.positive_rate_per_group((pred == k).astype(np.int64), group) for k in classes}


def fairness_metrics(label, pred, group, num_classes: int | None = None) -> dict:
    """The metrics listed in the module docstring, as a flat dict of floats."""
    label, pred, group = (np.asarray(a).reshape(-1) for a in (label, pred, group))
    classes = np.arange(num_classes) if num_classes else np.union1d(label, pred)
    results = {"accuracy": fairness.accuracy(label, pred), "hgr": fairness.hgr_correlation(pred, group)}
    if len(classes) <= 2 and set(classes.tolist()) <= {0, 1}:
        rates = fairness.positive_rate_per_group(pred, group)
        results.update({f"positive_rate_s{g}": rate for g, rate in rates.items()})
        results["dp"] = fairness.demographic_parity_difference(pred, group)
        results["tpr_diff"] = fairness.tpr_difference(label, pred, group)
        results["tnr_diff"] = fairness.tnr_difference(label, pred, group)
    else:
        results["dp"] = one_vs_rest_mean(fairness.demographic_parity_difference, pred, group, classes=classes)
        results["tpr_diff"] = one_vs_rest_mean(fairness.tpr_difference, label, pred, group, classes=classes)
        results["tnr_diff"] = one_vs_rest_mean(fairness.tnr_difference, label, pred, group, classes=classes)
    return results


def fairness_callback(root, data_in, data_out, config) -> dict:
    """Eval callback on the classifier's outputs ``pred``, ``label`` (y) and ``group`` (s)."""
    labels = data_out.labels
    missing = [key for key in ("pred", "label", "group") if key not in labels]
    if missing:
        raise KeyError(f"fairness_callback needs eval_op outputs {missing}; got {sorted(labels)}")
    num_classes = (config.get("Model") or {}).get("num_classes")
    results = fairness_metrics(labels["label"], labels["pred"], labels["group"], num_classes)
    classes = np.arange(num_classes) if num_classes else np.unique(labels["label"])
    table = positive_rates(np.asarray(labels["pred"]).reshape(-1), np.asarray(labels["group"]).reshape(-1), classes)
    with open(os.path.join(root, "positive_rates.yaml"), "w") as f:
        yaml.safe_dump({"P(y_hat=k|s=g)": table, **results}, f, sort_keys=False)
    return results


def save_rows(path: str, rows: list[torch.Tensor]) -> str:
    """Images (each row (N, C, H, W) in [-1, 1]) as one grid, a row per entry."""
    grid = torch.cat([row.detach().float().cpu() for row in rows])
    save_image((grid + 1.0) / 2.0, path, nrow=len(rows[0]), padding=1, pad_value=1.0)
    return path


@torch.no_grad()
def null_sample_grid(model, data_in, root: str, n: int = 10, device: str | torch.device = "cpu") -> dict:
    """``null_samples.png`` in ``root``: rows x, its null-sample, its reconstruction, for the first n examples.
    Returns the mean absolute pixel change that null-sampling makes, and the reconstruction error."""
    batch = fetch_batch(data_in, np.arange(min(n, len(data_in))), keys=("image", "s"))
    x, s = batch["image"].to(device), torch.as_tensor(batch["s"]).long().to(device)
    was_training = model.training
    model.eval()
    try:
        null, reconstruction = model.null_sample(x), model.reconstruct(x, s)
    finally:
        model.train(was_training)
    save_rows(os.path.join(root, "null_samples.png"), [x, null, reconstruction])
    return {"null_sample_change": float((null - x).abs().mean()),
            "reconstruction_error": float((reconstruction - x).abs().mean())}
