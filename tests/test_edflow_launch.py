"""edflow.launch (training runs launched in this process or in subprocesses) and the log-root helpers of
edflow.runs, on the toy regression problem of tests/toy.py."""
import argparse
import os

import pytest

from edflow.launch import Launch, LaunchError, launch, launch_all
from edflow.first_stage import log_roots, looking_up_runs
from edflow.first_stage import find_run as find_named_run
from edflow.runs import add_log_root_argument, read_status, runs_named

from toy import HERE, TOY

ONE_EPOCH = ("num_epochs=1",)
BUG = ("+eval_pipeline.callbacks.bug=toy.failing_callback", "+fail_eval_at=0")  # fails after the folder exists


def test_in_process_launch_returns_the_finished_run_folder(tmp_path):
    folder = launch([TOY], ONE_EPOCH, name="first", log_root=str(tmp_path))
    assert os.path.dirname(folder) == str(tmp_path) and folder.endswith("_first")
    assert read_status(folder)["status"] == "finished"
    assert runs_named(name="first", log_root=str(tmp_path)) == [folder]
    assert find_named_run("first", log_root=str(tmp_path)) == folder


def test_in_process_failure_names_the_run_and_its_log(tmp_path):
    with pytest.raises(LaunchError, match=r"run 'broken' failed: .*a bug in the metric.*its log: .*_broken") as error:
        launch([TOY], ONE_EPOCH + BUG, name="broken", log_root=str(tmp_path))
    log = str(error.value).split("its log: ")[1]
    assert os.path.isfile(log) and "a bug in the metric" in open(log).read()
    with pytest.raises(LaunchError, match="run 'misspelt' failed: .*before making a run folder"):
        launch([TOY], ["Model.hiden=3"], name="misspelt", log_root=str(tmp_path))


def test_subprocess_runs_report_each_finished_run_and_a_failing_one_names_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE)  # the toy's classes
    finished = []
    with pytest.raises(LaunchError, match=r"run 'c' failed \(exit code [1-9]\d*\); its log: .*c\.log"):
        launch_all([Launch([TOY], "a", ONE_EPOCH), Launch([TOY], "c", ONE_EPOCH + BUG)], log_root=str(tmp_path),
                   on_finish=lambda item, folder: finished.append((item.name, folder)))
    assert [name for name, _ in finished] == ["a"] and finished[0][1].endswith("_a")
    assert read_status(finished[0][1])["status"] == "finished"
    assert "a bug in the metric" in (tmp_path / "c.log").read_text()


def test_runs_named_matches_the_whole_name_and_the_same_second_suffix(tmp_path):
    for folder in ("2024-01-01T00-00-00_toy", "2024-01-01T00-00-00_toy_1", "2024-01-02T00-00-00_toy_big",
                   "2023-12-31T00-00-00_toy", "2024-01-03T00-00-00_toy"):
        os.makedirs(tmp_path / folder / "configs")
    os.makedirs(tmp_path / "2024-01-04T00-00-00_toy")  # no configs, no status: not (yet) a run folder
    names = [os.path.basename(r) for r in runs_named(name="toy", log_root=str(tmp_path), since="2024-01-01T00-00-00")]
    assert names == ["2024-01-01T00-00-00_toy", "2024-01-01T00-00-00_toy_1", "2024-01-03T00-00-00_toy"]
    assert runs_named(name="toy", log_root=str(tmp_path / "missing")) == []


def test_log_root_argument_defaults_to_the_environment_then_logs(monkeypatch):
    def parsed(*argv):
        parser = argparse.ArgumentParser()
        add_log_root_argument(parser)
        return parser.parse_args(argv).log_root

    monkeypatch.delenv("EDFLOW_LOG_ROOT", raising=False)
    assert parsed() == "logs"
    monkeypatch.setenv("EDFLOW_LOG_ROOT", "/elsewhere")
    assert parsed() == "/elsewhere" and parsed("--log-root", "mine") == "mine"


def test_run_names_resolve_under_the_given_log_root_only_within_the_block(monkeypatch):
    monkeypatch.setenv("EDFLOW_LOG_ROOT", "before")
    with looking_up_runs(log_root="inside"):
        assert log_roots() == ["inside"]
        assert os.environ["EDFLOW_LOG_ROOT"] == "before"  # passed on, never through the environment
    assert log_roots() == ["before"]
    with pytest.raises(KeyError), looking_up_runs(log_root="inside"):
        raise KeyError("an error inside the block")
    assert log_roots() == ["before"]
