"""Bad configs end in one line `edflow: error: ...` (exit code 2) that says what is wrong and where, never in a
traceback; the checks behind those lines are tested one by one as well."""
import os
import subprocess
import sys

import pytest
import torch
import yaml

from edflow.config import ConfigError, check_runner_keys, load_yaml, parse_overrides, section
from edflow.first_stage import FirstStageError, load_first_stages
from edflow.main import main
from edflow.util import ClassPathError, get_obj_from_str

HERE = os.path.dirname(os.path.abspath(__file__))
TOY = os.path.join(HERE, "toy.yaml")


@pytest.fixture
def edflow_error(tmp_path, monkeypatch, capsys):
    """Runs the command on the toy config; returns its one error line after checking the exit code."""
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(tmp_path / "logs"))  # main() sets it; restored after the test
    monkeypatch.chdir(tmp_path)

    def call(*argv):
        with pytest.raises(SystemExit) as exit_info:
            main([*argv, "--log-root", str(tmp_path / "logs")])
        assert exit_info.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("edflow: error: "), lines
        return lines[-1]

    return call


def write(path, content):
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


# ---------------------------------------------------------------- through the command
@pytest.mark.parametrize("override, message", [
    ("model=null", "the config needs a 'model' key"),
    ("iterator=null", "the config needs a 'iterator' key"),
    ("datasets.train={params: {n: 3}}", "datasets/train needs a target (the dataset's dotted class path)"),
    ("datasets.train={target: toy.ToyTrain, parms: {}}", "'datasets/train/parms' in datasets/train. "
                                                         "Did you mean 'datasets/train/params'?"),
    ("batch_size=abc", "config key 'batch_size' must be an integer; got 'abc' (str)"),
    ("num_epochs=[1]", "config key 'num_epochs' must be an integer; got [1] (list)"),
    ("seed=1.5", "config key 'seed' must be an integer; got 1.5 (float)"),
    ("amp=fp8", "config key 'amp' must be one of null, bf16, fp16; got 'fp8'"),
    ("batch_size=0", "config key 'batch_size' must be at least 1; got 0"),
    ("drop_last=1", "config key 'drop_last' must be true or false; got 1 (int)"),
    ("model_selection={mode: max}", "config key 'model_selection' needs a metric"),
    ("Model.hidden=1.5", "config key 'Model/hidden' must be an integer or null, or a list of them (its default is "
                         "8); got 1.5 (float)"),
    ("Trainer.lr=abc", "config key 'Trainer/lr' must be a number or null, or a list of them (its default is 0.01); "
                       "got 'abc' (str)"),
    ("model=toy.Nope", "cannot import 'toy.Nope': module 'toy' has no attribute 'Nope'"),
    ("datasets.train=toy.ToyTrian", "has no attribute 'ToyTrian'; did you mean toy.ToyTrain?"),
    ("iterator=nomodule.Trainer", "cannot import 'nomodule.Trainer': module 'nomodule' not found"),
    ("model=toy.torch", "'toy.torch' is a module, not a class or function"),
    ("model=toy..Model", "expected a dotted path such as 'package.module.Name', got 'toy..Model'"),
])
def test_bad_config_values_get_one_line_naming_key_and_value(edflow_error, override, message):
    line = edflow_error("-b", TOY, "-t", override)
    assert message in line


def test_a_file_without_model_and_a_misspelt_runner_key(edflow_error, tmp_path):
    config = yaml.safe_load(open(TOY))
    del config["model"]
    assert "the config needs a 'model' key" in edflow_error("-b", write(tmp_path / "no_model.yaml", config), "-t")
    line = edflow_error("-b", TOY, write(tmp_path / "typo.yaml", {"batch_sise": 3}), "-t")
    assert "unknown config key 'batch_sise' in the config. Did you mean 'batch_size'?" in line


