"""EnD through the runner (configs in debug mode, the per-epoch schedule and evaluations) and the sweep's table."""
import json
import os

import pytest
import yaml

from edflow.main import run
from end.scripts.demo import results_table
from end.scripts.curves import best_row, export, read_record, report
from end.scripts.sweep import Setting, main as sweep_main, mean_std, summarise, top_runs, weight_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def config(name):
    return os.path.join(ROOT, "configs", name)


@pytest.mark.parametrize("method", ["vanilla", "end"])
def test_paper_and_cpu_configs_run_in_debug_mode(method, tmp_path, mnist_available):
    folder = run(["-b", config(f"bmnist_{method}.yaml"), config(f"cpu/bmnist_{method}.yaml"), "-t", "-d",
                  "--log-root", str(tmp_path)])
    with open(os.path.join(folder, "train", "best.yaml")) as f:
        best = yaml.safe_load(f)
    assert best["metric"] == "validation/accuracy"
    results = best["results"]
    for split in ("validation", "test_biased", "test_unbiased"):
        assert 0 <= results[f"{split}/accuracy"] <= 1
        assert {f"{split}/accuracy_color_{c}" for c in range(10)} <= set(results)
    plots = [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
             if name == "per_color_accuracy.png"]
    assert len(plots) == 3


def test_learning_rate_steps_every_epoch_and_model_selection_keeps_the_best(tmp_path, mnist_available):
    folder = run(["-b", config("bmnist_end.yaml"), "-t", "--log-root", str(tmp_path), "Data.train_subset=64",
                  "Data.eval_subset=40", "batch_size=16", "eval_batch_size=40", "num_epochs=3", "log_freq=1",
                  "Model.width=0.125", "Trainer.lr_step_epochs=1", "Trainer.lr_gamma=0.5",
                  "datasets.test_biased=null"])
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    lr_by_epoch = {r["epoch"]: r["train/lr"] for r in records if "train/lr" in r}
    assert lr_by_epoch == pytest.approx({0: 1e-3, 1: 5e-4, 2: 2.5e-4})
    evaluations = [r for r in records if "validation/accuracy" in r]
    assert len(evaluations) == 3 and all("test_unbiased/accuracy_color_9" in r for r in evaluations)
    assert not any("test_biased/accuracy" in r for r in evaluations)  # a split set to null is left out
    with open(os.path.join(folder, "train", "best.yaml")) as f:
        best = yaml.safe_load(f)
    assert best["value"] == max(r["validation/accuracy"] for r in evaluations)
    assert os.path.isfile(os.path.join(folder, "train", "checkpoints", "best.ckpt"))


def records(method, rho, alpha, beta, values):
    return [{"method": method, "rho": rho, "alpha": alpha, "beta": beta, "seed": seed, "validation": v,
             "biased": 0.99, "unbiased": u, "run": f"run{seed}"} for seed, (v, u) in enumerate(values)]


def test_sweep_table_picks_the_setting_with_the_best_mean_validation_accuracy():
    rows = summarise(records("end", 0.997, 0.1, 0.1, [(0.5, 0.5), (0.7, 0.6)])
                     + records("end", 0.997, 0.1, 1.0, [(0.6, 0.2), (0.64, 0.3)])
                     + records("vanilla", 0.997, 0.0, 0.0, [(0.3, 0.3)]))
    by_beta = {(r["method"], r["beta"]): r for r in rows}
    assert by_beta[("end", 1.0)]["best"] and not by_beta[("end", 0.1)]["best"]  # 62 > 60 on validation
    assert by_beta[("vanilla", 0.0)]["best"]
    assert by_beta[("end", 1.0)]["unbiased_mean"] == pytest.approx(25.0)
    assert by_beta[("end", 1.0)]["unbiased_std"] == pytest.approx(7.0710678)  # sample std of 20 and 30
    assert by_beta[("end", 1.0)]["paper_unbiased"] == 83.7


def test_mean_std_of_one_value_has_zero_spread():
    assert mean_std([3.0]) == (3.0, 0.0)


def test_random_search_stays_in_the_given_ranges():
    pairs = weight_pairs([0.01, 1.0], [0.1, 10.0], random=20, seed=0)
    assert len(pairs) == 20 and len(set(pairs)) == 20
    assert all(0.01 <= a <= 1.0 and 0.1 <= b <= 10.0 for a, b in pairs)
    assert weight_pairs([0.1, 1.0], [2.0], random=None, seed=0) == [(0.1, 2.0), (1.0, 2.0)]


