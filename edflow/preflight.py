"""The preflight: before a run folder exists, resolve everything the config needs and report all that is missing at
once, each with where to put it or which config to train first.

Checked: the device; every dataset the run will read (built here, and handed to the run); every first stage (its
run and checkpoint); every weights file the config names (keys ending in ``weights``, or files below such a key);
and whatever the model, iterator and loss classes check in their ``preflight(config) -> list[str]`` hooks (files a
null setting falls back to, optional packages).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

from edflow import checkpoint as ckpt
from edflow.config import ConfigError
from edflow.data.dataset import DataError
from edflow.device import device_problem
from edflow.first_stage import FirstStageError, is_single_stage, resolve_run, resolve_stage, run_folder_of
from edflow.runner_keys import runner_value
from edflow.util import get_obj_from_str

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".pkl", ".bin", ".npz", ".safetensors")
HOOK_KEYS = ("model", "iterator", "loss")
SKIPPED_SECTIONS = ("debug", "first_stage")  # debug: merged only under -d; first stages: checked as stages


class PreflightError(ConfigError):
    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(problems) == 1 and "\n" not in str(problems[0]).strip():  # one line, as every other config error
            super().__init__(f"{str(problems[0]).strip()} (found by the preflight; no run folder was made)")
            return
        lines = [f"the preflight found {len(problems)} problem(s); no run folder was made:"]
        for i, problem in enumerate(problems, 1):
            text = str(problem).strip().replace("\n", "\n     ")
            lines.append(f"  {i}. {text}")
        super().__init__("\n".join(lines))


@dataclass
class Stage:
    name: str | None  # None for a single first_stage section
    run: str | None
    checkpoint: str


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    datasets: dict = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise PreflightError(self.problems)


def stage_specs(spec) -> list[tuple[str | None, Mapping]]:
    if not spec:
        return []
    if not isinstance(spec, Mapping):
        raise ConfigError(f"first_stage must be a mapping, got {spec!r}")
    if is_single_stage(spec):
        return [(None, spec)]
    return [(name, sub) for name, sub in spec.items()]


def check_stages(config: Mapping, report: Preflight, *, log_root: str | None = None,
                 debug: bool | None = None) -> None:
    try:
        specs = stage_specs(config.get("first_stage"))
    except ConfigError as error:
        report.problems.append(str(error))
        return
    for name, spec in specs:
        where = "first_stage" + (f"/{name}" if name else "")
        if not isinstance(spec, Mapping):
            report.problems.append(f"{where} must be a mapping such as {{run: <run name>}}, got {spec!r}")
            continue
        try:
            _, checkpoint = resolve_stage(spec, log_root=log_root, debug=debug)
            problem = ckpt.damage(checkpoint)
            if problem:
                raise FirstStageError(f"checkpoint {checkpoint} cannot be used: {problem}")
            run = None
            if "run" in spec:
                run = run_folder_of(resolve_run(str(spec["run"]), log_root=log_root, debug=debug))
            report.stages.append(Stage(name, run, checkpoint))
        except (FirstStageError, ConfigError) as error:
            report.problems.append(f"{where}: {error}")


def named_files(config, prefix: str = "", under_weights: bool = False) -> list[tuple[str, str]]:
    """(config key, path) of every weights file the config names."""
    found = []
    if not isinstance(config, Mapping):
        return found
    for key, value in config.items():
        if not prefix and key in SKIPPED_SECTIONS:
            continue
        path = f"{prefix}{key}"
        weights = under_weights or str(key).endswith("weights")
        if isinstance(value, Mapping):
            found += named_files(value, path + "/", weights)
        elif weights and isinstance(value, str) and value.endswith(WEIGHT_SUFFIXES):
            found.append((path, value))
    return found


def check_files(config: Mapping, report: Preflight) -> None:
    for key, path in named_files(config):
        reported = any(problem.startswith(f"{key}:") for problem in report.problems)  # by a hook, with its source
        if not reported and not os.path.isfile(os.path.expanduser(path)):
            report.problems.append(f"{key}: the file {path} does not exist ({os.path.abspath(path)}); put the file "
                                   f"there, or set {key} to where it is")


def check_hooks(config: Mapping, report: Preflight) -> None:
    seen = set()
    for key in HOOK_KEYS:
        path = config.get(key)
        if not isinstance(path, str) or path in seen:
            continue
        seen.add(path)
        hook = getattr(get_obj_from_str(path), "preflight", None)
        if callable(hook):
            report.problems.extend(hook(config) or [])


def check_datasets(config: Mapping, report: Preflight, build: Callable, train: bool) -> None:
    failed: dict[str, list[str]] = {}  # the message -> the splits it holds for (train and test often share one)
    for split, spec in (config.get("datasets") or {}).items():
        if not spec or (split == "train" and not train):
            continue
        try:
            report.datasets[split] = build(spec, config, f"datasets/{split}")
        except (DataError, FirstStageError, FileNotFoundError) as error:
            failed.setdefault(str(error), []).append(f"datasets/{split}")
    report.problems.extend(f"{', '.join(splits)}: {message}" for message, splits in failed.items())


def preflight(config: Mapping, *, build_dataset: Callable | None = None, train: bool = True,
              log_root: str | None = None, debug: bool | None = None) -> Preflight:
    """Everything the run needs, checked; ``report.problems`` lists what is missing (empty when all is there).
    ``log_root``, ``debug``: where first stages named by run name are looked up (see :mod:`edflow.first_stage`)."""
    report = Preflight()
    problem = device_problem(runner_value(config, "device"))
    if problem:
        report.problems.append(problem)
    check_stages(config, report, log_root=log_root, debug=debug)
    check_hooks(config, report)
    check_files(config, report)
    if build_dataset is not None:
        check_datasets(config, report, build_dataset, train)
    return report


def summary(report: Preflight, device: str) -> str:
    lines = [f"device: {device}"]
    for split, dataset in report.datasets.items():
        size = len(dataset) if hasattr(dataset, "__len__") else "?"
        lines.append(f"datasets/{split}: {type(dataset).__name__}, {size} examples")
    for stage in report.stages:
        lines.append(stage_line(stage))
    return "\n".join(lines)


def stage_line(stage: Stage) -> str:
    where = "first_stage" + (f"/{stage.name}" if stage.name else "")
    return f"{where}: run {stage.run or '-'}, checkpoint {stage.checkpoint}"


def record_stages(config: dict, stages: list[Stage]) -> None:
    """Pin the run and checkpoint each stage resolved to in the config written to the run folder, so that what was
    used is on record and a resumed run keeps the same stages."""
    for stage in stages:
        spec = config["first_stage"] if stage.name is None else config["first_stage"][stage.name]
        if stage.run is not None:
            spec["run"] = stage.run
        spec["checkpoint"] = stage.checkpoint
