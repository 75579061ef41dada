"""The ``edflow`` command: train (-t), evaluate (-p run), resume (-p run -t), with configs merged from -b."""
from __future__ import annotations

import argparse
import contextlib
import inspect
import itertools
import os
import random
import shlex
import socket
import sys
import time
import traceback
from typing import Mapping

import numpy as np
import torch

from edflow import checkpoint as ckpt
from edflow import compat
from edflow import console
from edflow import distributed as dist
from edflow.config import (ConfigError, apply_overrides, check_runner_keys, deep_merge, dump_yaml, load_configs,
                           load_yaml, parse_overrides, unknown_key_message, with_defaults)
from edflow.data.dataset import DataError
from edflow.device import resolve_device
from edflow.first_stage import (FirstStageError, default_log_root, latest_config_path, load_first_stages, looking_up_runs,
                                run_folder_of)
from edflow.iterators.template_iterator import EvaluationError
from edflow.lock import RunLock
from edflow.preflight import preflight, record_stages, stage_line, summary
from edflow.runner_keys import runner_value
from edflow.safe_io import WriteError, makedirs
from edflow.util import get_obj_from_str

DEBUG_SETTINGS = {"num_steps": 4, "eval_max_batches": 2, "log_freq": 1, "ckpt_freq": None}