def test_vanilla_runs_carry_no_weights():
    assert Setting("vanilla", 0.99, 0.0, 0.0).overrides(2) == ("Data.rho=0.99", "seed=2")
    assert "Loss.beta=0.5" in Setting("end", 0.99, 0.1, 0.5).overrides(0)


def test_demo_table_lists_both_methods_with_the_paper_numbers():
    result = {"epoch": 3, "step": 30, "validation": 0.5, "biased": 0.99, "unbiased": 0.45}
    table = results_table({"vanilla": result, "end": result}, 0.997)
    assert "| vanilla | 3 | 50.0 | 99.0 | 45.0 | 33.4 |" in table and "| EnD |" in table and "83.7" in table


def test_top_runs_reports_mean_and_population_std_of_the_k_best_by_validation():
    runs = (records("end", 0.997, 0.2, 0.3, [(0.50, 0.40)]) + records("end", 0.997, 0.9, 0.1, [(0.80, 0.70)])
            + records("end", 0.997, 0.5, 0.5, [(0.70, 0.60)]) + records("end", 0.997, 0.1, 0.9, [(0.60, 0.90)])
            + records("vanilla", 0.997, 0.0, 0.0, [(0.3, 0.2), (0.4, 0.1)]))
    rows = {r["method"]: r for r in top_runs(runs, 3)}
    end = rows["end"]
    assert end["runs"] == 4 and end["top"] == 3
    assert [setting[:2] for setting in end["settings"]] == [(0.9, 0.1), (0.5, 0.5), (0.1, 0.9)]  # 80 > 70 > 60
    assert end["unbiased_mean"] == pytest.approx((70 + 60 + 90) / 3)
    assert end["unbiased_std"] == pytest.approx(12.4721913)  # population std of 70, 60, 90 (EnD's results.py)
    assert rows["vanilla"]["top"] == 2 and rows["vanilla"]["unbiased_mean"] == pytest.approx(15.0)


def test_paper_reporting_sweep_runs_end_to_end(tmp_path, mnist_available):
    """A random search of 3 (alpha, beta) in [0, 1] plus vanilla, tiny data, then the top-2 table."""
    out = tmp_path / "out"
    tiny = ["Data.train_subset=256", "Data.eval_subset=128", "num_epochs=1", "batch_size=64"]
    sweep_main(["--rho", "0.99", "--seeds", "0", "--alpha", "0", "1", "--beta", "0", "1", "--random", "3",
                "--top", "2", "--vanilla", "--jobs", "2", "--log-root", str(tmp_path / "logs"), "--out", str(out),
                *tiny])
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and sum(r["method"] == "end" for r in lines) == 3
    assert all(0 <= r["alpha"] <= 1 and 0 <= r["beta"] <= 1 for r in lines)
    text = (out / "results.md").read_text()
    assert "mean ± std of the 2 runs with the best validation" in text
    best_two = sorted((r for r in lines if r["method"] == "end"), key=lambda r: -r["validation"])[:2]
    expected = sum(100 * r["unbiased"] for r in best_two) / 2
    assert f"{expected:.1f} ±" in text.split("the paper's reporting")[1]


def test_curves_export_and_report_from_a_run(tmp_path, mnist_available):
    folder = run(["-b", config("bmnist_vanilla.yaml"), config("cpu/bmnist_vanilla.yaml"), "-t",
                  "--log-root", str(tmp_path), "Data.train_subset=128", "Data.eval_subset=64", "num_epochs=3",
                  "batch_size=64", "Model.width=0.125"])
    record_folder = export(folder, str(tmp_path / "study"))
    record = read_record(record_folder)
    assert [row["epoch"] for row in record["rows"]] == [1, 2, 3]
    assert record["label"] == "vanilla (ReBias net)" and record["rho"] == 0.997
    with open(os.path.join(folder, "train", "best.yaml")) as f:
        best = yaml.safe_load(f)
    chosen = best_row(record["rows"])
    assert chosen["step"] == best["step"]  # the same epoch as the runner's model selection
    assert chosen["unbiased"] == pytest.approx(100 * best["results"]["test_unbiased/accuracy"], abs=1e-3)
    path, text = report(str(tmp_path / "study"))
    assert os.path.getsize(path) > 10_000 and "| 0.997 | vanilla (ReBias net) | 3 |" in text
