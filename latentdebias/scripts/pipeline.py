"""Run the chain of latent de-biasing stages in order, per target attribute, and time each stage::

    python -m latentdebias.scripts.pipeline --dataset attrmnist --cpu --log-root logs
    python -m latentdebias.scripts.pipeline --dataset celeba --targets Smiling Bangs --skip-finished
    python -m latentdebias.scripts.pipeline --dataset attrmnist --cpu --variant domdep --stages synthetic augmented

Stages and their configs (``configs/<dataset>_latentdebias_<stage>.yaml``, plus ``configs/cpu/`` with ``--cpu``,
which only the attrmnist stand-in has: ``--dataset celeba --cpu`` is refused):
the protected classifier(s) and the GAN are shared by all targets; the target classifier, the synthetic stage and
the augmented classifier run once per target, as ``<experiment_name>_<target>`` when ``--targets`` is given
(``Data.target`` and the first-stage run names are overridden to match). ``--variant`` picks the synthetic and
augmented configs of an extension (``domdep``: domain-dependent hyperplanes; ``inversion``: inverted real images;
``multi``: two protected attributes, CelebA). Extra ``key=value`` arguments are passed to every stage.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field

from edflow.config import load_configs
from edflow.launch import launch, runner_argv
from edflow.first_stage import find_run
from edflow.runs import add_log_root_argument, read_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_STAGES = {"standard": ("protected_clf", "gan"), "domdep": ("protected_clf", "gan"),
                 "inversion": ("protected_clf", "gan"), "multi": ("protected_clf", "young_clf", "gan")}
PER_TARGET_STAGES = ("target_clf", "synthetic", "augmented")
VARIANT_SUFFIX = {"standard": "", "domdep": "_domdep", "inversion": "_inversion", "multi": "_multi"}


@dataclass
class Stage:
    """One stage run: its config files, run name and command-line overrides."""
    key: str                      # target_clf, synthetic, ... as in SHARED_STAGES / PER_TARGET_STAGES
    configs: list[str]
    name: str
    overrides: list[str] = field(default_factory=list)

    def argv(self, log_root: str, debug: bool) -> list[str]:
        """The stage's ``edflow`` command line."""
        return runner_argv(self.configs, self.overrides, name=self.name, log_root=log_root, debug=debug)


class PipelineError(ValueError):
    """A request the pipeline cannot carry out as asked; the message says what to run instead."""


def config_files(dataset: str, stage: str, cpu: bool) -> list[str]:
    paper = os.path.join(ROOT, "configs", f"{dataset}_latentdebias_{stage}.yaml")
    if not os.path.isfile(paper):
        raise FileNotFoundError(f"no config {paper} for stage {stage!r} of dataset {dataset!r}")
    overlay = os.path.join(ROOT, "configs", "cpu", os.path.basename(paper))
    if cpu and not os.path.isfile(overlay):
        # Falling back to the paper config would start a paper-scale run (and name it as one) under --cpu.
        raise PipelineError(
            f"--cpu: there is no CPU-scale overlay configs/cpu/{os.path.basename(paper)} for stage {stage!r} of "
            f"dataset {dataset!r}; the {dataset} chain has only its paper-scale configs. Run it without --cpu "
            f"(a GPU job), or use --dataset attrmnist --cpu, the CPU-scale stand-in")
    return [paper, overlay] if cpu else [paper]


def experiment_name(configs: list[str]) -> str:
    return load_configs(configs).get("experiment_name") or os.path.splitext(os.path.basename(configs[-1]))[0]


def stage_file_key(key: str, variant: str) -> str:
    return key + VARIANT_SUFFIX[variant] if key in ("synthetic", "augmented") else key