EPILOG = """examples:
  edflow -b configs/mnist_ae.yaml -t                 train
  edflow -b configs/mnist_ae.yaml -t Model.z_dim=32  train with an override (also: --Model/z_dim 32)
  edflow --check -b configs/celeba_iin.yaml          only the preflight: are the data, weights, stages there?
  edflow -p logs/<run>                               evaluate the newest checkpoint of a run
  edflow -p logs/<run> -t                            resume training where it stopped
  edflow report logs/<run> logs/<run2>               tables and plots across runs
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edflow", description="Train and evaluate models described by YAML configs.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", "--base", nargs="*", default=[], metavar="CONFIG",
                   help="config files, deep-merged left to right")
    p.add_argument("-t", "--train", action="store_true", help="train (with -p: resume)")
    p.add_argument("-p", "--project", help="a run folder or its config: evaluate it, or resume it with -t")
    p.add_argument("-c", "--checkpoint", help="the checkpoint to start from or to evaluate")
    p.add_argument("-n", "--name", help="a name for the run folder")
    p.add_argument("-d", "--debug", action="store_true", help="a handful of steps, logs under logs/debug_runs/")
    p.add_argument("--check", action="store_true",
                   help="only the preflight: check the device, datasets, weights files and first stages, then exit")
    p.add_argument("--log-root", default=default_log_root(),
                   help="where run folders go, and where first stages named by run name are looked up "
                        "(default: $EDFLOW_LOG_ROOT, else logs)")
    return p


def build_config(args, overrides: list[str]) -> tuple[dict, str | None]:
    """The resolved config and, for -p, the run folder it belongs to."""
    run = None
    base: dict = {}
    if args.project:
        if not os.path.exists(args.project):
            raise ConfigError(f"-p {args.project!r}: no such run folder or config")
        run = run_folder_of(args.project)
        base = load_yaml(args.project if os.path.isfile(args.project) else latest_config_path(run))
    elif not args.base:
        raise ConfigError("give a config with -b configs/<dataset>_<method>.yaml, or a run folder with -p logs/<run>")
    config = deep_merge(base, load_configs(args.base))
    if args.debug:  # the config's own debug section, deep-merged; command-line overrides still win
        config = deep_merge(deep_merge(config, DEBUG_SETTINGS), config.get("debug") or {})
    config = apply_overrides(config, parse_overrides(overrides))
    check_runner_keys(config)
    config = with_defaults(config)
    for key in ("model", "iterator"):
        if not config.get(key):
            raise ConfigError(f"the config needs a {key!r} key (a dotted class path such as iin.models.ae.Model)")
    check_class_paths(config)
    return config, run


def check_class_paths(config: Mapping) -> None:
    """Import every class the run will build, so that a misspelt path fails before a run folder is made."""
    get_obj_from_str(config["model"])
    get_obj_from_str(config["iterator"])
    for split, spec in config["datasets"].items():
        if spec:
            get_obj_from_str(dataset_target(spec, f"datasets/{split}"))


def run_root(args, config: Mapping) -> str:
    """A new folder ``<log root>/<timestamp>_<name>``, created here so that two runs started within one second,
    even by two processes at once, never share one."""
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
    name = args.name or config.get("experiment_name") or (
        os.path.splitext(os.path.basename(args.base[-1]))[0] if args.base else "run")
    base = os.path.join(args.log_root, "debug_runs") if args.debug else args.log_root
    root = None
    if dist.is_main_process():
        makedirs(base)
        for suffix in itertools.count():
            root = os.path.join(base, f"{stamp}_{name}" + (f"_{suffix}" if suffix else ""))
            try:
                os.mkdir(root)
                break
            except FileExistsError:
                continue
            except OSError as error:
                raise WriteError(root, error, 0) from error
    return dist.broadcast_object(root)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dataset_target(spec, where: str = "dataset") -> str:
    """The class path of a dataset spec, or a ConfigError that says what the spec at ``where`` lacks."""
    if isinstance(spec, str):
        return spec
    form = "a dotted class path or {target: <path>, params: {...}}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be {form}, got {spec!r}")
    unknown = [key for key in spec if key not in ("target", "params")]
    if unknown:
        raise ConfigError(unknown_key_message(f"{where}/{unknown[0]}", [f"{where}/target", f"{where}/params"], where))
    if "target" not in spec:
        raise ConfigError(f"{where} needs a target (the dataset's dotted class path): {form}, got {spec!r}")
    if not isinstance(spec.get("params") or {}, Mapping):
        raise ConfigError(f"{where}/params must be a mapping of keyword arguments, got {spec['params']!r}")
    return spec["target"]


def instantiate_dataset(spec, config: Mapping, where: str = "dataset"):
    """``iin.data.MNISTTrain`` (constructed with the config, as edflow did) or ``{target: ..., params: {...}}``."""
    cls = get_obj_from_str(dataset_target(spec, where))
    if isinstance(spec, str):
        return cls(config=config)
    params = dict(spec.get("params") or {})
    signature = inspect.signature(cls)
    if "config" in signature.parameters:
        params["config"] = config
    try:
        signature.bind(**params)
    except TypeError as error:
        raise ConfigError(f"{where}/params do not fit {spec['target']}: {error}; "
                          f"its parameters are {list(signature.parameters)}") from None
    return cls(**params)


def build_iterator(config: dict, root: str, train: bool, datasets: dict | None = None, *, log_root: str | None = None,
                   debug: bool | None = None):
    """The iterator with its model, first stages and datasets (those not given are built here); first stages named
    by run name are looked up under ``log_root`` (see :mod:`edflow.first_stage` for the default)."""
    config["device"] = resolve_device(runner_value(config, "device"))  # callbacks read the concrete device
    datasets = dict(datasets or {})
    for split, spec in (config.get("datasets") or {}).items():
        if spec and (train or split != "train") and split not in datasets:
            datasets[split] = instantiate_dataset(spec, config, f"datasets/{split}")
    first_stage = load_first_stages(config.get("first_stage"), config["device"], log_root=log_root, debug=debug)
    model = get_obj_from_str(config["model"])(config)
    iterator_cls = get_obj_from_str(config["iterator"])
    compat.prepare_config(config, iterator_cls, datasets, train)
    return iterator_cls(config, root, model, datasets=datasets, first_stage=first_stage,
                        hook_freq=runner_value(config, "hook_freq"), num_epochs=runner_value(config, "num_epochs"))


def start_checkpoint(args, iterator) -> str | None:
    if args.checkpoint:
        problem = ckpt.damage(args.checkpoint)
        if problem:
            raise ckpt.CheckpointError(f"-c {args.checkpoint!r} cannot be used: {problem}")
        return args.checkpoint
    if args.project:
        found = ckpt.latest_checkpoint(iterator.checkpoint_dir)
        if found is None and not args.train:
            raise FirstStageError(f"run {args.project!r} has no checkpoint under train/checkpoints/ to evaluate")
        return found
    return None


def run(argv: list[str] | None = None) -> str | None:
    """Train, resume or evaluate as the command line says; returns the run folder (None for --check)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with console.capture() as log:  # the preflight's lines are held until the run folder exists
        return _run(argv, log)


def _run(argv: list[str], log: console.ConsoleLog) -> str | None:
    args, overrides = parser().parse_known_args(argv)
    # First stages named by run name are looked up under the log root (and under debug_runs/ only in -d runs); also
    # by method code that the run calls without passing the log root (datasets, callbacks).
    with looking_up_runs(log_root=args.log_root, debug=args.debug):
        return _run_parsed(args, overrides, argv, log)


