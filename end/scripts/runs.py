"""Biased-MNIST runs of the edflow runner (launched by :mod:`edflow.launch`, in subprocesses) and their results at
the best validation epoch; shared by ``end.scripts.demo`` and ``end.scripts.sweep``."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

from edflow.launch import Launch, launch_all
from edflow.runs import best_record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHODS = ("vanilla", "end")
METRICS = {"validation": "validation/accuracy", "biased": "test_biased/accuracy",
           "unbiased": "test_unbiased/accuracy"}

# Tartaglione et al. (CVPR 2021), Biased MNIST, unbiased test accuracy (%) by rho; biased accuracy is ~100 for both.
PAPER_UNBIASED = {"vanilla": {0.999: 10.4, 0.997: 33.4, 0.995: 72.1, 0.99: 89.1},
                  "end": {0.999: 52.3, 0.997: 83.7, 0.995: 93.9, 0.99: 96.0}}


def config_files(method: str, cpu: bool) -> list[str]:
    """The paper config of ``method``, with its CPU-scale overlay when ``cpu``."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    files = [os.path.join(REPO, "configs", f"bmnist_{method}.yaml")]
    if cpu:
        files.append(os.path.join(REPO, "configs", "cpu", f"bmnist_{method}.yaml"))
    return files


def best_results(folder: str) -> dict:
    """Accuracies (fractions) at the epoch with the best validation accuracy, from ``train/best.yaml``."""
    best = best_record(folder)
    if best is None:
        raise FileNotFoundError(f"{os.path.join(folder, 'train', 'best.yaml')} is missing: the run in {folder} has "
                                f"not finished an evaluation with model_selection on")
    results = best["results"]
    return {"epoch": best["epoch"], "step": best["step"], **{key: results[metric] for key, metric in METRICS.items()}}


def result_images(folder: str, step: int) -> list[str]:
    """Per-colour accuracy plots at ``step`` and the last grid of training inputs."""
    plots = sorted(glob.glob(os.path.join(folder, "eval", "*", str(step), "*", "per_color_accuracy.png")))
    inputs = sorted(glob.glob(os.path.join(folder, "train", "log_op", "inputs_*.png")))
    return plots + inputs[-1:]


@dataclass(frozen=True)
class RunSpec:
    method: str
    name: str
    overrides: tuple[str, ...] = ()


def run_all(specs: list[RunSpec], log_root: str, jobs: int = 1, cpu: bool = True, threads: int = 1,
            report_every: float = 30.0, on_finish=None) -> dict[str, str]:
    """Train every spec in subprocesses with ``threads`` CPU threads each, ``jobs`` at a time (edflow.launch);
    returns {name: run folder}. ``on_finish(spec, folder)`` is called as each run ends."""
    launches = {Launch(tuple(config_files(spec.method, cpu)), spec.name, spec.overrides): spec for spec in specs}

    def finished(item: Launch, folder: str) -> None:
        if on_finish is not None:
            on_finish(launches[item], folder)

    return launch_all(list(launches), log_root=log_root, jobs=jobs, threads=threads, cwd=REPO,
                      report_every=report_every, on_finish=finished)
