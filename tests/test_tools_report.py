"""``edflow report``: mean ± std across runs grouped by experiment and config, CSV, and plots per scalar; and the
per-run images in TensorBoard and in the run folder."""
from __future__ import annotations

import csv
import glob
import os
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from edflow.logger import read_metrics
from edflow.main import main as edflow_main
from edflow.main import run as edflow_run
from edflow.report import differing_keys, markdown_table, scalar_figure
from edflow.runs import eval_results, experiment_of, scalar_series

TOY_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy.yaml")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    """Two seeds of the toy config, a third seed with a narrower model, and a folder that never evaluated."""
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("logs")
        patch.setenv("EDFLOW_LOG_ROOT", str(root))
        made = {"seed3": edflow_run(["-b", TOY_CONFIG, "-t", "--log-root", str(root)]),
                "seed5": edflow_run(["-b", TOY_CONFIG, "-t", "--log-root", str(root), "seed=5"]),
                "narrow": edflow_run(["-b", TOY_CONFIG, "-t", "--log-root", str(root), "seed=7", "Model.hidden=4"])}
        empty = os.path.join(root, "2020-01-01T00-00-00_toy_seed9")
        shutil.copytree(os.path.join(made["seed3"], "configs"), os.path.join(empty, "configs"))
        made["empty"] = empty
        yield made


def final_mse(run: str) -> float:
    """validation/mse of the run's last evaluation, read from its results.yaml files directly."""
    paths = glob.glob(os.path.join(run, "eval", "*", "*", "results.yaml"))
    last = max(paths, key=lambda p: int(os.path.basename(os.path.dirname(p))))
    return yaml.safe_load(open(last))["validation/mse"]


def best_mse(run: str) -> float:
    """model_selection is {metric: validation/mse, mode: min}: the smallest of every evaluation of the run."""
    return min(yaml.safe_load(open(p))["validation/mse"]
               for p in glob.glob(os.path.join(run, "eval", "*", "*", "results.yaml")))


def read_csv(path: str) -> dict[tuple[str, str], dict]:
    with open(path) as f:
        return {(row["experiment"], row["metric"]): row for row in csv.DictReader(f)}


def test_report_gives_mean_and_std_over_seeds_grouped_by_config(runs, tmp_path, capsys):
    out = tmp_path / "report"
    edflow_main(["report", os.path.dirname(runs["seed3"]), "--out", str(out)])
    captured = capsys.readouterr()
    assert "2020-01-01T00-00-00_toy_seed9 has no evaluation results; left out" in captured.err

    wide, narrow = "toy [Model/hidden=8]", "toy [Model/hidden=4]"
    seeds = [final_mse(runs["seed3"]), final_mse(runs["seed5"])]
    assert seeds[0] != seeds[1]  # the seeds really are different runs
    table = read_csv(out / "report.csv")
    row = table[wide, "validation/mse"]
    assert float(row["mean"]) == pytest.approx(np.mean(seeds), rel=1e-9)
    assert float(row["std"]) == pytest.approx(np.std(seeds, ddof=1), rel=1e-9)
    assert int(row["n"]) == 2 and set(row["runs"].split(";")) == {os.path.basename(runs[k]) for k in ("seed3", "seed5")}
    row = table[narrow, "validation/mse"]
    assert int(row["n"]) == 1 and float(row["mean"]) == pytest.approx(final_mse(runs["narrow"]), rel=1e-9)
    assert row["std"] == "nan"

    cell = f"{np.mean(seeds):.4g} ± {np.std(seeds, ddof=1):.4g}"
    summary_line = next(line for line in captured.out.splitlines() if line.startswith(f"| {wide}"))
    assert cell in summary_line and "| 2 " in summary_line
    report = (out / "report.md").read_text()
    assert summary_line in report and "![validation_mse](plots/validation_mse.png)" in report


def test_report_at_best_takes_the_selected_checkpoints_results(runs, tmp_path):
    out = tmp_path / "best"
    edflow_main(["report", runs["seed3"], runs["seed5"], "--at", "best", "--out", str(out), "--no-plots",
                 "--metrics", "validation/mse"])
    table = read_csv(out / "report.csv")
    seeds = [best_mse(runs["seed3"]), best_mse(runs["seed5"])]
    assert list(table) == [("toy", "validation/mse")]  # one config: no keys differ; one metric kept
    assert float(table["toy", "validation/mse"]["mean"]) == pytest.approx(np.mean(seeds), rel=1e-9)
    assert not (out / "plots").exists()


def test_report_plots_every_scalar_against_the_step_with_one_line_per_run(runs, tmp_path):
    out = tmp_path / "plots"
    edflow_main(["report", runs["seed3"], runs["seed5"], runs["narrow"], "--out", str(out)])
    keys = set().union(*(set(r) for run in ("seed3", "seed5", "narrow") for r in read_metrics(runs[run])))
    keys -= {"step", "time", "epoch"}
    assert sorted(os.listdir(out / "plots")) == sorted(k.replace("/", "_") + ".png" for k in keys)
    assert Image.open(out / "plots" / "train_loss.png").size == (600, 400)
    series = {run: scalar_series(run)["train/loss"] for run in runs.values() if os.path.exists(
        os.path.join(run, "metrics.jsonl"))}
    figure = scalar_figure("train/loss", series)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == [os.path.basename(run) for run in series]
    logged = [(r["step"], r["train/loss"]) for r in read_metrics(runs["seed5"]) if "train/loss" in r]
    np.testing.assert_allclose(np.column_stack(lines[1].get_data()), np.array(logged))


def test_experiment_names_come_from_the_config_or_the_folder_name(tmp_path):
    assert experiment_of(str(tmp_path / "2026-01-02T03-04-05_cmnist_end_seed3"), {}) == "cmnist_end"
    assert experiment_of(str(tmp_path / "2026-01-02T03-04-05_mnist_ae_2"), {}) == "mnist_ae"
    assert experiment_of(str(tmp_path / "2026-01-02T03-04-05_toy-s1"), {}) == "toy"
    assert experiment_of(str(tmp_path / "2026-01-02T03-04-05_toy-s1"), {"experiment_name": "x"}) == "x"
    configs = [{"seed": 1, "Model": {"z": 8, "w": 1}, "first_stage": {"run": "a"}},
               {"seed": 2, "Model": {"z": 16, "w": 1}, "first_stage": {"run": "b"}}]
    assert differing_keys(configs, ("seed", "first_stage")) == ["Model/z"]


def test_markdown_table_pads_columns():
    assert markdown_table(["a", "bb"], [[1, "x"], ["long", 2]]).splitlines() == [
        "| a    | bb |", "|------|----|", "| 1    | x  |", "| long | 2  |"]


def test_run_images_land_in_the_run_folder_and_in_tensorboard(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install 'fairtoolkit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = edflow_run(["-b", TOY_CONFIG, "-t", "--log-root", str(tmp_path), "+integrations.tensorboard=true",
                      "num_epochs=1"])
    pngs = sorted(glob.glob(os.path.join(run, "train", "log_op", "inputs_*.png")))
    assert [int(p[-11:-4]) for p in pngs] == [1, 4, 8]  # log_freq 4, and the first step
    events = EventAccumulator(os.path.join(run, "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert "inputs" in events.Tags()["images"]
    logged = events.Images("inputs")
    assert [e.step for e in logged] == [1, 4, 8]
    for event, png in zip(logged, pngs):
        import io

        shown = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
        np.testing.assert_array_equal(shown, np.asarray(Image.open(png).convert("RGB")))
    assert "train/loss" in events.Tags()["scalars"] and eval_results(run)
