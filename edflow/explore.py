"""``edexplore``: browse any DatasetMixin in the browser, one example at a time, with its label statistics.

    edexplore --dataset fairkit.data.MNIST --params "{split: test}"
    edexplore -b configs/cmnist_diin.yaml                  # every dataset of the config (train, validation, ...)
    edexplore -b configs/cmnist_diin.yaml --dataset validation

The app itself lives in ``edflow/explore_app.py`` and runs under streamlit, bound to 127.0.0.1 unless ``--host``
says otherwise. This module holds everything that does not need streamlit, so it can be tested without a browser.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import yaml

from edflow.config import ConfigError, apply_overrides, load_configs, parse_overrides, with_defaults
from edflow.main import instantiate_dataset
from edflow.util import get_obj_from_str

APP_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "explore_app.py")
IMAGE_CHANNELS = (1, 3)
MIN_IMAGE_SIDE = 4
MAX_DISCRETE_VALUES = 100
MAX_LABEL_COLUMNS = 64
DISPLAY_SIDE = 160  # small images (MNIST's 28 px) are enlarged by whole factors, so pixels stay sharp

EPILOG = """examples:
  edexplore --dataset fairkit.data.MNIST --params "{split: test}"
  edexplore -b configs/mnist_ae.yaml                     browse the config's datasets
  edexplore -b configs/mnist_ae.yaml --dataset validation --index 10
  edexplore --dataset iin.data.ColorfulMNISTTrain --host 0.0.0.0 --port 8600
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edexplore", description="Browse a dataset in the browser (streamlit).",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-b", "--base", nargs="*", default=[], metavar="CONFIG",
                   help="config files, deep-merged left to right; their datasets are browsed")
    p.add_argument("--dataset", help="a dataset class path (pkg.module.Class), or the name of one of the config's "
                                     "datasets (train, validation, ...)")
    p.add_argument("--params", default=None, metavar="YAML",
                   help="keyword arguments for the --dataset class, as a YAML mapping: \"{split: test, size: 32}\"")
    p.add_argument("--index", type=int, default=0, help="the example shown first")
    p.add_argument("--host", default="127.0.0.1", help="address to bind to (default: loopback only)")
    p.add_argument("--port", type=int, default=None,
                   help="port to serve on (default: streamlit's, 8501 or the next free one)")
    return p


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The arguments and the config overrides (``Model.z_dim=32``) that follow them."""
    args, overrides = parser().parse_known_args(argv)
    if not args.dataset and not args.base:
        raise ConfigError("say what to browse: --dataset pkg.module.Class, or -b <config> for the config's datasets")
    return args, overrides


# --- datasets ----------------------------------------------------------------------------------------------------
def dataset_config(base: list[str], overrides: list[str]) -> dict:
    """The merged config of ``-b`` files with overrides applied; runner defaults filled in."""
    return with_defaults(apply_overrides(load_configs(base), parse_overrides(overrides)))


def dataset_params(text: str | None) -> dict:
    if not text:
        return {}
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--params {text!r} is not valid YAML ({error}); write e.g. \"{{split: test}}\"") from None
    if not isinstance(params, dict):
        raise ConfigError(f"--params must be a YAML mapping such as \"{{split: test}}\", got {text!r}")
    return params


def dataset_specs(args: argparse.Namespace, config: Mapping) -> dict[str, Any]:
    """Name -> dataset spec (as ``datasets:`` holds them) of what is to be browsed, checked before anything loads."""
    configured = {name: spec for name, spec in (config.get("datasets") or {}).items() if spec}
    if args.dataset and args.dataset in configured:
        if args.params:
            raise ConfigError(f"--params goes with a class path; to change the config's dataset {args.dataset!r}, "
                              f"override its keys, e.g. datasets.{args.dataset}.params.split=test")
        return {args.dataset: configured[args.dataset]}
    if args.dataset:
        if "." not in args.dataset:
            known = f"; the config has {sorted(configured)}" if configured else ""
            raise ConfigError(f"--dataset {args.dataset!r} is neither a class path (pkg.module.Class) nor the name "
                              f"of a dataset in the config{known}")
        get_obj_from_str(args.dataset)  # fail here, in the terminal, rather than in the browser
        return {args.dataset.rsplit(".", 1)[-1]: {"target": args.dataset, "params": dataset_params(args.params)}}
    if not configured:
        raise ConfigError(f"the config {args.base} names no datasets; add `datasets: {{train: pkg.module.Class}}` "
                          "or pass --dataset pkg.module.Class")
    return configured


def load_datasets(argv: list[str]) -> dict:
    """Name -> constructed dataset, for the command line ``argv`` of edexplore."""
    args, overrides = parse_args(argv)
    config = dataset_config(args.base, overrides)
    return {name: instantiate_dataset(spec, config) for name, spec in dataset_specs(args, config).items()}


# --- examples ----------------------------------------------------------------------------------------------------
def to_numpy(value) -> Any:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu()
        return (value.float() if value.is_floating_point() else value).numpy()  # numpy has no bfloat16
    return value


def flatten_example(example: Mapping, prefix: str = "") -> dict:
    """Nested dicts become ``outer/inner`` keys; tensors become numpy arrays."""
    flat = {}
    for key, value in example.items():
        if isinstance(value, Mapping):
            flat.update(flatten_example(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = to_numpy(value)
    return flat


def image_layout(value) -> str | None:
    """"CHW" or "HWC" for arrays that look like an image (1 or 3 channels, sides of 4 px or more), else None."""
    if not isinstance(value, np.ndarray) or value.ndim != 3 or value.dtype.kind not in "biuf":
        return None
    if value.shape[0] in IMAGE_CHANNELS and min(value.shape[1:]) >= MIN_IMAGE_SIDE:
        return "CHW"
    if value.shape[2] in IMAGE_CHANNELS and min(value.shape[:2]) >= MIN_IMAGE_SIDE:
        return "HWC"
    return None


def to_display_image(value: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """An image array as uint8 (H, W, 3) or (H, W): floats are read as values in [-1, 1] (the project's
    convention), integers as 0..255; images smaller than ``side`` are enlarged by a whole factor."""
    layout = image_layout(value)
    if layout is None:
        raise ValueError(f"an array of shape {value.shape} is not an image (C, H, W) or (H, W, C) with C in 1, 3")
    array = np.moveaxis(value, 0, -1) if layout == "CHW" else value
    if array.dtype.kind == "f":
        array = np.round((np.clip(array, -1.0, 1.0) + 1.0) * 127.5)
    array = np.clip(array, 0, 255).astype(np.uint8)
    factor = max(1, side // max(array.shape[:2]))
    array = array.repeat(factor, axis=0).repeat(factor, axis=1)
    return array[..., 0] if array.shape[-1] == 1 else array


@dataclass
class ExampleView:
    images: dict[str, np.ndarray] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


def split_example(example: Mapping) -> ExampleView:
    """Every image-like array of an example (both images of a pair, too) apart from its other keys."""
    view = ExampleView()
    for key, value in flatten_example(example).items():
        if image_layout(value) is not None:
            view.images[key] = value
        else:
            view.fields[key] = value
    return view


def names_for(dataset, key: str) -> list[str] | None:
    """Readable names of a label's values or columns when the dataset offers them (``class_names`` for "class",
    ``attribute_names`` for "attributes")."""
    for attribute in (f"{key}_names", f"{key.rstrip('s')}_names"):
        names = getattr(dataset, attribute, None)
        if names is not None:
            return [str(n) for n in names]
    return None


def describe_value(value, names: list[str] | None = None) -> str:
    """A short text for a table cell: numbers as they are, small arrays in full, large ones by shape."""
    value = to_numpy(value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, int, np.integer)):
        named = names[int(value)] if names and 0 <= int(value) < len(names) else None
        return f"{value} ({named})" if named and named != str(value) else str(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    if isinstance(value, np.ndarray):
        if value.size <= MAX_LABEL_COLUMNS:
            text = np.array2string(value, precision=4, separator=", ", max_line_width=10**6)
            if names and len(names) == value.size and value.dtype.kind in "biu" and set(np.unique(value)) <= {0, 1}:
                active = [n for n, v in zip(names, value.ravel()) if v]
                text += f"  [{', '.join(active) or 'none'}]"
            return text
        return f"array {value.dtype} {value.shape}"
    return str(value)


def field_rows(dataset, fields: Mapping) -> list[dict]:
    """The table of an example's keys other than images: key, value, type and shape."""
    rows = []
    for key, value in fields.items():
        array = np.asarray(value) if not isinstance(value, str) else None
        rows.append({"key": key, "value": describe_value(value, names_for(dataset, key)),
                     "type": str(array.dtype) if array is not None else "str",
                     "shape": str(tuple(array.shape)) if array is not None else "()"})
    return rows