def plan(dataset: str, cpu: bool = False, variant: str = "standard", targets: list[str] | None = None,
         extra: list[str] | None = None) -> list[Stage]:
    """The stages in the order their first stages need, with names and overrides per target."""
    if variant not in VARIANT_SUFFIX:
        raise ValueError(f"--variant {variant!r} is not one of {tuple(VARIANT_SUFFIX)}")
    extra = list(extra or [])
    files = {key: config_files(dataset, stage_file_key(key, variant), cpu)
             for key in SHARED_STAGES[variant] + PER_TARGET_STAGES}
    base = {key: experiment_name(paths) for key, paths in files.items()}
    stages = [Stage(key, files[key], base[key], list(extra)) for key in SHARED_STAGES[variant]]
    for target in targets or [None]:
        def named(key: str) -> str:
            return base[key] if target is None else f"{base[key]}_{target}"

        per_target = [] if target is None else [f"Data.target={target}"]
        stages += [
            Stage("target_clf", files["target_clf"], named("target_clf"),
                  per_target + ([f"Model.attribute={target}"] if target else []) + extra),
            Stage("synthetic", files["synthetic"], named("synthetic"),
                  per_target + ([f"first_stage.target_clf.run={named('target_clf')}"] if target else []) + extra),
            Stage("augmented", files["augmented"], named("augmented"),
                  per_target + ([f"Model.attribute={target}", f"first_stage.synthetic.run={named('synthetic')}"]
                                if target else []) + extra),
        ]
    return stages


def finished_run(name: str, *, log_root: str, debug: bool = False) -> str | None:
    """The newest run of this name (as later stages would chain to it), if it finished."""
    found = find_run(name, log_root=log_root, debug=debug)
    return found if found and read_status(found).get("status") == "finished" else None


@dataclass
class Timing:
    stage: Stage
    run: str
    wall: float
    cpu: float
    reused: bool = False


def run_stages(stages: list[Stage], log_root: str, debug: bool = False, skip_finished: bool = False,
               only: list[str] | None = None) -> list[Timing]:
    """Train the stages one after the other in this process (``only``: just these stage keys); wall and CPU seconds
    of each. A failing stage raises edflow.launch.LaunchError, naming the stage's run and its log."""
    timings = []
    for stage in stages:
        if only and stage.key not in only:
            continue
        reused = finished_run(stage.name, log_root=log_root, debug=debug) if skip_finished else None
        if reused:
            timings.append(Timing(stage, reused, 0.0, 0.0, reused=True))
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        folder = launch(stage.configs, stage.overrides, name=stage.name, log_root=log_root, debug=debug)
        timings.append(Timing(stage, folder, time.perf_counter() - wall, time.process_time() - cpu))
        print(f"latentdebias.scripts.pipeline: {stage.name}: {timings[-1].wall:.1f} s wall, {timings[-1].cpu:.1f} s CPU",
              file=sys.stderr)
    return timings


def format_timings(timings: list[Timing]) -> str:
    total = sum(t.wall for t in timings) or 1.0
    lines = ["| stage | run | wall s | CPU s | share of wall |", "|---|---|---:|---:|---:|"]
    for t in timings:
        note = " (reused)" if t.reused else ""
        lines.append(f"| {t.stage.key} | {os.path.basename(t.run)}{note} | {t.wall:.1f} | {t.cpu:.1f} | "
                     f"{100 * t.wall / total:.0f}% |")
    return "\n".join(lines)


def add_chain_arguments(p: argparse.ArgumentParser, *, cpu: str, targets: str) -> None:
    """The options that name a chain (dataset, scale, variant, targets): the pipeline's and the table's."""
    p.add_argument("--dataset", default="attrmnist", choices=("attrmnist", "celeba"))
    p.add_argument("--cpu", action="store_true", help=cpu)
    p.add_argument("--variant", default="standard", choices=tuple(VARIANT_SUFFIX))
    p.add_argument("--targets", nargs="*", help=targets)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m latentdebias.scripts.pipeline", description=__doc__.split("\n\n")[0])
    add_chain_arguments(p, cpu="add the configs/cpu/ overlays (attrmnist only: celeba has none)",
                        targets="target attributes, one chain each (default: the configs' target)")
    p.add_argument("--stages", nargs="*", help="run only these stage keys (the others must have run)")
    p.add_argument("--skip-finished", action="store_true", help="reuse finished runs of the same name")
    p.add_argument("-d", "--debug", action="store_true", help="edflow's debug mode for every stage")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    add_log_root_argument(p, help="where the stages' run folders go, and earlier stages are found")
    return p


def main(argv: list[str] | None = None) -> list[Timing]:
    p = parser()
    args, extra = p.parse_known_args(argv)
    try:
        stages = plan(args.dataset, args.cpu, args.variant, args.targets, extra)
    except (PipelineError, FileNotFoundError) as error:
        p.error(str(error))  # before any stage runs: exit 2 with the message
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    timings = run_stages(stages, args.log_root, args.debug, args.skip_finished, args.stages)
    print(format_timings(timings))
    return timings


if __name__ == "__main__":
    main()
