"""Training images/s of one config on 1 and on N processes (torchrun, gloo on CPU), measured side by side.

    python benchmarks/ddp_throughput.py [--config configs/mnist_fidnet.yaml] [--steps 60] [--nproc 2]

Each process keeps the config's batch size (the global batch grows with N) and runs one thread. The rate is taken
from the logged step times between step 10 and the last step, so start-up, evaluation and the final checkpoint are
left out. Prints images/s for each process count and the ratio to one process (N would be perfect scaling).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 10


def images_per_second(config: str, steps: int, nproc: int, log_root: str) -> float:
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [torchrun, "--standalone", f"--nproc_per_node={nproc}", "-m", "edflow", "-b", config, "-t",
               "--log-root", log_root, f"num_steps={steps}", "num_epochs=1000", "log_freq=1", "eval_freq=100000",
               "ckpt_freq=null"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (run,) = glob.glob(os.path.join(log_root, "*"))
    with open(os.path.join(run, "metrics.jsonl")) as f:
        times = {r["step"]: r["time"] for r in map(json.loads, f) if any(k.startswith("train/") for k in r)}
    with open(sorted(glob.glob(os.path.join(run, "configs", "train_*.yaml")))[-1]) as f:
        batch = yaml.safe_load(f)["batch_size"]
    return (steps - WARMUP) * batch * nproc / (times[steps] - times[WARMUP])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/mnist_fidnet.yaml")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--nproc", type=int, default=2)
    args = parser.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in sorted({1, args.nproc}):
            rates[nproc] = images_per_second(args.config, args.steps, nproc, os.path.join(tmp, str(nproc)))
    for nproc, rate in rates.items():
        print(f"{nproc} process(es): {rate:8.1f} images/s  ratio to 1 process {rate / rates[1]:.2f}")


if __name__ == "__main__":
    main()