# --- label statistics --------------------------------------------------------------------------------------------
@dataclass
class LabelSummary:
    """Statistics of one label array: ``rows`` for a table; ``counts`` (value -> count) for discrete 1-D labels."""
    name: str
    shape: tuple
    dtype: str
    kind: str  # "discrete", "columns", "continuous" or "other"
    rows: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def summarize_label(name: str, values, names: list[str] | None = None) -> LabelSummary:
    values = np.asarray(to_numpy(values))
    summary = LabelSummary(name, tuple(values.shape), str(values.dtype), "other")
    if values.ndim == 1 and values.dtype.kind in "biuUSO":
        unique, counts = np.unique(values, return_counts=True)
        if len(unique) <= MAX_DISCRETE_VALUES:
            summary.kind = "discrete"
            for value, count in zip(unique.tolist(), counts.tolist()):
                label = describe_value(value, names)
                summary.counts[label] = count
                summary.rows.append({"value": label, "count": count, "fraction": round(count / len(values), 4)})
            return summary
    if values.ndim == 1 and values.dtype.kind in "biuf":
        summary.kind = "continuous"
        summary.rows.append(numeric_stats(values))
    elif values.ndim == 2 and values.dtype.kind in "biuf" and values.shape[1] <= MAX_LABEL_COLUMNS:
        summary.kind = "columns"  # e.g. CelebA's 40 binary attributes: the mean is the fraction of ones
        for column in range(values.shape[1]):
            column_name = names[column] if names and column < len(names) else str(column)
            summary.rows.append({"column": column_name, **numeric_stats(values[:, column])})
    return summary


