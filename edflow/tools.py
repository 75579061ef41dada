"""``edeval`` (evaluate a run's checkpoint again, optionally with other callbacks) and ``edlist`` (the runs of a
log folder with their status, step and last metrics)."""
from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import time

from edflow import checkpoint as ckpt
from edflow import compat
from edflow.config import ConfigError, dump_yaml
from edflow.first_stage import LOG_ROOT_ENV_VAR, FirstStageError, default_log_root, looking_up_runs
from edflow.lock import RunLock
from edflow.main import build_config, build_iterator, seed_everything, start_checkpoint
from edflow.runner_keys import runner_value
from edflow.runs import eval_results, find_runs, last_metrics, read_status, results_at
from edflow.tables import format_number, markdown_table
from edflow.util import get_obj_from_str

# --- edeval ------------------------------------------------------------------------------------------------------
EDEVAL_EPILOG = """examples:
  edeval -p logs/<run>                                   the newest checkpoint, the run's own callbacks
  edeval -p logs/<run> -c best                           the checkpoint model selection kept (or -c 1200, -c <path>)
  edeval -p logs/<run> --callback fid=fairkit.metrics.callbacks.fid_callback --split test
"""


def edeval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edeval", description="Run a run's evaluation callbacks on one of its checkpoints "
                                "and write eval/<ts>/<step>/results.yaml.", epilog=EDEVAL_EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-p", "--project", required=True, help="the run folder (or one of its configs)")
    p.add_argument("-c", "--checkpoint", help="a checkpoint path, a step number, or 'best' (default: the newest)")
    p.add_argument("-b", "--base", nargs="*", default=[], metavar="CONFIG", help="configs merged over the run's own")
    p.add_argument("--callback", action="append", default=[], metavar="NAME=PATH",
                   help="evaluate with these callbacks instead of the run's (repeatable; PATH is pkg.module.function)")
    p.add_argument("--split", action="append", default=[], metavar="NAME",
                   help="evaluate only these datasets of the config (repeatable; default: every one but train)")
    p.add_argument("--log-root", default=os.environ.get(LOG_ROOT_ENV_VAR),
                   help="where first stages named by run name are looked up (default: $EDFLOW_LOG_ROOT, else the "
                        "folder that holds the run)")
    p.set_defaults(train=False, debug=False, name=None)
    return p


def named_callbacks(specs: list[str]) -> dict[str, str]:
    """``["mse=toy.mse_callback", "toy.mae"]`` -> {"mse": "toy.mse_callback", "mae": "toy.mae"}, each checked to
    import as a function."""
    callbacks = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        if not callable(get_obj_from_str(path)):
            raise ConfigError(f"--callback {spec!r}: {path} is not a function")
        callbacks[name or path.rsplit(".", 1)[-1]] = path
    return callbacks


def resolve_checkpoint(run: str, given: str | None) -> str | None:
    """A checkpoint path from a path, a step number or 'best'; None means the newest."""
    if given is None or os.path.isfile(given):
        return given
    folder = os.path.join(run, "train", "checkpoints")
    path = os.path.join(folder, "best.ckpt" if given == "best" else f"model-{given}.ckpt")
    if (given == "best" or given.isdigit()) and os.path.isfile(path):
        return path
    available = [os.path.basename(p) for p in ckpt.list_checkpoints(folder)]
    if os.path.isfile(os.path.join(folder, "best.ckpt")):
        available.append("best.ckpt")
    raise FirstStageError(f"-c {given!r}: no such checkpoint in {folder}; available: {available or 'none'} "
                          "(give a path, a step number or 'best')")


def keep_splits(config: dict, splits: list[str]) -> None:
    available = [name for name, spec in (config.get("datasets") or {}).items() if spec and name != "train"]
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise ConfigError(f"--split {unknown}: the config's evaluation datasets are {available}")
    config["datasets"] = {name: spec for name, spec in config["datasets"].items() if name in splits}


def log_root_holding(run: str) -> str:
    """The log root a run folder sits in (a debug run's: the folder above its debug_runs/)."""
    parent = os.path.dirname(os.path.abspath(run))
    return os.path.dirname(parent) if os.path.basename(parent) == "debug_runs" else parent


def evaluate_run(argv: list[str]) -> tuple[dict, str]:
    """Evaluate a run's checkpoint; returns the results and the results.yaml written."""
    args, overrides = edeval_parser().parse_known_args(argv)
    callbacks = named_callbacks(args.callback)
    config, run = build_config(args, overrides)
    log_root = args.log_root or log_root_holding(run)
    debug = os.path.basename(os.path.dirname(os.path.abspath(run))) == "debug_runs"  # its first stages: debug runs
    with looking_up_runs(log_root=log_root, debug=debug):
        return _evaluate(args, config, run, callbacks, log_root=log_root, debug=debug)


