"""Data-parallel training under torchrun (gloo on CPU) against one process with the same global batch; mixed
precision and compilation on CPU."""
import glob
import os
import subprocess

import pytest
import torch

from edflow import checkpoint as ckpt
from edflow.config import ConfigError
from edflow.main import run
from toy import SUBPROCESS_ENV, TORCHRUN, TOY, final_weights, metrics, train, train_losses

# batches of 16 in one process, 8 per rank on two: the same examples enter each step
PLAIN = ["datasets.train=toy.ToyPlain", "Model.dropout=0.0", "log_freq=1"]
TOLERANCE = dict(rtol=1e-5, atol=1e-6)  # all-reduce sums in another order than one process does

needs_torchrun = pytest.mark.skipif(not os.path.isfile(TORCHRUN), reason="torchrun is not installed beside python")


def torchrun(cwd, *args, nproc=2):
    os.makedirs(cwd, exist_ok=True)
    done = subprocess.run([TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "-m", "edflow", "-b", TOY,
                           "--log-root", "logs", *args], cwd=cwd, env=SUBPROCESS_ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def only_run(folder):
    runs = glob.glob(os.path.join(folder, "*_toy"))
    assert len(runs) == 1, runs  # one run folder, named by rank 0
    return runs[0]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], **TOLERANCE)


def evaluations(root):
    return [{k: v for k, v in r.items() if k.startswith("validation/")} for r in metrics(root) if "validation/n" in r]


@needs_torchrun
def test_two_ranks_train_and_evaluate_as_one_process_with_the_same_global_batch(tmp_path):
    done = torchrun(tmp_path / "ddp", "-t", "batch_size=8", *PLAIN)
    ddp = only_run(tmp_path / "ddp" / "logs")
    single = train(tmp_path / "single", "batch_size=16", *PLAIN)
    with open(os.path.join(ddp, "console.log")) as f:
        console = f.read()
    assert done.stderr.count("edflow: run folder") == 2  # each rank prints to its terminal ...
    assert console.count("===== session ") == 1 and console.count("edflow: run folder") == 1  # ... rank 0 to the file

    assert ckpt.checkpoint_step(ckpt.latest_checkpoint(os.path.join(ddp, "train", "checkpoints"))) == 12
    ddp_losses, single_losses = train_losses(ddp), train_losses(single)
    assert ddp_losses.keys() == single_losses.keys() == set(range(1, 13))
    assert list(ddp_losses.values()) == pytest.approx(list(single_losses.values()), rel=1e-5)
    assert_same_weights(final_weights(ddp), final_weights(single))
    ddp_evals, single_evals = evaluations(ddp), evaluations(single)
    assert [e["validation/n"] for e in ddp_evals] == [32, 32, 32]  # every example once: no padding, no loss
    for a, b in zip(ddp_evals, single_evals, strict=True):
        assert a == pytest.approx(b, rel=1e-5)


@needs_torchrun
def test_evaluation_of_an_odd_sized_split_on_two_ranks_equals_one_process(tmp_path):
    # 32 validation examples in batches of 5: the ranks get 16 each, in batches 5, 5, 5, 1
    single = train(tmp_path / "single", "batch_size=16", "eval_batch_size=5", *PLAIN)
    torchrun(tmp_path / "ddp", "-p", single, "eval_batch_size=5")
    single_last = evaluations(single)[-1]
    with open(glob.glob(os.path.join(single, "eval", "*", "12", "results.yaml"))[-1]) as f:
        ddp_results = __import__("yaml").safe_load(f)
    assert {k: ddp_results[k] for k in single_last} == pytest.approx(single_last, rel=1e-6)


@needs_torchrun
def test_a_run_started_on_two_ranks_resumes_on_one_and_ends_as_an_uninterrupted_run(tmp_path):
    torchrun(tmp_path / "ddp", "-t", "batch_size=8", "num_steps=3", *PLAIN)
    part = only_run(tmp_path / "ddp" / "logs")
    resumed = run(["-p", part, "-t", "batch_size=16", "num_steps=10"])
    full = train(tmp_path / "full", "batch_size=16", "num_steps=10", *PLAIN)
    assert_same_weights(final_weights(resumed), final_weights(full))
    assert list(train_losses(resumed).values()) == pytest.approx(list(train_losses(full).values()), rel=1e-5)


@needs_torchrun
def test_sync_batchnorm_is_refused_on_cpu_ranks_with_a_clear_error(tmp_path):
    done = subprocess.run([TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "edflow", "-b", TOY, "-t",
                           "--log-root", "logs", "sync_batchnorm=true", "+Model.batchnorm=true"], cwd=tmp_path,
                          env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("edflow: error: sync_batchnorm: true needs GPUs") == 2  # one line from each rank
    assert "[rank0]: Traceback" not in done.stderr


def test_sync_batchnorm_in_one_process_converts_the_layers_and_trains_as_batchnorm(tmp_path):
    from edflow.main import build_iterator

    plain = train(tmp_path / "plain", "+Model.batchnorm=true", *PLAIN)
    synced = train(tmp_path / "synced", "+Model.batchnorm=true", "sync_batchnorm=true", *PLAIN)
    assert_same_weights(final_weights(plain), final_weights(synced))
    config = {"model": "toy.Model", "iterator": "toy.Trainer", "sync_batchnorm": True,
              "Model": {"batchnorm": True}}
    iterator = build_iterator(config, str(tmp_path / "unused"), train=False)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in iterator.model.modules())


def last_validation_mse(root):
    return evaluations(root)[-1]["validation/mse"]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu_close_to_float32_and_checkpoints_the_scaler(tmp_path, amp):
    from edflow.main import build_iterator

    full = train(tmp_path / "fp32", *PLAIN)
    mixed = train(tmp_path / amp, *PLAIN, f"amp={amp}")
    a, b = final_weights(mixed), final_weights(full)
    assert all(v.dtype == torch.float32 for v in a.values())  # master weights stay in float32
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the forward pass really ran in low precision
    assert last_validation_mse(mixed) == pytest.approx(last_validation_mse(full), rel=0.05)
    if amp == "bf16":  # the same steps, rounded differently
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=5e-2)
    scaler = ckpt.load(ckpt.latest_checkpoint(os.path.join(mixed, "train", "checkpoints")))["state"]["scaler"]
    assert (scaler.get("scale") is not None) == (amp == "fp16")  # only fp16 scales the loss
    iterator = build_iterator({"model": "toy.Model", "iterator": "toy.Trainer", "amp": amp},
                              str(tmp_path / "unused"), train=False)
    with iterator.autocast():
        output = iterator.model(torch.randn(4, 4))
    assert output.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def test_an_unknown_amp_mode_is_a_config_error(tmp_path):
    with pytest.raises((ConfigError, ValueError), match="amp"):
        train(tmp_path, "amp=fp8")


def test_compile_option_compiles_the_model_and_trains_to_the_same_weights(tmp_path):
    import torch._dynamo

    eager = train(tmp_path / "eager", *PLAIN, "num_epochs=1")
    torch._dynamo.reset()
    compiled = train(tmp_path / "compiled", *PLAIN, "num_epochs=1", "compile={backend: eager}")
    assert_same_weights(final_weights(eager), final_weights(compiled))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