def numeric_stats(values: np.ndarray) -> dict:
    values = values.astype(np.float64)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
            "min": round(float(values.min()), 4), "max": round(float(values.max()), 4)}


def label_summaries(dataset) -> list[LabelSummary]:
    """Statistics of every label of the dataset; arrays that hold images are listed by shape only."""
    return [summarize_label(name, values, names_for(dataset, name))
            for name, values in sorted((dataset.labels or {}).items())]


# --- command line ------------------------------------------------------------------------------------------------
def streamlit_command(args: argparse.Namespace, argv: list[str]) -> list[str]:
    """``python -m streamlit run explore_app.py`` with the server options, and edexplore's own ``argv`` after --."""
    command = [sys.executable, "-m", "streamlit", "run", APP_PATH,
               "--server.address", args.host, "--server.headless", "true", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
               "--client.toolbarMode", "viewer"]
    if args.port is not None:
        command += ["--server.port", str(args.port)]
    return command + ["--", *argv]


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args, overrides = parse_args(argv)
        dataset_specs(args, dataset_config(args.base, overrides))
    except (ConfigError, ImportError) as error:
        print(f"edexplore: error: {error}", file=sys.stderr)
        sys.exit(2)
    if importlib.util.find_spec("streamlit") is None:
        print("edexplore: error: streamlit is not installed; pip install 'fairtoolkit[streamlit]'", file=sys.stderr)
        sys.exit(2)
    command = streamlit_command(args, argv)
    sys.stdout.flush()
    os.execv(command[0], command)  # streamlit takes this process over, so Ctrl-C and kill reach the server


if __name__ == "__main__":
    main()
