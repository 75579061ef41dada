"""Launching Biased-MNIST runs through the edflow runner and reading their results at the best validation epoch;
shared by ``end.demo`` and ``end.sweep``."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


@dataclass
class Run:
    """One training run in a subprocess; its folder is ``<log_root>/<timestamp>_<name>``."""
    name: str
    log_root: str
    process: subprocess.Popen
    log_path: str
    started: float = field(default_factory=time.time)

    @property
    def folder(self) -> str | None:
        found = sorted(glob.glob(os.path.join(self.log_root, f"*_{self.name}")))
        return found[-1] if found else None

    def status(self) -> dict:
        folder = self.folder
        path = os.path.join(folder, "status.yaml") if folder else ""
        return load_yaml(path) if os.path.isfile(path) else {}

    def wait(self) -> str:
        """Block until the run ends; its folder, or an error quoting the end of its log."""
        code = self.process.wait()
        if code != 0 or self.folder is None:
            with open(self.log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"run {self.name} failed (exit code {code}); end of {self.log_path}:\n{tail}")
        return self.folder


def start_run(method: str, name: str, log_root: str, overrides: list[str], cpu: bool = True,
              threads: int = 1) -> Run:
    """Train ``method`` with the edflow runner in a subprocess using ``threads`` CPU threads; output goes to
    ``<log_root>/<name>.log``."""
    os.makedirs(log_root, exist_ok=True)
    command = [sys.executable, "-m", "edflow", "-b", *config_files(method, cpu), "-t", "--log-root", log_root,
               "-n", name, *overrides]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                   "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    log_path = os.path.join(log_root, f"{name}.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO)
    return Run(name, log_root, process, log_path)


def load_yaml(path: str) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def best_results(folder: str) -> dict:
    """Accuracies (fractions) at the epoch with the best validation accuracy, from ``train/best.yaml``."""
    path = os.path.join(folder, "train", "best.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: the run in {folder} has not finished an evaluation with "
                                f"model_selection on")
    best = load_yaml(path)
    results = best["results"]
    return {"epoch": best["epoch"], "step": best["step"], **{key: results[metric] for key, metric in METRICS.items()}}


def result_images(folder: str, step: int) -> list[str]:
    """Per-colour accuracy plots at ``step`` and the last grid of training inputs."""
    plots = sorted(glob.glob(os.path.join(folder, "eval", "*", str(step), "*", "per_color_accuracy.png")))
    inputs = sorted(glob.glob(os.path.join(folder, "train", "log_op", "inputs_*.png")))
    return plots + inputs[-1:]


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt (in the main thread), so that run_all's cleanup stops the child runs
    instead of leaving them running."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


@dataclass(frozen=True)
class RunSpec:
    method: str
    name: str
    overrides: tuple[str, ...] = ()


def run_all(specs: list[RunSpec], log_root: str, jobs: int = 1, cpu: bool = True, threads: int = 1,
            report_every: float = 30.0, on_finish=None) -> dict[str, str]:
    """Train every spec, ``jobs`` at a time; returns {name: run folder}. ``on_finish(spec, folder)`` is called as
    each run ends. If one run fails or the user interrupts, the others are stopped (they save a checkpoint)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be at least 1")
    pending, active, folders = list(specs), {}, {}
    last_report = time.time()
    stop_on_sigterm()
    try:
        while pending or active:
            while pending and len(active) < jobs:
                spec = pending.pop(0)
                active[spec] = start_run(spec.method, spec.name, log_root, list(spec.overrides), cpu, threads)
                print(f"started {spec.name} (log: {active[spec].log_path})", flush=True)
            time.sleep(1.0)
            for spec, run in list(active.items()):
                if run.process.poll() is not None:
                    del active[spec]
                    folders[spec.name] = run.wait()
                    print(f"finished {spec.name} in {time.time() - run.started:.0f} s: {folders[spec.name]}",
                          flush=True)
                    if on_finish is not None:
                        on_finish(spec, folders[spec.name])
            if active and time.time() - last_report > report_every:
                last_report = time.time()
                print("  " + "; ".join(f"{spec.name}: epoch {run.status().get('epoch', 0)}, "
                                       f"{time.time() - run.started:.0f} s" for spec, run in active.items()),
                      flush=True)
    finally:
        for run in active.values():
            if run.process.poll() is None:
                run.process.terminate()
        for run in active.values():
            run.process.wait()
    return folders
