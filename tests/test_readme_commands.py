"""Every command of README.md's ```bash blocks, so that none can go stale unnoticed.

Each block is expanded by bash itself with every program replaced by a function that records its arguments (so
variables such as ``O=configs/cpu``, ``&&`` and comments work as for a reader), then each command is one test:

- **run**: the cheap ones (``--help``, ``-d`` debug runs, ``edlist``, ``edflow report``, ``edflow --check``, and
  evaluating or resuming the debug run) are run as a reader would, from a fresh folder holding a copy of
  ``configs/`` and nothing else, with the repository on PYTHONPATH. ``logs/<run>`` (and ``<run2>``, ``<step>``)
  stand for the folder the README's first ``-d`` command made. Cheap commands whose data is missing (CelebA, CIFAR)
  are skipped, saying which.
- **checked without running** (trainings, demos, sweeps): an ``edflow -b`` command's configs are merged and its
  overrides applied exactly as ``edflow`` would before training (so missing configs, misspelt keys and class paths
  fail), and every first stage it names by run name must be made by a command earlier in the README; a
  ``python -m`` command's argument parser must accept its arguments (the module stops right after parsing); scripts,
  make targets and pip extras must exist.
- **skipped with the reason**: what needs the network (``git clone``) or starts a server (``edexplore``, whose
  dataset class is still imported).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from typing import Mapping

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# Programs the dry run records instead of running (anything else is caught by command_not_found_handle).
PROGRAMS = ("edflow", "edlist", "edeval", "edexplore", "python", "python3", "torchrun", "make", "git", "pip")
RUN, STEP = "__RUN__", "__STEP__"  # where the README writes logs/<run>, logs/<run2> and <step>
PLACEHOLDERS = {"logs/<run>": RUN, "logs/<run2>": RUN, "<step>": STEP}
DATA = {"celeba": "CelebA under $FAIRKIT_DATA/celeba/ (or data/celeba/)",
        "cifar": "CIFAR-10 under $FAIRKIT_DATA/cifar10/ (or data/cifar10/)"}
TIMEOUT = 300  # seconds per command: generous for a loaded machine; a debug run takes a few CPU seconds


@dataclasses.dataclass
class Command:
    line: int            # where its block starts in README.md
    argv: list[str]

    @property
    def id(self) -> str:
        return f"L{self.line}:" + " ".join(self.argv)[:70]


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```bash block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if current is None and line.strip() == "```bash":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current)))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def expand(code: str) -> list[list[str]]:
    """The argument lists bash would run for ``code``, nothing executed: each program is a recording function and
    PATH is empty. Raises when bash cannot parse the block."""
    for written, token in PLACEHOLDERS.items():
        code = code.replace(written, token)
    leftover = re.findall(r"<[A-Za-z_][\w -]*>", code)
    assert not leftover, f"placeholders {leftover} in a README block; the test knows only {list(PLACEHOLDERS)}"
    record = "__record() { printf '%s\\0' \"$@\"; printf '\\1'; }\n"
    stubs = "".join(f"{name}() {{ __record {name} \"$@\"; }}\n" for name in PROGRAMS)
    script = f"{record}{stubs}command_not_found_handle() {{ __record \"$@\"; }}\n{code}\n"
    bash = shutil.which("bash")
    done = subprocess.run([bash, "--noprofile", "--norc", "-c", script], capture_output=True, timeout=60,
                          env={"PATH": "/nonexistent", "HOME": os.environ.get("HOME", "/tmp")})
    assert done.returncode == 0, f"bash could not expand a README block: {done.stderr.decode()}"
    return [record.decode().split("\0")[:-1] for record in done.stdout.split(b"\1") if record]


def readme_commands() -> list[Command]:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return [Command(line, argv) for line, code in bash_blocks(text) for argv in expand(code)]


COMMANDS = readme_commands()


def option(argv: list[str], *names: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg in names:
            return argv[i + 1]
    return None


def is_cheap(argv: list[str]) -> bool:
    """What this test runs: cheap by the command, or on the debug run."""
    program, args = argv[0], argv[1:]
    if "--help" in args or "-h" in args:
        return True
    if program == "edlist" or (program == "edeval" and option(args, "-p") == RUN):
        return True
    if program == "edflow":
        return bool(args) and (args[0] == "report" or "-d" in args or "--check" in args or option(args, "-p") == RUN)
    return False


def missing_data(argv: list[str]) -> str | None:
    """What a command needs and this machine lacks, judged by the config names it mentions."""
    root = os.environ.get("FAIRKIT_DATA") or "data"
    for key, what in DATA.items():
        folder = "cifar10" if key == "cifar" else key
        if any(key in arg for arg in argv) and not os.path.isdir(os.path.join(root, folder)):
            return what
    return None


# ---- running the cheap commands ------------------------------------------------------------------------------------

def console_scripts() -> dict[str, str]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["scripts"]


def executable(argv: list[str]) -> list[str]:
    """The command as this interpreter runs it (the console scripts of the editable install may point elsewhere)."""
    program, args = argv[0], argv[1:]
    if program in ("python", "python3"):
        return [sys.executable, *args]
    scripts = console_scripts()
    if program in scripts:
        module, function = scripts[program].split(":")
        code = f"import sys; sys.argv[0] = {program!r}; from {module} import {function} as main; sys.exit(main())"
        return [sys.executable, "-c", code, *args]
    raise AssertionError(f"the test does not know how to run {program!r}")


class Workdir:
    """A fresh folder with a copy of configs/; the commands run there one after the other."""

    def __init__(self, path):
        self.path = str(path)
        shutil.copytree(os.path.join(ROOT, "configs"), os.path.join(self.path, "configs"))
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("EDFLOW_LOG_ROOT", "EDFLOW_DEBUG", "PYTHONPATH")}
        self.env.update(PYTHONPATH=ROOT, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.debug_run: str | None = None
        self.done: dict[tuple, subprocess.CompletedProcess] = {}

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        key = tuple(argv)
        if key not in self.done:
            argv = [self.substitute(arg) for arg in argv]
            self.done[key] = subprocess.run(executable(argv), cwd=self.path, env=self.env, capture_output=True,
                                            text=True, timeout=TIMEOUT)
        return self.done[key]

    def substitute(self, arg: str) -> str:
        if RUN in arg or STEP in arg:
            assert self.debug_run, "README.md uses logs/<run> but has no `edflow ... -d` command that makes one"
            step = max(int(m.group(1)) for name in os.listdir(os.path.join(self.path, self.debug_run, "train",
                                                                            "checkpoints"))
                       if (m := re.fullmatch(r"model-(\d+)\.ckpt", name)))
            arg = arg.replace(RUN, self.debug_run).replace(STEP, str(step))
        return arg

    def make_debug_run(self) -> None:
        """The README's first debug run: the run folder that logs/<run> stands for."""
        first = next((c for c in COMMANDS if c.argv[0] == "edflow" and "-d" in c.argv), None)
        if first is None or self.debug_run:
            return
        done = self.run(first.argv)
        assert done.returncode == 0, f"{' '.join(first.argv)} failed:\n{done.stderr[-3000:]}"
        runs = sorted(os.listdir(os.path.join(self.path, "logs", "debug_runs")))
        self.debug_run = os.path.join("logs", "debug_runs", runs[-1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, mnist_available):  # the README's debug run trains on MNIST
    folder = Workdir(tmp_path_factory.mktemp("readme"))
    folder.make_debug_run()
    return folder


# ---- checking the others without running them ----------------------------------------------------------------------

class Parsed(Exception):
    """Raised by the patched argument parser: the module accepted its arguments and is stopped before any work."""

    def __init__(self, extras: list[str]):
        super().__init__()
        self.extras = extras


def check_module_arguments(module: str, args: list[str], monkeypatch) -> None:
    """``python -m module args``: the module's parser accepts ``args``; extras must be key=value overrides."""
    if args and args[0] in ("-h", "--help"):
        return
    original = argparse.ArgumentParser.parse_known_args

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = original(self, args, namespace)
        raise Parsed(extras)

    imported = importlib.import_module(module)
    assert hasattr(imported, "main"), f"python -m {module}: the module has no main() to take the arguments"
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_args)
    try:
        imported.main(args)
    except Parsed as parsed:
        flags = [extra for extra in parsed.extras if extra.startswith("-") or "=" not in extra]
        assert not flags, f"python -m {module}: arguments {flags} are neither options nor key=value overrides"
    except SystemExit as error:
        raise AssertionError(f"python -m {module} {' '.join(args)}: its parser refused the arguments") from error
    else:
        raise AssertionError(f"python -m {module} did not parse its arguments with argparse")
    finally:
        monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", original)


