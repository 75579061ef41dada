"""The runner's keys are declared once, in edflow/runner_keys.py: the config checks follow it, and no code retypes
a runner key's default as a literal."""
import pathlib
import re

import pytest

from edflow.config import ConfigError, check_runner_keys, with_defaults
from edflow.runner_keys import RUNNER, runner_value

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_runner_value_is_the_given_value_else_the_declared_default():
    assert runner_value({"batch_size": 7}, "batch_size") == 7
    assert runner_value({}, "batch_size") == RUNNER["batch_size"].default
    assert runner_value({"eval_batch_size": None}, "eval_batch_size") is None  # a given null stays null
    first = runner_value({}, "datasets")
    first["train"] = "x"  # a caller changing its copy leaves the registry's default as declared
    assert runner_value({}, "datasets") == {}
    with pytest.raises(KeyError, match="'batchsize' is not a runner key"):
        runner_value({}, "batchsize")


def test_with_defaults_fills_in_every_declared_default():
    resolved = with_defaults({})
    for name, key in RUNNER.items():
        if key.default is not None:
            assert resolved[name] == key.default, name


@pytest.mark.parametrize("name", [name for name, key in RUNNER.items() if key.choices or key.range])
def test_the_checks_follow_the_declared_choices_and_ranges(name):
    key = RUNNER[name]
    bad = "not-a-choice" if key.choices else (key.range[0] - 1 if key.range[0] is not None else key.range[1] + 1)
    with pytest.raises(ConfigError, match=f"config key '{name}' must be"):
        check_runner_keys({name: bad})
    check_runner_keys({name: key.choices[-1] if key.choices else key.range[0]})


def test_no_code_retypes_a_runner_default():
    names = "|".join(RUNNER)
    # config.get("batch_size", <a default other than the registry's>)
    literal = re.compile(rf"""\.get\(\s*["']({names})["']\s*,(?!\s*runner_value\()""")
    found = [f"{path.relative_to(ROOT)}: {line.strip()}"
             for folder in ("edflow", "fairkit", "iin", "nullsample", "end", "latentdebias", "fairgen")
             for path in sorted((ROOT / folder).rglob("*.py")) if "data" not in path.relative_to(ROOT).parts
             for line in path.read_text().splitlines()
             if literal.search(line) and "config" in line]
    assert not found, "read runner keys with edflow.runner_keys.runner_value:\n" + "\n".join(found)
