"""The runner's training step against a bare PyTorch loop: same model, data, batches and optimiser, one process.

    python benchmarks/runner_overhead.py [--steps 300] [--repeats 3]

Prints seconds per step of each and their ratio (runner / bare); the median over interleaved repeats.
"""
import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from edflow import TemplateIterator
from edflow.data.dataset import ArrayDataset


def make_model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(32, 10))


def make_data(n=4096):
    generator = torch.Generator().manual_seed(0)
    return {"image": torch.randn(n, 1, 28, 28, generator=generator), "label": torch.randint(0, 10, (n,), generator=generator)}


class Trainer(TemplateIterator):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def step_op(self, model, image, label, **batch):
        def train_op():
            loss = F.cross_entropy(model(image), label)
            self.optimize(loss, self.optimizer)
            return loss
        return {"train_op": train_op}


def time_runner(data, steps, batch_size):
    torch.manual_seed(0)
    config = {"batch_size": batch_size, "num_steps": steps, "log_freq": 10**9, "seed": 0, "drop_last": True,
              "ckpt_keep": 1}
    with tempfile.TemporaryDirectory() as root:
        trainer = Trainer(config, root, make_model(), datasets={"train": ArrayDataset(data)})
        start = time.perf_counter()
        trainer.fit()
        return (time.perf_counter() - start) / steps


def time_bare(data, steps, batch_size):
    torch.manual_seed(0)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = len(data["label"])
    start = time.perf_counter()
    step = 0
    while step < steps:
        order = torch.randperm(n)
        for b in range(n // batch_size):
            index = order[b * batch_size:(b + 1) * batch_size]
            loss = F.cross_entropy(model(data["image"][index]), data["label"][index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data = make_data()
    time_bare(data, 20, args.batch_size)  # warm-up
    bare, runner = [], []
    for _ in range(args.repeats):
        bare.append(time_bare(data, args.steps, args.batch_size))
        runner.append(time_runner(data, args.steps, args.batch_size))
    b, r = statistics.median(bare), statistics.median(runner)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, {args.steps} steps")
    print(f"bare loop : {b * 1e3:8.3f} ms/step")
    print(f"runner    : {r * 1e3:8.3f} ms/step (incl. start-up and the final checkpoint)")
    print(f"ratio runner/bare: {r / b:.3f}")


if __name__ == "__main__":
    main()
