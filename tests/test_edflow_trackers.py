"""What a run keeps besides its checkpoints: console.log (the console, across resumes), and evaluation pictures,
scalars and resumes as TensorBoard's event reader and W&B (offline) see them."""
import glob
import io
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image
from tqdm.auto import tqdm

from edflow import checkpoint as ckpt
from edflow import console
from edflow.logger import WANDB_ID_FILE
from edflow.main import run
from toy import SUBPROCESS_ENV, TOY, metrics

pytestmark = pytest.mark.filterwarnings("ignore:a warning from the drawing callback")
DRAW = "+eval_pipeline.callbacks.draw=test_edflow_trackers.drawing_callback"  # toy: 8 steps per epoch


def drawing_callback(root, data_in, data_out, config):
    """Draws as the methods' callbacks do: a PNG written into its folder (EnD's per-colour plot), images and a
    figure returned; and warns as iin's FID callback does without its weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logging.getLogger("iin").warning("FID skipped: no Inception weights here (test)")
    warnings.warn("a warning from the drawing callback", UserWarning)
    error = data_out.labels["prediction"] - data_out.labels["target"]
    plot = plt.figure(figsize=(2, 2))
    plt.hist(error, bins=5)
    plot.savefig(os.path.join(root, "per_color_accuracy.png"), dpi=40)
    plt.close(plot)
    curve = plt.figure(figsize=(2, 2))
    plt.plot(np.sort(error))
    images = np.tanh(np.asarray(data_out.labels["prediction"][:4], dtype=np.float32)).reshape(4, 1, 1, 1)
    return {"scalars": {"mean_error": float(np.mean(error))}, "images": {"predictions": np.tile(images, (1, 1, 2, 2))},
            "figures": {"error_curve": curve}}


def read_log(root):
    with open(os.path.join(root, console.FILE_NAME)) as f:
        return f.read()


def edflow(*args):
    return subprocess.run([sys.executable, "-m", "edflow", *args], env=SUBPROCESS_ENV, capture_output=True, text=True)


# --- console.log ---------------------------------------------------------------------------------------------
def test_console_log_keeps_what_each_session_printed_warnings_and_errors_included(tmp_path):
    first = edflow("-b", TOY, "-t", "--log-root", str(tmp_path), "num_epochs=1", DRAW)
    assert first.returncode == 0, first.stderr
    assert "FID skipped" in first.stderr  # the terminal still gets everything (tee)
    root = glob.glob(str(tmp_path / "*_toy"))[0]
    text = read_log(root)
    assert text.count("===== session ") == 1 and "FID skipped: no Inception weights here (test)" in text
    assert "UserWarning: a warning from the drawing callback" in text
    assert f"edflow: run folder {root}" in text.splitlines()[-1]
    assert "\r" not in text and "\x1b" not in text
    bars = [line for line in text.splitlines() if line.startswith("train:")]
    assert len(bars) == 1 and "100%" in bars[0] and "8/8" in bars[0]  # the bar's final state, once
    assert not [line for line in text.splitlines() if line.startswith(("eval validation", "callbacks"))]

    # a resume appends a second session, which ends in a failing callback: its traceback and error are kept
    second = edflow("-p", root, "-t", "num_epochs=2", "+eval_pipeline.callbacks.bug=toy.failing_callback",
                    "+fail_eval_at=16")
    assert second.returncode == 1
    text = read_log(root)
    sessions = text.split("===== session ")[1:]
    assert len(sessions) == 2 and sessions[0].endswith(f"edflow: run folder {root}\n")
    assert f"-p {root} -t num_epochs=2" in sessions[1].splitlines()[0]
    assert f"edflow: restored {root}/train/checkpoints/model-8.ckpt (step 8)" in sessions[1]
    assert "ZeroDivisionError: a bug in the metric" in sessions[1]
    assert sessions[1].splitlines()[-1].startswith(f"edflow: the run stopped ({root}/status.yaml: failed)")


def test_progress_bars_leave_their_final_state_and_messages_their_lines(tmp_path, capsys):
    with console.capture() as log:
        print("before the run folder exists")
        log.attach(str(tmp_path), header="test")
        for i in tqdm(range(3), desc="outer", file=sys.stderr, mininterval=0):
            for _ in tqdm(range(50), desc="inner", leave=False, file=sys.stderr, mininterval=0):
                pass
            tqdm.write(f"message {i}", file=sys.stderr)
        print("done\n\nafter an empty line")
    lines = read_log(tmp_path).splitlines()
    assert lines[0].startswith("===== session ") and lines[0].endswith(": test =====")
    outer = [line for line in lines if "outer" in line]
    assert len(outer) == 1 and "3/3" in outer[0] and "100%" in outer[0]
    assert not [line for line in lines if "inner" in line]
    assert [line for line in lines[1:] if "outer" not in line] == [
        "before the run folder exists", "message 0", "message 1", "message 2", "done", "", "after an empty line"]
    assert "message 2" in capsys.readouterr().err  # the terminal got it too
    assert sys.stdout is not None and not isinstance(sys.stderr, console._Tee)  # streams given back


def test_a_console_log_that_cannot_be_written_warns_once_and_training_goes_on(tmp_path, capsys):
    root = run(["-b", TOY, "-t", "--log-root", str(tmp_path), "num_steps=4"])
    os.remove(os.path.join(root, console.FILE_NAME))
    os.mkdir(os.path.join(root, console.FILE_NAME))  # appending to it fails, as on a lost mount
    capsys.readouterr()
    assert run(["-p", root, "-t", "num_steps=8"]) == root
    err = capsys.readouterr().err
    assert err.count("edflow: warning: cannot write") == 1 and "console.log" in err and "the run goes on" in err
    assert max(r["step"] for r in metrics(root)) == 8
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))) == 8


def test_only_rank_zero_writes_the_console_log(tmp_path):
    with console.capture() as log:
        print("from rank 1")
        log.attach(str(tmp_path), header="test", main_process=False)
        print("still rank 1")
    assert not os.path.exists(tmp_path / console.FILE_NAME)


# --- TensorBoard ---------------------------------------------------------------------------------------------
def tensorboard_events(root):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install 'fairtoolkit[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(root, "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    return events


def test_evaluation_pictures_reach_tensorboard_and_a_resume_drops_the_steps_past_its_checkpoint(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install 'fairtoolkit[tensorboard]'")
    root = run(["-b", TOY, "-t", "--log-root", str(tmp_path), "num_epochs=2", DRAW, "+integrations.tensorboard=true"])
    events = tensorboard_events(root)
    drawn = {"eval/validation/per_color_accuracy", "eval/validation/predictions", "eval/validation/error_curve"}
    assert drawn <= set(events.Tags()["images"]) and "inputs" in events.Tags()["images"]
    assert [e.step for e in events.Images("eval/validation/per_color_accuracy")] == [8, 16]
    written = glob.glob(os.path.join(root, "eval", "*", "16", "validation", "per_color_accuracy.png"))[0]
    shown = Image.open(io.BytesIO(events.Images("eval/validation/per_color_accuracy")[-1].encoded_image_string))
    np.testing.assert_array_equal(np.asarray(shown.convert("RGB")), np.asarray(Image.open(written).convert("RGB")))
    assert {"validation/mean_error", "train/loss"} <= set(events.Tags()["scalars"])

    # resumed from the checkpoint at step 8 (saved before that epoch's evaluation): steps 9..16 are logged again
    resumed = run(["-p", root, "-t", "-c", os.path.join(root, "train", "checkpoints", "model-8.ckpt"), "num_epochs=2"])
    assert resumed == root
    events = tensorboard_events(root)
    for tag in events.Tags()["scalars"] + events.Tags()["images"]:
        steps = [e.step for e in (events.Scalars(tag) if tag in events.Tags()["scalars"] else events.Images(tag))]
        later = [s for s in steps if s > 8]
        assert len(later) == len(set(later)), (tag, steps)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 4, 8, 12, 16]
    logged = {r["step"]: r["train/loss"] for r in metrics(root) if "train/loss" in r}
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([logged[s] for s in (1, 4, 8, 12, 16)])


# --- W&B -----------------------------------------------------------------------------------------------------
@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed: pip install 'fairtoolkit[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))


def offline_runs(root):
    return sorted(glob.glob(os.path.join(root, "wandb", "offline-run-*")))


def test_wandb_gets_evaluation_pictures_and_a_resumed_run_continues_the_same_wandb_run(tmp_path, wandb_offline):
    root = run(["-b", TOY, "-t", "--log-root", str(tmp_path), "num_epochs=1", DRAW, "+integrations.wandb=true"])
    with open(os.path.join(root, WANDB_ID_FILE)) as f:
        run_id = f.read().strip()
    assert run_id and [os.path.basename(p).rsplit("-", 1)[-1] for p in offline_runs(root)] == [run_id]
    media = glob.glob(os.path.join(offline_runs(root)[0], "files", "media", "images", "**", "*.png"), recursive=True)
    names = {os.path.basename(p) for p in media}
    for drawn in ("per_color_accuracy", "predictions", "error_curve", "inputs"):
        assert any(name.startswith(drawn) for name in names), (drawn, sorted(names))

    run(["-p", root, "-t", "num_epochs=2"])
    with open(os.path.join(root, WANDB_ID_FILE)) as f:
        assert f.read().strip() == run_id
    assert [os.path.basename(p).rsplit("-", 1)[-1] for p in offline_runs(root)] == [run_id, run_id]


def test_a_picture_the_trackers_cannot_read_is_skipped_with_a_warning(tmp_path, capsys):
    from edflow.logger import Logger

    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install 'fairtoolkit[tensorboard]'")
    logger = Logger(str(tmp_path), {"integrations": {"tensorboard": True}})
    (tmp_path / "broken.png").write_bytes(b"not a png")
    Image.new("RGB", (3, 2), (255, 0, 0)).save(tmp_path / "red.png")
    logger.image_files({"eval/broken": str(tmp_path / "broken.png"), "eval/red": str(tmp_path / "red.png")}, 5)
    logger.close()
    assert "broken.png is not sent to the trackers" in capsys.readouterr().err
    events = tensorboard_events(str(tmp_path))
    assert events.Tags()["images"] == ["eval/red"] and [e.step for e in events.Images("eval/red")] == [5]
