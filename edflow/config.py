"""Configs: YAML files deep-merged left to right, command-line overrides, and key checks that name the nearest key."""
from __future__ import annotations

import copy
import difflib
import os
from typing import Any, Iterable, Mapping

import yaml

RUNNER_KEYS = {
    "experiment_name": None,
    "iterator": None,
    "model": None,
    "datasets": {},
    "dataset": None,
    "validation_dataset": None,
    "batch_size": 32,
    "eval_batch_size": None,
    "num_epochs": 1,
    "num_steps": None,
    "log_freq": 100,
    "ckpt_freq": None,
    "ckpt_keep": 3,
    "eval_freq": 1,
    "eval_max_batches": None,
    "seed": 0,
    "device": "cpu",
    "amp": None,
    "num_workers": 0,
    "drop_last": True,
    "integrations": {},
    "eval_pipeline": {},
    "model_selection": None,
    "first_stage": None,
    "debug": {},
}


class ConfigError(ValueError):
    """A config or override that cannot be used as written; the message says how to fix it."""


def load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path) as f:
        content = yaml.safe_load(f)
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping at the top level, got {type(content).__name__}")
    return content


def deep_merge(base: Mapping, update: Mapping) -> dict:
    """Nested keys of ``update`` override those of ``base``; siblings of ``base`` stay."""
    merged = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_configs(paths: Iterable[str]) -> dict:
    config: dict = {}
    for path in paths:
        config = deep_merge(config, load_yaml(path))
    return config


def flatten_keys(config: Mapping, prefix: str = "") -> list[str]:
    keys = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        keys.append(path)
        if isinstance(value, Mapping):
            keys.extend(flatten_keys(value, path + "/"))
    return keys


def nearest(key: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key: str, candidates: Iterable[str], where: str) -> str:
    suggestion = nearest(key, candidates)
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    return f"unknown config key {key!r} in {where}.{hint}"


def parse_value(text: str) -> Any:
    """Override values are typed like YAML values: ``32`` -> int, ``1e-3`` -> float, ``[1, 2]`` -> list."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 as a string
            return float(value) if any(c in value.lower() for c in "e.") else value
        except ValueError:
            return value
    return value


def parse_overrides(args: list[str]) -> list[tuple[str, Any, bool]]:
    """``--Model/z_dim 32`` and ``Model.z_dim=32`` (``+key=value`` adds a new key) -> [(path, value, is_new)]."""
    overrides = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            key = arg[2:]
            if "=" in key:
                key, text = key.split("=", 1)
            else:
                if i + 1 >= len(args):
                    raise ConfigError(f"override {arg!r} needs a value, e.g. `{arg} 32`")
                i += 1
                text = args[i]
        elif "=" in arg:
            key, text = arg.split("=", 1)
        else:
            raise ConfigError(f"cannot read argument {arg!r}: write overrides as `--Model/z_dim 32` or `Model.z_dim=32`")
        is_new = key.startswith("+")
        key = key.lstrip("+").replace(".", "/")
        overrides.append((key, parse_value(text), is_new))
        i += 1
    return overrides


def apply_overrides(config: dict, overrides: list[tuple[str, Any, bool]]) -> dict:
    config = copy.deepcopy(config)
    known = set(flatten_keys(config)) | set(RUNNER_KEYS)
    for path, value, is_new in overrides:
        if path not in known and not is_new:
            raise ConfigError(
                unknown_key_message(path, known, "the command-line overrides")
                + f" To add a new key on purpose, write +{path.replace('/', '.')}={value}."
            )
        node = config
        parts = path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {path!r}: {part!r} is not a section")
        node[parts[-1]] = value
    return config


def check_runner_keys(config: Mapping) -> None:
    """Top-level keys that look like a misspelt runner key are errors; other keys are method sections."""
    for key in config:
        if key in RUNNER_KEYS or key.lower() in RUNNER_KEYS:  # `Model:` is a method section beside `model:`
            continue
        suggestion = difflib.get_close_matches(key, list(RUNNER_KEYS), n=1, cutoff=0.8)
        if suggestion:
            raise ConfigError(unknown_key_message(key, RUNNER_KEYS, "the config") + " Fix the spelling in the YAML file.")
    for section in ("integrations", "eval_pipeline"):
        if config.get(section) is not None and not isinstance(config[section], Mapping):
            raise ConfigError(f"config key {section!r} must be a mapping")


def with_defaults(config: Mapping) -> dict:
    resolved = deep_merge({k: v for k, v in RUNNER_KEYS.items() if v is not None}, config)
    if resolved.get("dataset") and "train" not in resolved.get("datasets", {}):
        resolved["datasets"]["train"] = resolved["dataset"]  # edflow 0.4 style
    if resolved.get("validation_dataset") and "validation" not in resolved["datasets"]:
        resolved["datasets"]["validation"] = resolved["validation_dataset"]
    return resolved


def section(config: Mapping, name: str, defaults: Mapping, required: Iterable[str] = ()) -> dict:
    """A method's config section with its defaults; misspelt or missing keys are errors naming the nearest key.

    ``section(config, "Model", {"z_dim": 64, "ch": 64})`` returns ``{"z_dim": ..., "ch": ...}``.
    """
    given = config.get(name) or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"config section {name!r} must be a mapping, got {given!r}")
    allowed = set(defaults) | set(required)
    for key in given:
        if key not in allowed:
            raise ConfigError(unknown_key_message(f"{name}/{key}", [f"{name}/{k}" for k in allowed], f"section {name!r}"))
    for key in required:
        if key not in given:
            raise ConfigError(f"config section {name!r} needs the key {key!r}")
    return deep_merge(defaults, given)


def dump_yaml(config: Mapping, path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(to_plain(config), f, sort_keys=False)
    os.replace(tmp, path)


def to_plain(value: Any) -> Any:
    """numpy scalars and tuples become plain YAML types."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, RuntimeError):
            pass
    return value
