"""Property tests of config handling: whatever YAML text, generated config or command-line override comes in, the
result is a config whose runner keys have valid types, or a ConfigError; never another exception.

Run with ``-s`` to see how many cases each property tried and how many ended in a ConfigError."""
import collections
import math
import re

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edflow.config import (RUNNER_KEY_TYPES, RUNNER_KEYS, ConfigError, YamlDumper, apply_overrides, check_runner_keys,
                           deep_merge, dump_yaml, has_type, load_configs, load_yaml, parse_overrides, to_plain,
                           with_defaults)
from edflow.util import retrieve

SETTINGS = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
CASES: collections.Counter = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    for name in sorted({name for name, _ in CASES}):
        tried = CASES[name, "valid"] + CASES[name, "ConfigError"]
        print(f"\n{name}: {tried} cases, {CASES[name, 'valid']} valid, {CASES[name, 'ConfigError']} ConfigError")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("configs")


def outcome(name: str, error: ConfigError | None = None) -> None:
    """Counts the case; --hypothesis-show-statistics lists the kinds of errors met (quoted parts elided)."""
    CASES[name, "valid" if error is None else "ConfigError"] += 1
    event("valid" if error is None else "ConfigError: " + re.sub(r"'[^']*'|\S*/\S*|\d+", "_", str(error).split(";")[0]))


