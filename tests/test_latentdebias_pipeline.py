"""latentdebias.scripts.pipeline runs its stages through edflow.launch, in this process; shown on the toy problem of
tests/toy.py (the real chain runs in test_latentdebias_configs.py)."""
import os

import pytest

from edflow.launch import LaunchError
from latentdebias.scripts.pipeline import Stage, format_timings, run_stages

from toy import TOY


def test_stages_run_in_order_and_finished_ones_are_reused(tmp_path):
    stages = [Stage(key, [TOY], f"toy_{key}", ["num_epochs=1"]) for key in ("first", "second")]
    timings = run_stages(stages, str(tmp_path))
    assert [os.path.basename(t.run).split("_", 1)[1] for t in timings] == ["toy_first", "toy_second"]
    assert all(t.wall > 0 and not t.reused for t in timings)
    again = run_stages(stages, str(tmp_path), skip_finished=True, only=["second"])
    assert [(t.run, t.reused) for t in again] == [(timings[1].run, True)]
    assert "(reused)" in format_timings(again)


def test_a_failing_stage_names_its_run_and_log(tmp_path):
    stages = [Stage("bad", [TOY], "toy_bad", ["num_epochs=1", "+eval_pipeline.callbacks.bug=toy.failing_callback",
                                              "+fail_eval_at=0"])]
    with pytest.raises(LaunchError, match=r"run 'toy_bad' failed: .*its log: .*_toy_bad"):
        run_stages(stages, str(tmp_path))
