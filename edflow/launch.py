"""Launching training runs of the edflow runner from Python: one run, a chain of runs, or many runs at once.

- ``launch(..., in_process=True)``: ``edflow.main.run`` in this process. For chains whose stages run one after the
  other (a stage's first stages are the runs before it) and whose CPU time is measured in this process.
- ``launch(..., in_process=False)`` / :func:`start`: ``python -m edflow`` in a subprocess, its output in
  ``<log_root>/<name>.log``. :func:`start` returns at once, so that :func:`launch_all` keeps ``jobs`` runs going
  (sweeps), each with its own thread count.

A run that fails raises :class:`LaunchError`, naming the run and its log.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from edflow.console import FILE_NAME as CONSOLE_LOG
from edflow.main import run
from edflow.runs import read_status, runs_named

# The folder holding the edflow package: a subprocess must import this project, whatever its working directory.
PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAMP = "%Y-%m-%dT%H-%M-%S"  # the runner's run-folder timestamp


class LaunchError(RuntimeError):
    """A launched run failed; the message names the run and where its log is."""


@dataclass(frozen=True)
class Launch:
    """One training run: config files (deep-merged left to right), run name, ``key=value`` overrides."""
    configs: tuple[str, ...]
    name: str
    overrides: tuple[str, ...] = ()

    def __post_init__(self):  # tuples, so that a launch can be a dict key (given lists would not hash)
        object.__setattr__(self, "configs", tuple(self.configs))
        object.__setattr__(self, "overrides", tuple(self.overrides))


def runner_argv(configs: Sequence[str], overrides: Sequence[str] = (), *, name: str, log_root: str,
                debug: bool = False) -> list[str]:
    """The ``edflow`` command line that trains ``configs`` as run ``name`` under ``log_root``."""
    return ["-b", *configs, "-t", "-n", name, "--log-root", log_root, *(["-d"] if debug else []), *overrides]


def launch(configs: Sequence[str], overrides: Sequence[str] = (), *, name: str, log_root: str,
           in_process: bool = True, debug: bool = False, threads: int | None = None, cwd: str | None = None) -> str:
    """Train one run to its end and return its folder; :class:`LaunchError` if it fails. ``threads`` and ``cwd``
    apply to a subprocess only (in this process, set them yourself: they are process-wide)."""
    if not in_process:
        return start(configs, overrides, name=name, log_root=log_root, debug=debug, threads=threads, cwd=cwd).wait()
    if threads is not None or cwd is not None:
        raise ValueError("threads= and cwd= need in_process=False: in this process they would change the caller's")
    try:
        return run(runner_argv(configs, overrides, name=name, log_root=log_root, debug=debug))
    except Exception as error:
        root = getattr(error, "run_root", None)  # set by the runner once the run folder exists
        where = (f"its log: {os.path.join(root, CONSOLE_LOG)}" if root else
                 "it failed before making a run folder, so the message here is all there is")
        raise LaunchError(f"run {name!r} failed: {type(error).__name__}: {error}; {where}") from error


@dataclass
class Started:
    """A run training in a subprocess (see :func:`start`)."""
    name: str
    log_root: str
    process: subprocess.Popen
    log_path: str
    debug: bool = False
    started: float = field(default_factory=time.time)

    @property
    def folder(self) -> str | None:
        """The newest run folder of this name made since the launch (None before the runner has made it)."""
        base = os.path.join(self.log_root, "debug_runs") if self.debug else self.log_root
        since = time.strftime(STAMP, time.localtime(self.started - 1))
        found = runs_named(name=self.name, log_root=base, since=since)
        return found[-1] if found else None

    def status(self) -> dict:
        folder = self.folder
        return read_status(folder) if folder else {}

    def wait(self) -> str:
        """Block until the run ends; its folder, or a LaunchError quoting the end of its log."""
        code = self.process.wait()
        folder = self.folder
        if code != 0 or folder is None:
            with open(self.log_path, errors="replace") as f:
                tail = f.read()[-3000:]
            raise LaunchError(f"run {self.name!r} failed (exit code {code}); its log: {self.log_path}; "
                              f"its end:\n{tail}")
        return folder


def start(configs: Sequence[str], overrides: Sequence[str] = (), *, name: str, log_root: str, debug: bool = False,
          threads: int | None = None, cwd: str | None = None) -> Started:
    """Start training in a subprocess (``threads`` CPU threads, if given); output goes to ``<log_root>/<name>.log``."""
    os.makedirs(log_root, exist_ok=True)
    command = [sys.executable, "-m", "edflow", *runner_argv(configs, overrides, name=name, log_root=log_root,
                                                             debug=debug)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PROJECT, os.environ.get("PYTHONPATH")]))}
    if threads is not None:
        environment.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log_path = os.path.join(log_root, f"{name}.log")
    started = time.time()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=cwd)
    return Started(name, log_root, process, log_path, debug, started)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt (in the main thread), so that launch_all's cleanup stops the child runs
    instead of leaving them running."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def launch_all(launches: Sequence[Launch], *, log_root: str, jobs: int = 1, threads: int | None = 1,
               debug: bool = False, cwd: str | None = None, report_every: float = 30.0,
               on_finish: Callable[[Launch, str], None] | None = None) -> dict[str, str]:
    """Train every launch in subprocesses, ``jobs`` at a time; returns {name: run folder}. ``on_finish(launch,
    folder)`` is called as each run ends. If one run fails or the user interrupts, the others are stopped (they
    save a checkpoint)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs} must be at least 1")
    pending, active, folders = list(launches), {}, {}
    last_report = time.time()
    stop_on_sigterm()
    try:
        while pending or active:
            while pending and len(active) < jobs:
                item = pending.pop(0)
                active[item] = start(item.configs, item.overrides, name=item.name, log_root=log_root, debug=debug,
                                     threads=threads, cwd=cwd)
                print(f"started {item.name} (log: {active[item].log_path})", flush=True)
            time.sleep(1.0)
            for item, run in list(active.items()):
                if run.process.poll() is not None:
                    del active[item]
                    folders[item.name] = run.wait()
                    print(f"finished {item.name} in {time.time() - run.started:.0f} s: {folders[item.name]}",
                          flush=True)
                    if on_finish is not None:
                        on_finish(item, folders[item.name])
            if active and time.time() - last_report > report_every:
                last_report = time.time()
                print("  " + "; ".join(f"{item.name}: epoch {run.status().get('epoch', 0)}, "
                                       f"{time.time() - run.started:.0f} s" for item, run in active.items()),
                      flush=True)
    finally:
        for run in active.values():
            if run.process.poll() is None:
                run.process.terminate()
        for run in active.values():
            run.process.wait()
    return folders