def test_yaml_syntax_error_names_file_and_line(edflow_error, tmp_path):
    path = write(tmp_path / "broken.yaml", "model: toy.Model\nModel:\n  hidden: [8, 16\nseed: 1\n")
    line = edflow_error("-b", TOY, path, "-t")
    assert f"config file {path!r} is not valid YAML: line 4, column 5" in line


@pytest.mark.parametrize("content, message", [
    ("- 1\n- 2\n", "must hold a mapping at the top level, got list"),
    ("a: !!python/object:os.system {}\n", "is not valid YAML: line 1, column 4: could not determine a constructor"),
    (b"model: \xff\xfe\n", "is not valid YAML: byte 7: invalid start byte"),
])
def test_unusable_yaml_content_is_a_config_error(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_yaml(str(path))


def test_directories_and_missing_files_are_config_errors(edflow_error, tmp_path):
    assert f"config file {str(tmp_path)!r} is a directory; give a .yaml file inside it" in \
        edflow_error("-b", str(tmp_path), "-t")
    assert "does not exist" in edflow_error("-b", str(tmp_path / "nope.yaml"), "-t")
    assert "-p 'logs/nothing': no such run folder or config" in edflow_error("-p", "logs/nothing")


def test_missing_first_stage_says_where_it_looked_and_how_to_train_it(edflow_error, tmp_path):
    line = edflow_error("-b", TOY, "-t", "+first_stage.run=nowhere")
    assert "first_stage run 'nowhere' was not found" in line
    assert str(tmp_path / "logs") in line and "edflow -b configs/nowhere.yaml -t" in line


def fake_run(logs, name, trained_hidden, config_hidden, drop=()):
    """A run folder whose checkpoint holds a toy model of width ``trained_hidden`` and whose config says
    ``config_hidden``."""
    import toy

    root = logs / f"2024-01-01T00-00-00_{name}"
    config = {**yaml.safe_load(open(TOY)), "Model": {"hidden": config_hidden, "dropout": 0.1}}
    write_config = root / "configs"
    write_config.mkdir(parents=True)
    write(write_config / "train_2024-01-01T00-00-00.yaml", config)
    state = toy.Model({"Model": {"hidden": trained_hidden}}).state_dict()
    checkpoint = root / "train" / "checkpoints" / "model-3.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state": {"model": {k: v for k, v in state.items() if k not in drop}}}, checkpoint)
    return checkpoint


def test_first_stage_whose_architecture_does_not_fit_its_checkpoint(edflow_error, tmp_path):
    checkpoint = fake_run(tmp_path / "logs", "wide", trained_hidden=8, config_hidden=16)
    line = edflow_error("-b", TOY, "-t", "+first_stage.run=wide")
    # the stage is named by the run folder its name resolved to (pinned in the run's config)
    run = os.path.dirname(os.path.dirname(os.path.dirname(checkpoint)))
    assert f"first_stage {run!r}: checkpoint {checkpoint} does not fit the model toy.Model" in line
    assert "'net.0.weight' has shape (8, 4) in the checkpoint but (16, 4) in the model" in line


def test_first_stage_checkpoint_with_missing_or_extra_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("EDFLOW_LOG_ROOT", str(tmp_path))
    fake_run(tmp_path, "partial", trained_hidden=8, config_hidden=8, drop=("net.0.bias",))
    with pytest.raises(FirstStageError, match=r"'partial'.*model-3\.ckpt.*'net\.0\.bias' is missing from the check"):
        load_first_stages({"run": "partial"})
    path = tmp_path / "extra.ckpt"
    import toy

    torch.save({**toy.Model({}).state_dict(), "head.weight": torch.zeros(1)}, path)
    with pytest.raises(FirstStageError, match="holds 'head.weight', which the model does not have"):
        load_first_stages({"checkpoint": str(path), "model": "toy.Model", "subconfig": {}})


def test_named_first_stages_must_be_sections():
    with pytest.raises(ConfigError, match=r"first_stage/classifier must be a mapping such as \{run: logs/<folder>\}"):
        load_first_stages({"classifier": "logs/run_1"})


def cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)])}
    return subprocess.run([sys.executable, "-m", "edflow", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_command_prints_one_line_and_exits_with_2(tmp_path):
    broken = write(tmp_path / "broken.yaml", "model: [toy.Model\n")
    for args in (["-b", TOY, "-t", "seed=1.5"], ["-b", broken, "-t"]):
        done = cli(*args, "--log-root", "logs", cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("edflow: error: config ")
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_a_dataset_that_cannot_be_read_is_one_line_naming_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    done = cli("-b", TOY, "-t", "--log-root", "logs", f"datasets.validation={{target: fairkit.data.CelebA, params: "
               f"{{split: test, root: {tmp_path / 'empty'}}}}}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("edflow: error: ") and str(tmp_path / "empty") in done.stderr


# ---------------------------------------------------------------- the checks themselves
def test_section_types_follow_the_defaults():
    defaults = {"lr": 0.1, "n": 2, "flag": False, "name": "colour", "sizes": (1, 2), "extra": None}
    accepted = {"lr": 1, "n": None, "name": ["Male", "Young"], "sizes": [3], "extra": {"any": "thing"}}
    assert section({"S": accepted}, "S", defaults) == {**defaults, **accepted}
    for key, value, expected in [("n", True, "an integer or null"), ("n", 2.0, "an integer or null"),
                                 ("lr", "1e-3", "remove the quotes around the number"), ("flag", 0, "true or false"),
                                 ("flag", None, "true or false"), ("name", None, "a string"), ("name", [1], "a string"),
                                 ("sizes", 3, "a list"), ("lr", [0.1, "x"], "a number")]:
        with pytest.raises(ConfigError, match=f"'S/{key}' must be {expected}|{expected}"):
            section({"S": {key: value}}, "S", defaults)


def test_runner_keys_in_the_debug_section_are_checked():
    check_runner_keys({"debug": {"num_steps": 2}, "eval_pipeline": {"callbacks": {"mse": "toy.mse_callback"}}})
    with pytest.raises(ConfigError, match="'debug/num_steps' must be an integer or null; got 'two'"):
        check_runner_keys({"debug": {"num_steps": "two"}})
    with pytest.raises(ConfigError, match="'eval_pipeline/callbacks' must map names to dotted paths"):
        check_runner_keys({"eval_pipeline": {"callbacks": ["toy.mse_callback"]}})
    with pytest.raises(ConfigError, match="config keys must be names, got 3"):
        check_runner_keys({3: "x"})


def test_exponents_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    assert load_yaml(write(tmp_path / "lr.yaml", "lr: 1e-4\nname: e5\nn: 12\n")) == {"lr": 1e-4, "name": "e5", "n": 12}
    assert parse_overrides(["lr=2E+3", "name=1e"]) == [("lr", 2000.0, False), ("name", "1e", False)]
    with pytest.raises(ConfigError, match="empty key name"):
        parse_overrides(["Model..z_dim=3"])


def test_class_paths_are_config_errors_and_import_errors():
    with pytest.raises(ClassPathError) as error:
        get_obj_from_str("edflow.config.RUNNER_KEYS")
    assert isinstance(error.value, ConfigError) and isinstance(error.value, ImportError)
    assert "'edflow.config.RUNNER_KEYS' is a dict, not a class or function" in str(error.value)


def test_every_runner_key_has_a_type_and_a_valid_default():
    from edflow.config import RUNNER_KEY_TYPES, RUNNER_KEYS, with_defaults

    assert set(RUNNER_KEY_TYPES) == set(RUNNER_KEYS)
    check_runner_keys(RUNNER_KEYS)
    check_runner_keys(with_defaults({}))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("seed: 1\n")
    path.chmod(0)
    with pytest.raises(ConfigError, match="cannot be read: Permission denied"):
        load_yaml(str(path))