def _evaluate(args, config: dict, run: str, callbacks: dict[str, str], *, log_root: str,
              debug: bool) -> tuple[dict, str]:
    args.checkpoint = resolve_checkpoint(run, args.checkpoint)
    if args.split:
        keep_splits(config, args.split)
    if callbacks:  # recorded in the eval config written below
        config.setdefault("eval_pipeline", {})["callbacks"] = callbacks
    with RunLock(run):  # evaluating writes into the run: not while another process does
        dump_yaml(config, os.path.join(run, "configs", f"eval_{time.strftime('%Y-%m-%dT%H-%M-%S')}.yaml"))
        seed_everything(int(runner_value(config, "seed")))
        iterator = build_iterator(config, run, train=False, log_root=log_root, debug=debug)
        if callbacks:  # replaces the iterator's own callbacks too, not only those the config names
            iterator.get_callbacks = lambda: {name: get_obj_from_str(path) for name, path in callbacks.items()}
        compat.restore(iterator, start_checkpoint(args, iterator))
        results = iterator.evaluate_all()
        iterator.logger.close()
    if not results:
        raise ConfigError(f"run {run!r} has no evaluation dataset (datasets other than train) to evaluate on")
    return results, eval_results_path(run, iterator.global_step)


def eval_results_path(run: str, step: int) -> str:
    return [r.path for r in eval_results(run) if r.step == step][-1]


def edeval_main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        results, path = evaluate_run(argv)
    except (ConfigError, FirstStageError, ckpt.CheckpointError, ImportError) as error:
        print(f"edeval: error: {error}", file=sys.stderr)
        sys.exit(2)
    except OSError as error:  # safe_io.WriteError: a full disk, one line
        print(f"edeval: error: {error}", file=sys.stderr)
        sys.exit(1)
    for key, value in sorted(results.items()):
        print(f"{key}: {value:.6g}")
    print(f"edeval: wrote {path}", file=sys.stderr)


# --- edlist ------------------------------------------------------------------------------------------------------
def edlist_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edlist", description="The runs under a log folder: name, status, step and "
                                "last metrics.")
    p.add_argument("roots", nargs="*", default=[default_log_root()],
                   help="log folders or run folders (default: $EDFLOW_LOG_ROOT, else logs)")
    p.add_argument("--debug", action="store_true", help="also list the runs under <root>/debug_runs")
    p.add_argument("--metrics", nargs="*", default=None, metavar="PATTERN",
                   help="which metrics to show, as shell patterns (default: evaluation metrics, else training ones)")
    return p


def shown_metrics(metrics: dict[str, float], patterns: list[str] | None) -> dict[str, float]:
    if patterns:
        return {k: v for k, v in metrics.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
    evaluation = {k: v for k, v in metrics.items() if not k.startswith("train/")}
    return evaluation or metrics


def run_row(run: str, patterns: list[str] | None) -> dict:
    """One line of edlist: name, status, step and the last metrics of a run."""
    status = read_status(run)
    metrics = last_metrics(run)
    step = status.get("step")
    if step is None:
        evaluated = results_at(run)
        step = evaluated[0] if evaluated else ""
    shown = shown_metrics(metrics, patterns)
    shown_status = status["status"]
    if shown_status == "failed" and status.get("reason"):
        shown_status = f"failed: {one_line(str(status['reason']))}"
    return {"name": os.path.basename(os.path.normpath(run)), "status": shown_status, "step": step,
            "metrics": ", ".join(f"{k}={format_number(v)}" for k, v in sorted(shown.items()))}


def one_line(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def edlist_main(argv: list[str] | None = None) -> None:
    args = edlist_parser().parse_args(sys.argv[1:] if argv is None else argv)
    roots = list(args.roots)
    if args.debug:
        roots += [os.path.join(r, "debug_runs") for r in args.roots if os.path.isdir(os.path.join(r, "debug_runs"))]
    try:
        runs = find_runs(roots)
    except FileNotFoundError as error:
        print(f"edlist: error: {error}", file=sys.stderr)
        sys.exit(2)
    if not runs:
        print(f"edlist: no runs under {', '.join(roots)}", file=sys.stderr)
        return
    rows = [run_row(run, args.metrics) for run in runs]
    print(markdown_table(["name", "status", "step", "metrics"], [[r[c] for c in ("name", "status", "step", "metrics")]
                                                                 for r in rows]))