# ---------------------------------------------------------------- strategies
NAMES = st.sampled_from(sorted(RUNNER_KEYS) + ["Model", "Trainer", "model_", "batchsize", "Seed", "z_dim", "lr"])
KEYS = st.one_of(NAMES, st.text(alphabet="abcxyz_ZB/.", min_size=1, max_size=6), st.integers(-3, 3))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=False, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["1e-4", "fp16", "bf16", "8", "toy.Model", "yes", "null", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
CONFIGS = st.dictionaries(KEYS, VALUES, max_size=6)
YAML_LINES = st.sampled_from([
    "batch_size: 8", "batch_size: abc", "seed: 1.5", "num_epochs: [1]", "amp: fp8", "amp: bf16", "Model:",
    "  z_dim: 3", "  lr: 1e-4", "  - 1", "datasets: {train: toy.ToyTrain}", "datasets: null", "a: [1, 2",
    "b: {c: d", "'unterminated", "key: &anchor 1", "other: *anchor", "other: *missing", "!!python/object:os.system {}",
    "x: !!binary aGVsbG8=", "- item", "---", "...", "  bad indent: 1", "debug: {num_steps: 2}", "debug: {seed: -1}",
    "model_selection: {metric: validation/mse}", "eval_pipeline: {callbacks: {m: toy.mse_callback}}", "%YAML 1.1",
    "drop_last: yes", "? complex key", ": empty", "tab:\tvalue", "1: one", "[1]: list key", "~: null key"])
VALID_LINES = st.sampled_from(["batch_size: 8", "seed: 3", "amp: null", "Model: {z_dim: 3, lr: 1e-4}", "lr: 1e-3",
                               "name: toy", "datasets: {train: toy.ToyTrain}", "num_steps: 1000", "drop_last: no"])
YAML_TEXTS = st.one_of(st.lists(YAML_LINES, max_size=6).map("\n".join),
                       st.lists(VALID_LINES, max_size=5).map("\n".join),
                       st.text(alphabet=st.sampled_from(list("ab:-[]{},'\"\n #&*!|>%@`0.e_\t") + ["\x85", "é"]),
                               max_size=40))


def valid_runner_types(config) -> bool:
    return all(has_type(config[key], kinds) for key, kinds in RUNNER_KEY_TYPES.items() if key in config)


def same(a, b) -> bool:
    """Equality in which a NaN equals a NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def resolve(config: dict) -> dict:
    """The runner's steps after loading: key checks, defaults, type checks."""
    check_runner_keys(config)
    resolved = with_defaults(config)
    check_runner_keys(resolved)  # the defaults themselves are valid
    return resolved


# ---------------------------------------------------------------- properties
@SETTINGS
@given(text=YAML_TEXTS)
def test_any_yaml_text_loads_into_a_valid_config_or_fails_with_a_config_error(folder, text):
    path = folder / "text.yaml"
    path.write_bytes(text.encode("utf-8"))
    try:
        resolved = resolve(load_yaml(str(path)))
    except ConfigError as error:
        assert str(path) in str(error) or "config key" in str(error) or "model_selection" in str(error)
        outcome("yaml text", error)
        return
    outcome("yaml text")
    assert valid_runner_types(resolved) and set(RUNNER_KEYS) - {k for k, v in RUNNER_KEYS.items() if v is None} \
        <= set(resolved)


@SETTINGS
@given(first=CONFIGS, second=CONFIGS)
def test_generated_configs_survive_dump_load_and_merge(folder, first, second):
    paths = [str(folder / "first.yaml"), str(folder / "second.yaml")]
    dump_yaml(first, paths[0])
    dump_yaml(second, paths[1])
    merged = load_configs(paths)
    assert same(merged, deep_merge(to_plain(first), to_plain(second)))  # keys become strings, nothing else changes
    try:
        resolved = resolve(merged)
    except ConfigError as error:
        outcome("generated configs", error)
        return
    outcome("generated configs")
    assert valid_runner_types(resolved)
    for key, value in merged.items():  # with_defaults keeps every given value (datasets: null becomes {})
        assert same(resolved[key], value) or (key == "datasets" and value is None)


OVERRIDE_KEYS = st.one_of(
    st.sampled_from(["Model/z_dim", "Model/lr", "batch_size", "seed", "amp", "datasets/train", "num_steps", "Model"]),
    st.lists(st.sampled_from(["Model", "z_dim", "lr", "batch_size", "new", "datasets", "train", "x"]),
             min_size=1, max_size=3).map("/".join))
OVERRIDE_VALUES = st.one_of(st.integers(0, 2**33), SCALARS, st.lists(st.integers(-5, 5), max_size=3),
                            st.dictionaries(st.sampled_from("abc"), st.integers(0, 3), max_size=2))


def value_text(value) -> str:
    text = yaml.dump(value, Dumper=YamlDumper, default_flow_style=True, width=math.inf)
    return text.removesuffix("\n").removesuffix("\n...").strip()


@st.composite
def override_args(draw):
    """One override in one of the accepted spellings, or garbage; and the value it is meant to set."""
    key, value = draw(OVERRIDE_KEYS), draw(OVERRIDE_VALUES)
    text = value_text(value)
    plus = draw(st.sampled_from(["", "+"]))
    form = draw(st.sampled_from(["dots"] * 3 + ["slashes"] * 3 + ["equals", "empty", "garbage"]))
    if form == "dots":
        return [f"{plus}{key.replace('/', '.')}={text}"], (key, value)
    if form == "slashes":
        return [f"--{plus}{key}", text], (key, value)
    if form == "equals":
        return [f"--{plus}{key}={text}"], (key, value)
    if form == "empty":
        return [f"{plus}{key.replace('/', '.')}="], (key, None)
    return [draw(st.text(max_size=10))], None


BASE = {"model": "toy.Model", "iterator": "toy.Trainer", "batch_size": 8, "Model": {"z_dim": 4, "lr": 0.1},
        "datasets": {"train": "toy.ToyTrain"}}


@SETTINGS
@given(drawn=st.lists(override_args(), min_size=1, max_size=4))
def test_overrides_land_at_their_keys_or_fail_with_a_config_error(drawn):
    args = [arg for arg_list, _ in drawn for arg in arg_list]
    try:
        parsed = parse_overrides(args)
        config = apply_overrides(BASE, parsed)
        resolved = resolve(config)
    except ConfigError as error:
        outcome("overrides", error)
        return
    outcome("overrides")
    assert valid_runner_types(resolved)
    intended = [meant for _, meant in drawn if meant is not None]
    if len(intended) == len(drawn):  # no garbage: what was parsed is what was written
        assert same([(path, value) for path, value, _ in parsed], intended)
    for i, (path, value, _) in enumerate(parsed):
        later = [p for p, _, _ in parsed[i + 1:]]
        if not any(p == path or p.startswith(path + "/") or path.startswith(p + "/") for p in later):
            assert same(retrieve(config, path), value)
