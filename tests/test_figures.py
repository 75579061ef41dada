"""make figures: every figure is drawn from the records committed under results/, reproducibly, without training."""
import os
import shutil

import pytest

from scripts import figures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = ["nullsample/variants.csv", "fairgen/trajectories.csv", "fairgen/final.csv", "latentdebias/seeds_cpu.csv"]
FIGURES = ["nullsample/accuracy_vs_hgr.png", "fairgen/fairness_discrepancy.png", "fairgen/red_share.png",
           "latentdebias/deo_pairs.png"]


def copy_records(target):
    for name in RECORDS:
        os.makedirs(os.path.join(target, os.path.dirname(name)), exist_ok=True)
        shutil.copy(os.path.join(ROOT, "results", name), os.path.join(target, name))


def test_figures_from_committed_records_are_reproducible(tmp_path):
    results = tmp_path / "results"
    copy_records(results)
    written = figures.make_all(results=str(results))
    assert sorted(os.path.relpath(p, results) for p in written) == sorted(FIGURES)
    first = {name: (results / name).read_bytes() for name in FIGURES}
    for content in first.values():
        assert content.startswith(b"\x89PNG") and b"Software" not in content  # no version stamp
    figures.make_all(results=str(results))
    assert {name: (results / name).read_bytes() for name in FIGURES} == first


def test_committed_figures_have_the_regenerated_size(tmp_path):
    # Bytes may differ with another matplotlib or font version; the canvas must not.
    from PIL import Image

    copy_records(tmp_path)
    figures.make_all(results=str(tmp_path))
    for name in FIGURES:
        with Image.open(os.path.join(ROOT, "results", name)) as committed, Image.open(tmp_path / name) as fresh:
            assert committed.size == fresh.size, name


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


def test_latentdebias_pairs_need_known_panels(tmp_path):
    from latentdebias import figures as latentdebias_figures

    (tmp_path / "seeds_cpu.csv").write_text("seed,split,metric,baseline,augmented\n0,test,ap,90,91\n")
    with pytest.raises(ValueError, match="without a label"):
        latentdebias_figures.make_figures(records=str(tmp_path), out=str(tmp_path))
