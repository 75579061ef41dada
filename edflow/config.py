"""Configs: YAML files deep-merged left to right, command-line overrides, and key checks that name the nearest key."""
from __future__ import annotations

import copy
import difflib
import os
import re
from typing import Any, Iterable, Mapping

import yaml

from edflow import safe_io
from edflow.runner_keys import RUNNER, choices_text

# Views of the registry in edflow/runner_keys.py, where each runner key is declared once (kept for code that reads
# them); the defaults are copies, so changing this dict cannot change the registry.
RUNNER_KEYS = {name: copy.deepcopy(key.default) for name, key in RUNNER.items()}
RUNNER_KEY_TYPES: dict[str, tuple] = {name: key.types for name, key in RUNNER.items()}
RUNNER_KEY_CHOICES = {name: key.choices for name, key in RUNNER.items() if key.choices is not None}
RUNNER_KEY_RANGES = {name: key.range for name, key in RUNNER.items() if key.range is not None}
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Mapping: "a mapping",
              list: "a list", None: "null"}


class ConfigError(ValueError):
    """A config or override that cannot be used as written; the message says how to fix it."""


class YamlLoader(yaml.SafeLoader):
    """YAML 1.1 as safe_load reads it, except that 1e-4 is a float (as in YAML 1.2 and in overrides), not a string."""


class YamlDumper(yaml.SafeDumper):
    """Quotes the strings that YamlLoader would read as floats (such as '1e5'), so configs survive a round trip."""


for _cls in (YamlLoader, YamlDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float",
                               re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                               list("-+0123456789."))


def load_yaml(path: str) -> dict:
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a directory; give a .yaml file inside it")
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        with open(path, "rb") as f:  # bytes: the YAML reader detects the encoding and names the bad byte
            content = yaml.load(f, Loader=YamlLoader)
    except OSError as error:
        raise ConfigError(f"config file {path!r} cannot be read: {error.strerror or error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path!r} is not valid YAML: {yaml_problem(error)}") from error
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping at the top level, got {type(content).__name__}")
    return content


