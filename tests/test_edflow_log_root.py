"""The log root is handed to the runner's functions (``log_root=``); $EDFLOW_LOG_ROOT is only the command line's
default for ``--log-root``, and the runner never sets it."""
import os

import pytest
import yaml
from toy import TOY, train

from edflow.first_stage import FirstStageError, find_run, load_first_stages, looking_up_runs, resolve_run
from edflow.main import build_config, build_iterator, parser


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("EDFLOW_LOG_ROOT", raising=False)


def test_runs_are_found_under_the_log_root_given(tmp_path, no_env, monkeypatch):
    monkeypatch.chdir(tmp_path)  # so that the default, ./logs, holds no run
    first = train(tmp_path / "elsewhere", "-n", "named")
    assert "EDFLOW_LOG_ROOT" not in os.environ  # the runner hands the log root on, not through the environment
    assert find_run("named", log_root=str(tmp_path / "elsewhere")) == first
    assert find_run("named") is None
    with pytest.raises(FirstStageError, match="'named' was not found"):
        resolve_run("named")
    stage = load_first_stages({"run": "named"}, log_root=str(tmp_path / "elsewhere"))
    assert stage.stage_checkpoint.startswith(first)


def test_within_a_run_names_resolve_under_its_log_root(tmp_path, no_env):
    first = train(tmp_path, "-n", "named")
    with looking_up_runs(log_root=str(tmp_path)):
        assert resolve_run("named") == first
    with looking_up_runs(log_root=str(tmp_path / "empty"), debug=True):
        assert find_run("named") is None
        assert find_run("named", log_root=str(tmp_path)) == first  # an explicit log root wins


def test_chaining_by_name_with_an_explicit_log_root(tmp_path, no_env):
    first = train(tmp_path / "logs", "-n", "first")
    second = tmp_path / "second.yaml"
    second.write_text(yaml.safe_dump({"first_stage": {"run": "first"}, "experiment_name": "second"}))
    args, rest = parser().parse_known_args(["-b", TOY, str(second), "-t"])
    config, _ = build_config(args, rest)
    iterator = build_iterator(config, str(tmp_path / "x"), train=True, log_root=str(tmp_path / "logs"))
    assert iterator.first_stage.stage_checkpoint.startswith(first)
    chained = train(tmp_path / "logs", "-b", TOY, str(second))  # the command line: --log-root alone, no variable
    with open(os.path.join(chained, "configs", sorted(os.listdir(os.path.join(chained, "configs")))[-1])) as f:
        assert yaml.safe_load(f)["first_stage"]["run"] == first


def test_the_variable_is_the_default_of_log_root(tmp_path, monkeypatch):
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(tmp_path / "from_env"))
    assert parser().parse_known_args(["-b", TOY])[0].log_root == str(tmp_path / "from_env")
    first = train(tmp_path / "from_env", "-n", "named")
    assert resolve_run("named") == first
