"""Reading run folders: their status, config, logged scalars and evaluation results (for edlist, edeval, report,
edflow.launch and the methods' scripts); finding runs by name under a log root, and the ``--log-root`` option.

A run folder, as the runner writes it::

    <ts>_<name>/configs/train_<ts>.yaml   status.yaml   metrics.jsonl   train/best.yaml
                eval/<session ts>/<step>/results.yaml   train/checkpoints/model-<step>.ckpt
"""
from __future__ import annotations

import argparse
import glob
import os
import socket
import re
from dataclasses import dataclass
from typing import Mapping

import yaml

from edflow.first_stage import LOG_ROOT_ENV_VAR, FirstStageError, default_log_root, latest_config_path
from edflow.lock import pid_alive
from edflow.logger import read_metrics

RUN_NAME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d_(?P<name>.+)$")
# A trailing seed (``_seed3``, ``-s3``) or the ``_1`` the runner adds when two runs start within one second.
SEED_SUFFIX = re.compile(r"[_-](?:seed|s)?\d+$")
BOOKKEEPING_KEYS = ("step", "time", "epoch")
# --- the log root ------------------------------------------------------------------------------------------------
def add_log_root_argument(parser: argparse.ArgumentParser, *, help: str = "where run folders are (and go)") -> None:
    """``--log-root`` for a command line, with the runner's default (:func:`edflow.first_stage.default_log_root`).
    Read when the command line is parsed, so that everything after gets the log root as an argument."""
    parser.add_argument("--log-root", default=default_log_root(),
                        help=f"{help} (default: ${LOG_ROOT_ENV_VAR}, else logs)")


def runs_named(*, name: str, log_root: str, since: str | None = None) -> list[str]:
    """Run folders ``<timestamp>_<name>`` (or ``..._<name>_<k>``, two runs started within one second) directly
    under ``log_root``, oldest first; ``since``: only those stamped at or after that timestamp."""
    if not os.path.isdir(log_root):
        return []
    found = []
    for folder in os.listdir(log_root):
        match = RUN_NAME.match(folder)
        if not match or not is_run_folder(os.path.join(log_root, folder)):
            continue
        named = match.group("name") == name or re.fullmatch(re.escape(name) + r"_\d+", match.group("name"))
        if named and (since is None or folder[:len(since)] >= since):
            found.append(os.path.join(log_root, folder))
    return sorted(found, key=os.path.basename)


def is_run_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "configs")) or os.path.isfile(os.path.join(path, "status.yaml"))


def find_runs(paths: list[str]) -> list[str]:
    """Run folders among ``paths``: a run folder stands for itself, any other folder for the runs inside it."""
    runs = []
    for path in paths:
        path = os.path.normpath(path)
        if is_run_folder(path):
            runs.append(path)
        elif os.path.isdir(path):
            runs.extend(os.path.join(path, f) for f in sorted(os.listdir(path)) if is_run_folder(os.path.join(path, f)))
        else:
            raise FileNotFoundError(f"{path!r} is neither a run folder nor a folder of runs (such as logs/)")
    return runs


def read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def run_config(run: str) -> dict:
    """The run's newest training config, or {} for a folder without one."""
    try:
        return read_yaml(latest_config_path(run))
    except FirstStageError:
        return {}


def experiment_of(run: str, config: Mapping | None = None) -> str:
    """The config's experiment_name, else the folder name without its timestamp and seed suffix."""
    config = run_config(run) if config is None else config
    if config.get("experiment_name"):
        return str(config["experiment_name"])
    name = os.path.basename(os.path.normpath(run))
    match = RUN_NAME.match(name)
    name = match.group("name") if match else name
    return SEED_SUFFIX.sub("", name) or name


# --- status ------------------------------------------------------------------------------------------------------
def read_status(run: str) -> dict:
    """status.yaml, with ``died`` for a run that says running but whose process is gone, and ``unknown`` for a
    folder without status (a run that never reached its first step)."""
    status = read_yaml(os.path.join(run, "status.yaml"))
    if not status:
        return {"status": "unknown"}
    on_this_host = status.get("host") in (None, socket.gethostname())  # other hosts' pids mean nothing here
    if (status.get("status") == "running" and status.get("pid") is not None and on_this_host
            and not pid_alive(status["pid"])):
        status = {**status, "status": "died"}
    return status


# --- scalars -----------------------------------------------------------------------------------------------------
def scalar_series(run: str) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar of metrics.jsonl as (steps, values) in step order. A step logged twice (a resumed run repeats the
    steps after its last checkpoint; edeval re-evaluates an old step) keeps the value logged last."""
    by_step: dict[str, dict[int, float]] = {}
    for record in read_metrics(run):
        for key, value in record.items():
            if key not in BOOKKEEPING_KEYS and isinstance(value, (int, float)):
                by_step.setdefault(key, {})[int(record.get("step", 0))] = float(value)
    return {key: (sorted(values), [values[s] for s in sorted(values)]) for key, values in by_step.items()}


def last_metrics(run: str) -> dict[str, float]:
    """Every scalar's value at the last step it was logged at."""
    return {key: values[-1] for key, (_, values) in scalar_series(run).items()}


# --- evaluation results ------------------------------------------------------------------------------------------
@dataclass
class EvalResult:
    step: int
    session: str
    path: str
    values: dict[str, float]


def eval_results(run: str) -> list[EvalResult]:
    """Every eval/<session>/<step>/results.yaml of a run, oldest step first (sessions in time order per step)."""
    results = []
    for path in glob.glob(os.path.join(run, "eval", "*", "*", "results.yaml")):
        step_folder = os.path.dirname(path)
        if not os.path.basename(step_folder).isdigit():
            continue
        content = read_yaml(path)
        values = {k: float(v) for k, v in content.items() if k not in BOOKKEEPING_KEYS and isinstance(v, (int, float))}
        results.append(EvalResult(int(os.path.basename(step_folder)), os.path.basename(os.path.dirname(step_folder)),
                                  path, values))
    return sorted(results, key=lambda r: (r.step, r.session))


def results_at(run: str, step: int | None = None) -> tuple[int, dict[str, float]] | None:
    """The evaluation scalars at ``step`` (default: the last step evaluated), merged over every evaluation of that
    step (a later one, e.g. by edeval, wins per key); None when the run has no evaluation there."""
    results = eval_results(run)
    if step is None and results:
        step = results[-1].step
    merged: dict[str, float] = {}
    for result in results:
        if result.step == step:
            merged.update(result.values)
    return (step, merged) if merged else None


def best_record(run: str) -> dict | None:
    """Model selection's record train/best.yaml (step, epoch, metric, value, results), or None without one."""
    best = read_yaml(os.path.join(run, "train", "best.yaml"))
    return best if best and "results" in best else None


def best_results(run: str) -> tuple[int, dict[str, float]] | None:
    """The evaluation scalars at the checkpoint that model selection kept (train/best.yaml), or None."""
    best = best_record(run)
    if best is None:
        return None
    return int(best.get("step", -1)), {k: float(v) for k, v in best["results"].items() if isinstance(v, (int, float))}
