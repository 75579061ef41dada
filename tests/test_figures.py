"""make figures: every figure is drawn from the records committed under results/, reproducibly, without training."""
import os
import shutil

import pytest

from fairkit.figures import read_records
from scripts import figures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = ["nullsample/variants.csv", "fairgen/trajectories.csv", "fairgen/final.csv", "latentdebias/seeds_cpu.csv",
           "iin/figures.yaml", "iin/cmnist_diin_cpu.yaml", "iin/cmnist_diin_cpu.pt", "iin/cmnist_ae_cpu.yaml",
           "iin/cmnist_ae_cpu.pt"]
IIN_FIGURES = ["iin/samples.png", "iin/swap_color.png", "iin/swap_digit.png"]
FIGURES = ["nullsample/accuracy_vs_hgr.png", "fairgen/fairness_discrepancy.png", "fairgen/red_share.png",
           "latentdebias/deo_pairs.png"] + IIN_FIGURES
# IIN's grids are computed by networks on the CPU, whose float results may differ across machines (vector width,
# thread count): the committed grids must match the regenerated ones within 8 of 255 per pixel value. (Drawing them
# from float16 instead of float32 weights changes them by at most 2.)
IIN_PIXEL_TOLERANCE = 8


def copy_records(target):
    for name in RECORDS:
        os.makedirs(os.path.join(target, os.path.dirname(name)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "results", name), os.path.join(target, name))


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory, mnist_available):
    """make_all once on a copy of the committed records (IIN's grids take a while on a busy CPU)."""
    results = tmp_path_factory.mktemp("results")
    copy_records(results)
    return results, figures.make_all(results=str(results))


def test_figures_from_committed_records_are_reproducible(regenerated, tmp_path):
    results, written = regenerated
    assert sorted(os.path.relpath(p, results) for p in written) == sorted(FIGURES)
    first = {name: (results / name).read_bytes() for name in FIGURES}
    for content in first.values():
        assert content.startswith(b"\x89PNG") and b"Software" not in content  # no version stamp
    copy_records(tmp_path)
    figures.make_all(results=str(tmp_path))
    assert {name: (tmp_path / name).read_bytes() for name in FIGURES} == first


def test_committed_figures_have_the_regenerated_size(regenerated):
    # Bytes may differ with another matplotlib or font version; the canvas must not.
    import numpy as np
    from PIL import Image

    results, _ = regenerated
    for name in FIGURES:
        with Image.open(os.path.join(ROOT, "results", name)) as committed, Image.open(results / name) as fresh:
            assert committed.size == fresh.size, name
            if name in IIN_FIGURES:
                difference = np.abs(np.asarray(committed, dtype=int) - np.asarray(fresh, dtype=int))
                assert difference.max() <= IIN_PIXEL_TOLERANCE, name


def test_end_studies_are_the_folders_holding_run_records(tmp_path):
    assert figures.end_studies(str(tmp_path)) == []  # no EnD records: nothing to report, no error
    (tmp_path / "end" / "before" / "table_only").mkdir(parents=True)
    for run in ("a/vanilla", "a/end", "b/c/end"):
        (tmp_path / "end" / run).mkdir(parents=True)
        (tmp_path / "end" / run / "epochs.csv").write_text("step\n")
    assert figures.end_studies(str(tmp_path)) == [str(tmp_path / "end" / "a"), str(tmp_path / "end" / "b" / "c")]


def test_missing_records_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="variants.csv"):
        figures.make_all(results=str(tmp_path))
    copy_records(tmp_path)
    path = tmp_path / "fairgen" / "trajectories.csv"
    path.write_text(path.read_text().replace("red_share", "share"))
    with pytest.raises(ValueError, match="trajectories.csv: missing column"):
        figures.make_all(results=str(tmp_path))


def test_latentdebias_table_records_draw_the_pairs_figure(tmp_path):
    from latentdebias.scripts import figures as latentdebias_figures
    from latentdebias.scripts import table

    def results(deo, ba):  # one run's evaluation, as the table reads it (bootstrap medians)
        return {"test/ap": 0.9, "test/ap_median": 0.9, "test/deo_median": deo, "test_biased/ap": 0.99,
                "test_biased/ba_median": ba}

    rows = {"digit_group": ([results(0.2, 0.01), results(0.18, 0.008)], [results(0.15, 0.01), results(0.19, 0.002)])}
    table.write_records(rows, [0, 3], str(tmp_path / "seeds_cpu.csv"))
    records = read_records(str(tmp_path / "seeds_cpu.csv"), required=("target", "seed", "split", "metric"))
    deo = {(r["seed"], r["baseline"], r["augmented"]) for r in records if r["metric"] == "deo"}
    assert deo == {("0", "20.0", "15.0"), ("3", "18.0", "19.0")}  # in %, paired by seed
    assert {r["metric"] for r in records} == {"ap", "deo", "ba"}  # KL absent from these runs: no row
    (path,) = latentdebias_figures.make_figures(records=str(tmp_path), out=str(tmp_path))
    assert path.endswith("deo_pairs.png") and os.path.getsize(path) > 0


def test_latentdebias_pairs_need_known_panels_and_one_target(tmp_path):
    from latentdebias.scripts import figures as latentdebias_figures

    (tmp_path / "seeds_cpu.csv").write_text("seed,split,metric,baseline,augmented\n0,test,ap,90,91\n")
    with pytest.raises(ValueError, match="no rows for the figure's panels"):
        latentdebias_figures.make_figures(records=str(tmp_path), out=str(tmp_path))
    (tmp_path / "seeds_cpu.csv").write_text("target,seed,split,metric,baseline,augmented\n"
                                            "a,0,test,deo,20,19\nb,0,test,deo,21,18\n")
    with pytest.raises(ValueError, match="one target attribute per figure"):
        latentdebias_figures.make_figures(records=str(tmp_path), out=str(tmp_path))