def yaml_problem(error: yaml.YAMLError) -> str:
    """The parser's complaint on one line, with the 1-based line and column where it noticed it."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or getattr(error, "reason", None) or str(error)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    if mark is None and hasattr(error, "position"):  # ReaderError: bytes that are not text
        where = f"byte {error.position}: "
    context = getattr(error, "context", None)
    return " ".join((f"{where}{problem}" + (f" ({context})" if context else "")).split())


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
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError:
        return text


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
        if not all(key.split("/")):
            raise ConfigError(f"override {arg!r} has an empty key name; write it as `Model.z_dim=32`")
        overrides.append((key, parse_value(text), is_new))
        i += 1
    return overrides


def apply_overrides(config: dict, overrides: list[tuple[str, Any, bool]]) -> dict:
    config = copy.deepcopy(config)
    known = set(flatten_keys(config)) | set(RUNNER)
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
        node[parts[-1]] = copy.deepcopy(value)  # later overrides below this key must not change the parsed list
    return config


def check_runner_keys(config: Mapping) -> None:
    """Top-level keys that look like a misspelt runner key are errors; other keys are method sections.
    Runner keys must hold values of their types (see edflow/runner_keys.py)."""
    for key in config:
        if not isinstance(key, str):
            raise ConfigError(f"config keys must be names, got {key!r} ({type(key).__name__}) at the top level")
        if key in RUNNER or key.lower() in RUNNER:  # `Model:` is a method section beside `model:`
            continue
        suggestion = difflib.get_close_matches(key, list(RUNNER), n=1, cutoff=0.8)
        if suggestion:
            raise ConfigError(unknown_key_message(key, RUNNER, "the config") + " Fix the spelling in the YAML file.")
    check_runner_types(config)
    if isinstance(config.get("debug"), Mapping):  # merged over the config by -d, so it must be valid as well
        check_runner_types(config["debug"], prefix="debug/")


def check_runner_types(config: Mapping, prefix: str = "") -> None:
    for key, value in config.items():
        if key not in RUNNER:
            continue
        name, spec = prefix + key, RUNNER[key]
        if not has_type(value, spec.types):
            raise ConfigError(type_message(name, value, spec.types))
        if spec.choices is not None and value not in spec.choices:
            raise ConfigError(f"config key {name!r} must be one of {choices_text(key)}; got {short_repr(value)}")
        low, high = spec.range or (None, None)
        if isinstance(value, int) and ((low is not None and value < low) or (high is not None and value > high)):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise ConfigError(f"config key {name!r} must be {bounds}; got {value}")
    check_model_selection(config.get("model_selection"), prefix)
    callbacks = (config.get("eval_pipeline") or {}).get("callbacks")
    if callbacks is not None and not (isinstance(callbacks, Mapping) and all(map(is_callback, callbacks.values()))):
        raise ConfigError(f"config key '{prefix}eval_pipeline/callbacks' must map names to dotted paths of "
                          f"functions, e.g. {{mse: mypackage.callbacks.mse}}; got {short_repr(callbacks)}")


def check_model_selection(selection: Mapping | None, prefix: str = "") -> None:
    if not selection:
        return
    if not isinstance(selection.get("metric"), str):
        raise ConfigError(f"config key '{prefix}model_selection' needs a metric, e.g. "
                          f"{{metric: validation/accuracy, mode: max}}; got {short_repr(selection)}")
    if selection.get("mode", "max") not in ("max", "min"):
        raise ConfigError(f"config key '{prefix}model_selection/mode' must be max or min; "
                          f"got {short_repr(selection['mode'])}")


def is_callback(value: Any) -> bool:
    return (isinstance(value, str) and "." in value) or callable(value)


def has_type(value: Any, kinds: Iterable) -> bool:
    """isinstance for config values: an int is never a bool, a float accepts ints, a list accepts tuples."""
    for kind in kinds:
        if kind is None:
            if value is None:
                return True
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif kind is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return True
        elif kind is list:
            if isinstance(value, (list, tuple)):
                return True
        elif isinstance(value, kind):
            return True
    return False


CHECKED_KINDS = (bool, int, float, str, Mapping, list)


def kind_of(default: Any) -> type:
    for kind in (bool, int, float, str, Mapping):  # bool before int: True is an int to Python, not to a config
        if isinstance(default, kind):
            return kind
    return list if isinstance(default, (list, tuple)) else type(default)


def describe_kinds(kinds: Iterable) -> str:
    return " or ".join(TYPE_NAMES.get(kind, getattr(kind, "__name__", str(kind))) for kind in kinds)


def short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def type_message(name: str, value: Any, kinds: Iterable, default: Any = None, alternative: str = "") -> str:
    given = "null" if value is None else f"{short_repr(value)} ({type(value).__name__})"
    like = f" (its default is {short_repr(default)})" if default is not None else ""
    hint = "; remove the quotes around the number" if isinstance(value, str) and is_number(value) else ""
    return f"config key {name!r} must be {describe_kinds(kinds)}{alternative}{like}; got {given}{hint}"


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def with_defaults(config: Mapping) -> dict:
    resolved = deep_merge({name: key.default for name, key in RUNNER.items() if key.default is not None}, config)
    resolved["datasets"] = dict(resolved.get("datasets") or {})
    if resolved.get("dataset") and "train" not in resolved["datasets"]:
        resolved["datasets"]["train"] = resolved["dataset"]  # edflow 0.4 style
    if resolved.get("validation_dataset") and "validation" not in resolved["datasets"]:
        resolved["datasets"]["validation"] = resolved["validation_dataset"]
    return resolved


def section(config: Mapping, name: str, defaults: Mapping, required: Iterable[str] = ()) -> dict:
    """A method's config section with its defaults; misspelt or missing keys are errors naming the nearest key.

    ``section(config, "Model", {"z_dim": 64, "ch": 64})`` returns ``{"z_dim": ..., "ch": ...}``. A given value must
    have its default's type (see ``accepted_kinds``).
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
    for key, value in given.items():
        kinds = accepted_kinds(defaults.get(key))
        if kinds and not has_type(value, kinds) and not is_several(value, kinds):
            several = ", or a list of them" if kinds[0] in (int, float, str) else ""
            raise ConfigError(type_message(f"{name}/{key}", value, kinds, defaults[key], several))
    return deep_merge(defaults, given)


def accepted_kinds(default: Any) -> tuple:
    """What may replace a default: a value of its type (an int will do for a float), null in place of a number
    (no limit, all), and for a default that is one string or number, a list of several. Empty: anything goes."""
    kind = kind_of(default)
    if default is None or kind not in CHECKED_KINDS:
        return ()
    if kind in (int, float):
        return kind, None
    return (kind,)


def is_several(value: Any, kinds: tuple) -> bool:
    """A list of values of the default's scalar type, where one value is the default (``protected: [Male, Young]``)."""
    scalar = kinds[0] in (int, float, str)
    return scalar and isinstance(value, (list, tuple)) and all(has_type(item, kinds[:1]) for item in value)


def dump_yaml(config: Mapping, path: str) -> None:
    safe_io.write_text(path, yaml.dump(to_plain(config), Dumper=YamlDumper, sort_keys=False))


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