def _run_parsed(args, overrides: list[str], argv: list[str], log: console.ConsoleLog) -> str | None:
    config, existing = build_config(args, overrides)
    seed_everything(int(runner_value(config, "seed")))  # before the datasets are built: some draw from the RNGs
    report = preflight(config, build_dataset=instantiate_dataset, train=args.train or args.check,
                       log_root=args.log_root, debug=args.debug)
    report.raise_if_problems()  # before any run folder exists
    config["device"] = dist.init_from_environment(resolve_device(config["device"]))
    if args.check:
        print("edflow: preflight passed\n" + summary(report, config["device"]))
        return None
    for stage in report.stages:
        print(f"edflow: {stage_line(stage)}", file=sys.stderr)
    record_stages(config, report.stages)
    root = existing or run_root(args, config)
    log.attach(root, header="edflow " + shlex.join(argv), main_process=dist.is_main_process())
    with RunLock(root):
        iterator = None
        try:
            stamp = time.strftime("%Y-%m-%dT%H-%M-%S")
            config_path = os.path.join(root, "configs", f"{'train' if args.train else 'eval'}_{stamp}.yaml")
            if dist.is_main_process():
                dump_yaml(config, config_path)
            iterator = build_iterator(config, root, train=args.train, datasets=report.datasets,
                                      log_root=args.log_root, debug=args.debug)
            if dist.is_main_process():
                dump_yaml(config, config_path)  # with what building it filled in (edflow 0.4 style: num_steps)
            checkpoint = start_checkpoint(args, iterator)
            if checkpoint:
                compat.restore(iterator, checkpoint)
                print(f"edflow: restored {checkpoint} (step {iterator.global_step})", file=sys.stderr)
            if args.train:
                iterator.fit()
            else:
                results = iterator.evaluate_all()
                for key, value in sorted(results.items()):
                    print(f"{key}: {value:.6g}")
        except BaseException as error:
            with contextlib.suppress(AttributeError, TypeError):
                error.run_root = root  # for the message that says how to continue
            if args.train:
                mark_failed(root, iterator, error)
            raise
    print(f"edflow: run folder {root}", file=sys.stderr)
    return root


def failure_reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (WriteError, EvaluationError)) else f"{type(error).__name__}: {text}"


def mark_failed(root: str, iterator, error: BaseException) -> None:
    """status.yaml says failed, with the reason, whatever ended the run (best effort: the disk may be full)."""
    if not dist.is_main_process():
        return
    reason = failure_reason(error)
    try:
        if iterator is not None:
            iterator._write_status("failed", reason=reason)
        else:
            dump_yaml({"status": "failed", "reason": reason, "pid": os.getpid(), "host": socket.gethostname(),
                       "time": time.time()}, os.path.join(root, "status.yaml"))
    except OSError as problem:
        print(f"edflow: warning: the failure could not be recorded in status.yaml: {problem}", file=sys.stderr)


def continue_hint(error: BaseException) -> str:
    root = getattr(error, "run_root", None)
    if not root:
        return ""
    last = ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))
    kept = f"the last checkpoint {last} is intact" if last else "no checkpoint had been written"
    return f"\nedflow: the run stopped ({root}/status.yaml: failed); {kept}; after the fix continue with " \
           f"`edflow -p {root} -t`"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        from edflow.report import main as report_main

        return report_main(argv[1:])
    with console.capture():  # also the error messages below, once the run folder is known
        _main(argv)


def _main(argv: list[str]) -> None:
    try:
        run(argv)
        # gloo aborts the process if a peer tears its connections down while collectives are still in flight
        dist.barrier()
    except (ConfigError, FirstStageError, ckpt.CheckpointError, DataError) as error:
        # the user's to fix: one line, no traceback
        print(f"edflow: error: {error}", file=sys.stderr)
        sys.exit(2)
    except WriteError as error:  # a full disk, a lost mount: one line naming the path, then how to go on
        print(f"edflow: error: {error}{continue_hint(error)}", file=sys.stderr)
        sys.exit(1)
    except EvaluationError as error:  # a bug in a callback: its traceback, then where the run stands
        traceback.print_exception(error.__cause__ or error, file=sys.stderr)
        print(f"edflow: error: {error}{continue_hint(error)}", file=sys.stderr)
        sys.exit(1)
    finally:
        dist.cleanup()


if __name__ == "__main__":
    main()
