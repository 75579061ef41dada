"""The runner on a GPU machine and when things go wrong: device resolution (CUDA simulated), the preflight, the
checkpoint before each evaluation, one writer per run folder, failed writes (ENOSPC simulated on every kind of
write), and edlist's run states."""
import errno
import glob
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import yaml

from edflow import checkpoint as ckpt
from edflow import device as device_module
from edflow import distributed as dist
from edflow import safe_io
from edflow.config import ConfigError
from edflow.lock import LOCK_NAME
from edflow.main import main, run
from edflow.preflight import PreflightError
from toy import TOY, final_weights

EVAL = ["num_epochs=4", "+eval_pipeline.callbacks.bug=toy.failing_callback"]  # 8 steps per epoch


def fake_cuda(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# --- device ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("count, spec, expected", [(1, "auto", "cuda"), (0, "auto", "cpu"), (2, "cuda:1", "cuda:1"),
                                                   (0, "cpu", "cpu"), (2, "cpu", "cpu")])
def test_device_auto_takes_cuda_when_there_is_one(monkeypatch, count, spec, expected):
    fake_cuda(monkeypatch, count)
    assert device_module.resolve_device(spec) == expected


@pytest.mark.parametrize("count, spec, words", [(0, "cuda", "CUDA is not available"), (2, "cuda:2", "2 CUDA device"),
                                                (1, "gpu", "auto, cpu, cuda, cuda:N or mps")])
def test_unusable_devices_are_config_errors(monkeypatch, count, spec, words):
    fake_cuda(monkeypatch, count)
    with pytest.raises(ConfigError, match=words):
        device_module.resolve_device(spec)


def test_mps_is_accepted_when_the_backend_is_there(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert device_module.resolve_device("mps") == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert "no usable MPS" in device_module.device_problem("mps")


def test_torchrun_on_cuda_joins_nccl_on_its_local_gpu(monkeypatch):
    fake_cuda(monkeypatch, 2)
    joined, chosen = [], []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist.dist, "init_process_group", lambda backend: joined.append(backend))
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert dist.init_from_environment(device_module.resolve_device("auto")) == "cuda:1"
    assert joined == ["nccl"] and chosen == [1]
    fake_cuda(monkeypatch, 0)
    assert dist.init_from_environment(device_module.resolve_device("auto")) == "cpu" and joined[-1] == "gloo"


def test_the_fid_extractor_follows_the_run_device_unless_fid_device_is_set(monkeypatch):
    from fairkit.metrics import callbacks

    fake_cuda(monkeypatch, 2)
    moved = []

    class Extractor:
        def to(self, device):
            moved.append(device)
            raise StopIteration  # enough: the device it was sent to is known

    monkeypatch.setattr(callbacks, "build_extractor", lambda name, **options: Extractor())
    for fid, expected in (({"extractor": "pixels"}, "cuda:1"), ({"extractor": "pixels", "device": "cpu"}, "cpu")):
        with pytest.raises(StopIteration):
            callbacks.make_fid_callback()(None, None, None, {"device": "cuda:1", "fid": fid})
        assert moved[-1] == expected