def stage_runs(config: Mapping) -> list[str]:
    """Run names the config's first stages (and a classifier FID extractor) are looked up by."""
    names = []

    def walk(node):
        if isinstance(node, Mapping):
            if isinstance(node.get("run"), str) and os.sep not in node["run"]:
                names.append(node["run"])
            for value in node.values():
                walk(value)

    walk(config.get("first_stage"))
    fid = config.get("fid")
    if isinstance(fid, Mapping) and fid.get("extractor") == "classifier" and isinstance(fid.get("run"), str):
        names.append(fid["run"])
    return names


def edflow_argv(argv: list[str]) -> list[str] | None:
    """The edflow arguments of an ``edflow`` or ``torchrun ... -m edflow`` command."""
    if argv[0] == "edflow":
        return argv[1:]
    if argv[0] == "torchrun" and "-m" in argv and option(argv, "-m") == "edflow":
        return argv[argv.index("-m") + 2:]
    return None


@pytest.fixture(scope="module")
def configs_in_order():
    """For every `edflow -b` command, in README order: its error (or None), and the run names made before it."""
    from edflow.main import build_config, parser

    cwd = os.getcwd()
    os.chdir(ROOT)  # the README's paths are relative to the repository's root
    made, results = set(), {}
    try:
        for command in COMMANDS:
            args = edflow_argv(command.argv)
            if args is None or not args or args[0] == "report" or "-b" not in args:
                continue
            try:
                parsed, overrides = parser().parse_known_args(args)
                config, _ = build_config(parsed, overrides)
            except Exception as error:  # noqa: BLE001 - reported by the command's own test
                results[command.id] = (f"{type(error).__name__}: {error}", [])
                continue
            missing = [name for name in stage_runs(config) if name not in made]
            results[command.id] = (None, missing)
            if parsed.train:
                made.add(parsed.name or config.get("experiment_name")
                         or os.path.splitext(os.path.basename(parsed.base[-1]))[0])
    finally:
        os.chdir(cwd)
    return results


