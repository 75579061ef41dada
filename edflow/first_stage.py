"""Chaining: a ``first_stage:`` section names an earlier run, whose model is rebuilt, loaded and frozen.

Accepted forms::

    first_stage: {run: logs/<folder> | logs/<folder>/configs/train_<ts>.yaml | <run name>, checkpoint: <path> | best}
    first_stage: {checkpoint: <path>, model: iin.models.ae.Model, subconfig: {...} | <yaml path>}   # original IIN form
    first_stage: {classifier: {run: ...}, gan: {run: ...}}                                          # several named stages

A run named by run name is looked up under a log root, and under its debug_runs/ as well for debug runs. Every
function that looks runs up takes the keywords ``log_root=`` and ``debug=``. Given none, it uses those of the run in
progress (the runner wraps each run in :func:`looking_up_runs`, so that method code inside a run, e.g. a callback
that names a classifier run, resolves names where the run's ``--log-root`` says), and outside a run the command
line's default, :func:`default_log_root`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator, Mapping

import torch

from edflow import checkpoint as ckpt
from edflow.config import ConfigError, load_yaml
from edflow.util import get_obj_from_str

STAGE_KEYS = {"run", "checkpoint", "model", "subconfig", "config"}


class FirstStageError(FileNotFoundError):
    pass


def is_single_stage(spec: Mapping) -> bool:
    return bool(set(spec) & STAGE_KEYS)


def run_folder_of(path: str) -> str:
    """A run folder from a run folder or from one of its config files."""
    path = os.path.normpath(path)
    if os.path.isfile(path):
        parent = os.path.dirname(path)
        return os.path.dirname(parent) if os.path.basename(parent) == "configs" else parent
    return path


def latest_config_path(run: str) -> str:
    folder = os.path.join(run, "configs")
    configs = sorted(f for f in os.listdir(folder) if f.endswith(".yaml")) if os.path.isdir(folder) else []
    if not configs:
        raise FirstStageError(f"run folder {run!r} holds no configs/*.yaml; is it a run folder made by `edflow -t`?")
    return os.path.join(folder, configs[-1])


LOG_ROOT_ENV_VAR = "EDFLOW_LOG_ROOT"


def default_log_root() -> str:
    """The default of the command lines' ``--log-root``: $EDFLOW_LOG_ROOT, else ``logs``. The variable is read only
    as such a default; the runner hands the log root on explicitly and never sets the variable."""
    return os.environ.get(LOG_ROOT_ENV_VAR, "logs")


_runs_in_progress: list[tuple[str, bool]] = []  # (log root, debug) of the runs in progress, innermost last


@contextlib.contextmanager
def looking_up_runs(*, log_root: str, debug: bool = False) -> Iterator[None]:
    """Within: lookups given no ``log_root=``/``debug=`` use these (the runner wraps each run in it)."""
    _runs_in_progress.append((str(log_root), bool(debug)))
    try:
        yield
    finally:
        _runs_in_progress.pop()


def log_roots(debug: bool | None = None, *, log_root: str | None = None) -> list[str]:
    """Where runs named by run name are looked for: the log root, and its debug_runs/ only for -d runs (so a smoke
    run never becomes a real run's first stage)."""
    current_root, current_debug = _runs_in_progress[-1] if _runs_in_progress else (None, False)
    root = log_root if log_root is not None else current_root if current_root is not None else default_log_root()
    debug = current_debug if debug is None else debug
    return [root, os.path.join(root, "debug_runs")] if debug else [root]


def find_run(name: str, debug: bool | None = None, *, log_root: str | None = None) -> str | None:
    """The newest run folder named ``<timestamp>_<name>`` with a checkpoint under the log root (and under its
    debug_runs/ in -d runs)."""
    candidates = [os.path.join(root, folder) for root in log_roots(debug, log_root=log_root) if os.path.isdir(root)
                  for folder in os.listdir(root) if folder.endswith(f"_{name}") and folder[:4].isdigit()]
    candidates = [c for c in candidates if ckpt.latest_checkpoint(os.path.join(c, "train", "checkpoints"))]
    return max(candidates, key=os.path.basename) if candidates else None


def resolve_run(given: str, *, log_root: str | None = None, debug: bool | None = None) -> str:
    """``given`` if it is a path, else the run of that name under the log root."""
    if os.path.exists(given):
        return given
    if os.sep not in given:
        found = find_run(given, debug, log_root=log_root)
        if found:
            return found
    roots = log_roots(debug, log_root=log_root)
    ignored = ""
    if os.sep not in given and len(roots) == 1 and find_run(given, debug=True, log_root=log_root):
        ignored = (f" (a debug run {find_run(given, debug=True, log_root=log_root)} exists; debug runs are chained "
                   f"only in -d runs)")
    raise FirstStageError(
        f"first_stage run {given!r} was not found (neither a folder nor the name of a run with a checkpoint under "
        f"{' or '.join(os.path.abspath(root) for root in roots)}){ignored}. "
        f"Train that stage first: `{train_command(given)}`, or set first_stage.run=logs/<its folder>.")


def train_command(name: str) -> str:
    """The command that trains the run ``name`` (a ``_cpu`` name is a paper config with its CPU overlay)."""
    if name.endswith("_cpu"):
        base = name[:-len("_cpu")]
        return f"edflow -b configs/{base}.yaml configs/cpu/{base}.yaml -t"
    return f"edflow -b configs/{name}.yaml -t"


def stage_checkpoint(run: str, given: str | None) -> str | None:
    """``checkpoint:`` as given, ``best`` for the run's model-selection checkpoint, or else its newest good one."""
    folder = os.path.join(run, "train", "checkpoints")
    if given == "best":
        best = os.path.join(folder, "best.ckpt")
        if not os.path.isfile(best):
            raise FirstStageError(f"first_stage run {run!r} has no best.ckpt: its config sets no model_selection, "
                                  f"or no evaluation has finished yet; drop `checkpoint: best` to use the newest")
        return best
    return given or ckpt.latest_checkpoint(folder)


def resolve_stage(spec: Mapping, *, log_root: str | None = None, debug: bool | None = None) -> tuple[dict, str]:
    """The stage's config and checkpoint path, with errors that say what is missing."""
    if "run" in spec:
        given = resolve_run(str(spec["run"]), log_root=log_root, debug=debug)
        run = run_folder_of(given)
        config_path = given if os.path.isfile(given) else latest_config_path(run)
        config = load_yaml(config_path)
        checkpoint = stage_checkpoint(run, spec.get("checkpoint"))
        if checkpoint is None:
            raise FirstStageError(f"first_stage run {run!r} has no checkpoint under train/checkpoints/; "
                                  f"its training did not save a step yet (finish or resume it with edflow -p {run} -t)")
    elif "checkpoint" in spec and "model" in spec:
        sub = spec.get("subconfig", spec.get("config", {}))
        config = load_yaml(sub) if isinstance(sub, str) else dict(sub or {})
        config.setdefault("model", spec["model"])
        checkpoint = spec["checkpoint"]
    else:
        raise ConfigError("first_stage needs either `run: logs/<folder>` (optionally with `checkpoint:`) or "
                          "`checkpoint:` together with `model:` and `subconfig:`")
    if "model" in spec and "run" in spec:
        config["model"] = spec["model"]
    if not os.path.isfile(str(checkpoint)):
        raise FirstStageError(f"first_stage checkpoint {checkpoint!r} does not exist")
    if not config.get("model"):
        raise ConfigError(f"the config of first_stage {spec.get('run', checkpoint)!r} names no model; add "
                          f"`model: <dotted class path>` to the first_stage section")
    return config, str(checkpoint)


def state_mismatch(model: torch.nn.Module, state: Mapping) -> str | None:
    """The first difference between a model's parameters and a state dict, in words; None if they fit."""
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state:
            return f"{key!r} is missing from the checkpoint"
        if hasattr(state[key], "shape") and tuple(state[key].shape) != tuple(value.shape):
            return (f"{key!r} has shape {tuple(state[key].shape)} in the checkpoint but {tuple(value.shape)} "
                    f"in the model")
    unexpected = [key for key in state if key not in expected]
    return f"the checkpoint holds {unexpected[0]!r}, which the model does not have" if unexpected else None


def load_stage(spec: Mapping, device: str = "cpu", *, log_root: str | None = None,
               debug: bool | None = None) -> torch.nn.Module:
    """Build the stage's model from its own config, load its weights and freeze it."""
    config, checkpoint = resolve_stage(spec, log_root=log_root, debug=debug)
    model = get_obj_from_str(config["model"])(config)
    state = ckpt.model_state_dict(ckpt.load(checkpoint))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # torch lists every key; name the first one and say what to do
        mismatch = state_mismatch(model, state) or str(error).splitlines()[0]
        raise FirstStageError(
            f"first_stage {spec.get('run', config['model'])!r}: checkpoint {checkpoint} does not fit the model "
            f"{config['model']} built from the stage's config: {mismatch}. Give the stage the config it was trained "
            f"with (its run's configs/*.yaml), or retrain it") from error
    model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model.stage_config = config
    model.stage_checkpoint = checkpoint
    return model


def load_first_stages(spec: Mapping | None, device: str = "cpu", *, log_root: str | None = None,
                      debug: bool | None = None):
    """None, one frozen model, or a dict of named frozen models, as the section describes."""
    if not spec:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigError(f"first_stage must be a mapping, got {spec!r}")
    if is_single_stage(spec):
        return load_stage(spec, device, log_root=log_root, debug=debug)
    for name, sub in spec.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(f"first_stage/{name} must be a mapping such as {{run: logs/<folder>}}, got {sub!r}; "
                              f"a single stage takes the keys {sorted(STAGE_KEYS)}")
    return {name: load_stage(sub, device, log_root=log_root, debug=debug) for name, sub in spec.items()}