# --- preflight ------------------------------------------------------------------------------------------------
def test_preflight_reports_every_missing_thing_at_once_before_a_run_folder_exists(tmp_path, monkeypatch, capsys):
    fake_cuda(monkeypatch, 0)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["-b", TOY, "-t", "--log-root", "logs", "device=cuda", "+first_stage.run=toy_stage1",
              "+Extra.classifier_weights=weights/clf.pth", "+datasets.test=iin.data.MNISTTest",
              "+data_root=" + str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the preflight found 4 problem(s); no run folder was made" in err
    assert "device: cuda was asked for but CUDA is not available" in err
    assert "first_stage run 'toy_stage1' was not found" in err and "edflow -b configs/toy_stage1.yaml -t" in err
    assert "Extra/classifier_weights: the file weights/clf.pth does not exist" in err
    assert "datasets/test: MNIST (test split) is not in the data root you named" in err
    assert not os.path.exists(tmp_path / "logs")


def test_datasets_that_cannot_be_read_are_reported_by_the_preflight(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = "+datasets.test={target: fairkit.data.MNIST, params: {split: test, root: %s, download: false}}"
    with pytest.raises(SystemExit):
        main(["--check", "-b", TOY, "--log-root", "logs", spec % (tmp_path / "wrong")])
    err = capsys.readouterr().err
    assert "datasets/test: MNIST (test split) is not in the data root you named" in err
    assert str(tmp_path / "wrong" / "MNIST" / "raw") in err and not os.path.exists(tmp_path / "logs")


def test_check_runs_only_the_preflight(tmp_path, capsys):
    assert run(["--check", "-b", TOY, "--log-root", str(tmp_path / "logs")]) is None
    out = capsys.readouterr().out
    assert "preflight passed" in out and "datasets/train: ToyTrain, 64 examples" in out
    assert not os.path.exists(tmp_path / "logs")


def test_chaining_ignores_debug_runs_outside_debug_mode_and_records_the_stage(tmp_path, capsys):
    logs = tmp_path / "logs"
    debug_stage = run(["-b", TOY, "-t", "-d", "--log-root", str(logs), "-n", "stage1"])
    with pytest.raises(PreflightError, match="a debug run .*stage1 exists; debug runs are chained only in -d"):
        run(["-b", TOY, "-t", "--log-root", str(logs), "num_epochs=1", "+first_stage.run=stage1"])
    assert run(["-b", TOY, "-t", "-d", "--log-root", str(logs), "+first_stage.run=stage1"])  # -d: found
    stage = run(["-b", TOY, "-t", "--log-root", str(logs), "-n", "stage1", "num_epochs=1"])
    capsys.readouterr()
    second = run(["-b", TOY, "-t", "--log-root", str(logs), "num_epochs=1", "+first_stage.run=stage1"])
    checkpoint = ckpt.latest_checkpoint(os.path.join(stage, "train", "checkpoints"))
    assert f"edflow: first_stage: run {stage}, checkpoint {checkpoint}" in capsys.readouterr().err
    config = yaml.safe_load(open(glob.glob(os.path.join(second, "configs", "train_*.yaml"))[0]))
    assert config["first_stage"] == {"run": stage, "checkpoint": checkpoint} and debug_stage not in str(config)


# --- checkpoint before evaluation -----------------------------------------------------------------------------
def test_a_failing_callback_stops_the_run_with_its_checkpoint_and_the_run_continues_after_the_fix(tmp_path,
                                                                                                  capsys):
    full = run(["-b", TOY, "-t", "--log-root", str(tmp_path / "full"), *EVAL])
    with pytest.raises(SystemExit) as exit_info:
        main(["-b", TOY, "-t", "--log-root", str(tmp_path / "logs"), *EVAL, "+fail_eval_at=16"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug in the metric" in err  # the callback's traceback
    assert "evaluation callback 'bug' failed at step 16 on validation" in err
    root = glob.glob(str(tmp_path / "logs" / "*_toy"))[0]
    assert f"edflow -p {root} -t" in err
    status = yaml.safe_load(open(os.path.join(root, "status.yaml")))
    assert status["status"] == "failed" and "'bug' failed at step 16" in status["reason"]
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))) == 16
    run(["-p", root, "-t", "fail_eval_at=null"])  # the fix
    for key, value in final_weights(full).items():
        assert torch.equal(value, final_weights(root)[key]), key
    steps = sorted({int(os.path.basename(os.path.dirname(p))) for p in glob.glob(f"{root}/eval/*/*/results.yaml")})
    assert steps == [8, 16, 24, 32]  # the failed evaluation was done again on resuming
    assert yaml.safe_load(open(os.path.join(root, "status.yaml")))["status"] == "finished"


# --- one writer -----------------------------------------------------------------------------------------------
def write_lock(root, pid, host=None):
    with open(os.path.join(root, LOCK_NAME), "w") as f:
        json.dump({"pid": pid, "host": host or socket.gethostname(), "time": 0, "command": "edflow -t"}, f)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return run(["-b", TOY, "-t", "--log-root", str(tmp_path_factory.mktemp("trained")), "num_epochs=1"])


def test_a_second_writer_is_refused_naming_the_holder(trained, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for host in (None, "another-host"):
            write_lock(trained, holder.pid, host)
            for argv in (["-p", trained, "-t"], ["-p", trained]):
                with pytest.raises(SystemExit) as exit_info:
                    main(argv)
                assert exit_info.value.code == 2
                err = capsys.readouterr().err.strip().splitlines()[-1]
                assert f"is in use by process {holder.pid} on host {host or socket.gethostname()}" in err
    finally:
        holder.kill()
        holder.wait()
        os.remove(os.path.join(trained, LOCK_NAME))


def test_a_stale_lock_on_this_host_is_taken_over_with_a_warning(trained, capsys):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_lock(trained, gone.pid)
    run(["-p", trained])  # evaluates into the run
    err = capsys.readouterr().err
    assert f"locked by process {gone.pid}" in err and "which is gone; the lock is taken over" in err
    assert not os.path.exists(os.path.join(trained, LOCK_NAME))  # released at the end


# --- failed writes --------------------------------------------------------------------------------------------
WRITE_KINDS = {  # the kind of write -> (a pattern of the path written, which matching write fails)
    "checkpoint": ("/train/checkpoints/model-", ".ckpt.tmp-", 2),
    "sidecar": ("/train/checkpoints/model-", ".ckpt.json.tmp-", 2),
    "best checkpoint": ("/train/checkpoints/best.ckpt", ".tmp-", 1),
    "status": ("/status.yaml", ".tmp-", 2),
    "metrics": ("/metrics.jsonl", "", 3),
    "image": ("/train/log_op/", ".png.tmp-", 2),
    "evaluation results": ("/results.yaml", ".tmp-", 1),
    "config": ("/configs/train_", ".tmp-", 1),
}


def full_disk(monkeypatch, where, suffix, nth):
    """``open`` in edflow.safe_io fails with ENOSPC at the nth write to a path containing ``where`` and ``suffix``."""
    seen = []
    real_open = open

    def fake_open(path, mode="r", *args, **kwargs):
        if any(m in mode for m in "wa") and where in str(path) and suffix in str(path):
            seen.append(path)
            if len(seen) == nth:
                handle = real_open(path, mode, *args, **kwargs)  # the file exists, as in a real failed write
                handle.close()
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(safe_io, "open", fake_open, raising=False)


@pytest.mark.parametrize("kind", sorted(WRITE_KINDS))
def test_a_full_disk_on_any_write_ends_the_run_in_one_line(tmp_path, monkeypatch, capsys, kind):
    full_disk(monkeypatch, *WRITE_KINDS[kind])
    with pytest.raises(SystemExit) as exit_info:
        main(["-b", TOY, "-t", "--log-root", str(tmp_path / "logs"), "ckpt_freq=4"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("edflow: error: cannot write ") and "No space left on device (errno 28)" in err[-2]
    assert "bytes are free there" in err[-2] and "the write needed" in err[-2]
    root = glob.glob(str(tmp_path / "logs" / "*_toy"))[0]
    assert err[-1].startswith(f"edflow: the run stopped ({root}/status.yaml: failed)")
    assert not glob.glob(f"{root}/**/*.tmp*", recursive=True)  # no temporary file left behind
    status = yaml.safe_load(open(os.path.join(root, "status.yaml")))
    assert status["status"] == "failed" and "No space left on device" in status["reason"]
    for path in ckpt.list_checkpoints(os.path.join(root, "train", "checkpoints")):
        assert ckpt.damage(path) is None  # earlier checkpoints are whole


def test_after_a_full_disk_the_run_continues_exactly(tmp_path, monkeypatch):
    full = run(["-b", TOY, "-t", "--log-root", str(tmp_path / "full"), "ckpt_freq=4"])
    with monkeypatch.context() as patch:
        full_disk(patch, "/train/checkpoints/model-", ".ckpt.tmp-", 3)
        with pytest.raises(safe_io.WriteError, match="model-12.ckpt"):
            run(["-b", TOY, "-t", "--log-root", str(tmp_path / "logs"), "ckpt_freq=4"])
    root = glob.glob(str(tmp_path / "logs" / "*_toy"))[0]
    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(root, "train", "checkpoints"))) == 8
    run(["-p", root, "-t"])
    for key, value in final_weights(full).items():
        assert torch.equal(value, final_weights(root)[key]), key


# --- edlist ---------------------------------------------------------------------------------------------------
def test_edlist_shows_failed_runs_with_their_reason_and_died_runs(tmp_path, capsys):
    from edflow.tools import edlist_main

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for name, status in (("finished", {"status": "finished", "step": 24}),
                         ("failed", {"status": "failed", "step": 8, "reason": "cannot write x: No space left"}),
                         ("died", {"status": "running", "step": 4, "pid": gone.pid, "host": socket.gethostname()}),
                         ("elsewhere", {"status": "running", "step": 4, "pid": gone.pid, "host": "another-host"})):
        folder = tmp_path / f"2026-01-01T00-00-00_{name}"
        folder.mkdir()
        (folder / "status.yaml").write_text(yaml.safe_dump(status))
    edlist_main([str(tmp_path)])
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in capsys.readouterr().out.splitlines()
            if "2026" in line}
    assert rows == {"2026-01-01T00-00-00_finished": "finished",
                    "2026-01-01T00-00-00_failed": "failed: cannot write x: No space left",
                    "2026-01-01T00-00-00_died": "died", "2026-01-01T00-00-00_elsewhere": "running"}


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights, else the test is skipped), grown to 4 MiB by calling it."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield folder, lambda: subprocess.run(["mount", "-o", "remount,size=4m", str(folder)], check=True)
    finally:
        subprocess.run(["umount", str(folder)])


def test_a_real_full_disk_fails_cleanly_and_the_run_continues_after_space_is_freed(small_disk, tmp_path, capsys):
    folder, grow = small_disk
    with pytest.raises(SystemExit) as exit_info:
        main(["-b", TOY, "-t", "--log-root", str(folder), "ckpt_freq=1", "ckpt_keep=2"])
    assert exit_info.value.code == 1
    line = [x for x in capsys.readouterr().err.splitlines() if x.startswith("edflow: error:")][-1]
    assert "No space left on device (errno 28); the write needed" in line
    root = glob.glob(str(folder / "*_toy"))[0]
    assert not glob.glob(f"{root}/**/*.tmp*", recursive=True)
    assert yaml.safe_load(open(os.path.join(root, "status.yaml")))["status"] == "failed"
    grow()
    run(["-p", root, "-t"])
    full = run(["-b", TOY, "-t", "--log-root", str(tmp_path / "full"), "ckpt_freq=1", "ckpt_keep=2"])
    for key, value in final_weights(full).items():
        assert torch.equal(value, final_weights(root)[key]), key
