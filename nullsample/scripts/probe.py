"""A fresh probe of s on the code a null-sample is decoded from ([z_-s, 0] for the cFlow, mu for the cVAE).

The discriminators trained alongside the representation only say what *they* can read at the moment; a logistic
regression fitted afterwards on frozen codes says whether s is still (linearly) there::

    python -m nullsample.scripts.probe <run folder or run name> [--train 2000] [--test 1000] [--split test] [--log-root logs]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from edflow.first_stage import load_stage
from edflow.first_stage import looking_up_runs
from edflow.runs import add_log_root_argument
from nullsample.data import ColoredMNIST


@torch.no_grad()
def null_codes(stage: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """Flat null-codes (N, D) of [-1, 1] images under a cFlow or cVAE."""
    if not hasattr(stage, "null_code"):
        raise TypeError(f"{type(stage).__name__} has no null_code(x); probe a cFlow or cVAE")
    stage.eval()
    codes = [stage.null_code(images[i:i + batch_size]).flatten(1) for i in range(0, len(images), batch_size)]
    return torch.cat(codes).cpu().numpy()


def probe_accuracy(train_codes: np.ndarray, train_s: np.ndarray, test_codes: np.ndarray, test_s: np.ndarray,
                   max_iter: int = 500) -> float:
    """Test accuracy of a logistic regression (on standardised codes) predicting s."""
    scaler = StandardScaler().fit(train_codes)
    model = LogisticRegression(max_iter=max_iter).fit(scaler.transform(train_codes), train_s)
    return float(model.score(scaler.transform(test_codes), test_s))


def probe_run(run: str, n_train: int = 2000, n_test: int = 1000, split: str = "test", *, log_root: str) -> dict:
    """Probe accuracy of s and chance (the majority class's share of the probe's test part) for a coloured-MNIST
    run (a folder, or a run name under ``log_root``), on the first ``n_train + n_test`` images of ``split``
    generated with the run's own Data settings."""
    with looking_up_runs(log_root=log_root):
        stage = load_stage({"run": run})
    data = ColoredMNIST(split=split, config=stage.stage_config)
    if n_train + n_test > len(data):
        raise ValueError(f"--train {n_train} + --test {n_test} exceeds the {len(data)} images of split {split!r}")
    batch = data.get_batch(np.arange(n_train + n_test))
    codes, s = null_codes(stage, batch["image"]), np.asarray(batch["s"])
    chance = float(np.bincount(s[n_train:]).max() / n_test)
    return {"probe_accuracy": probe_accuracy(codes[:n_train], s[:n_train], codes[n_train:], s[n_train:]),
            "chance": chance}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or run name (resolved under --log-root) of a cFlow or cVAE")
    parser.add_argument("--train", type=int, default=2000, help="images the probe is fitted on")
    parser.add_argument("--test", type=int, default=1000, help="images the probe is scored on")
    parser.add_argument("--split", default="test", help="coloured-MNIST split the images come from")
    add_log_root_argument(parser, help="where a run given by name is looked up")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = probe_run(args.run, args.train, args.test, args.split, log_root=args.log_root)
    print(f"probe accuracy of s: {result['probe_accuracy']:.3f} (chance {result['chance']:.3f})")
    return result


if __name__ == "__main__":
    main()