def check_without_running(command: Command, configs_in_order, monkeypatch) -> None:
    program, args = command.argv[0], command.argv[1:]
    edflow_args = edflow_argv(command.argv)
    if edflow_args is not None and "-b" in edflow_args:
        error, missing = configs_in_order[command.id]
        assert error is None, f"{' '.join(command.argv)}: {error}"
        assert not missing, (f"{' '.join(command.argv)} needs the runs {missing}, which no earlier command of "
                             f"README.md makes")
    elif program in ("python", "python3") and args[:1] == ["-m"]:
        check_module_arguments(args[1], args[2:], monkeypatch)
    elif program in ("python", "python3"):
        assert os.path.isfile(os.path.join(ROOT, args[0])), f"python {args[0]}: no such script"
    elif program == "make":
        with open(os.path.join(ROOT, "Makefile")) as f:
            targets = re.findall(r"^([\w-]+):", f.read(), flags=re.M)
        assert all(target in targets for target in args), f"make {args}: targets are {targets}"
    elif program == "pip" and args[:2] == ["install", "-e"]:
        extras = re.fullmatch(r"\.\[([\w,-]+)\]", args[2]).group(1).split(",")
        with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
            defined = tomllib.load(f)["project"]["optional-dependencies"]
        assert set(extras) <= set(defined), f"pip install -e {args[2]}: extras are {sorted(defined)}"
    elif program == "edexplore":
        from edflow.util import get_obj_from_str

        get_obj_from_str(option(args, "--dataset"))
        pytest.skip("edexplore starts a web server; its dataset class imports")
    elif program == "git":
        pytest.skip("git clone needs the network")
    else:
        raise AssertionError(f"README.md runs {program!r}, which this test neither runs nor checks: extend the test")


# ---- the tests -----------------------------------------------------------------------------------------------------

def test_the_readme_has_commands_of_every_kind():
    assert len(COMMANDS) > 20
    cheap = [c for c in COMMANDS if is_cheap(c.argv)]
    assert any("-d" in c.argv for c in cheap), "README.md should show a debug run (-d), which the others use"
    assert {"edlist", "edeval"} <= {c.argv[0] for c in cheap}
    assert any(c.argv[1:2] == ["report"] for c in cheap) and any("--check" in c.argv for c in cheap)


@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command(command: Command, request, monkeypatch):
    if not is_cheap(command.argv):
        check_without_running(command, request.getfixturevalue("configs_in_order"), monkeypatch)
        return
    needed = missing_data(command.argv)
    if needed:
        pytest.skip(f"needs {needed}")
    workdir = request.getfixturevalue("workdir")
    done = workdir.run(command.argv)
    assert done.returncode == 0, f"{' '.join(command.argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    args = command.argv[1:]
    if command.argv[0] == "edflow" and "-d" in args:
        assert "edflow: run folder logs/debug_runs/" in done.stderr
    if command.argv[0] == "edlist":
        assert os.path.basename(workdir.debug_run) in done.stdout  # edlist shows the debug run
    if args[:1] == ["report"]:
        assert os.path.isfile(os.path.join(workdir.path, option(args, "--out") or "report", "report.md"))
    if "--check" in args:
        assert "preflight passed" in done.stdout
