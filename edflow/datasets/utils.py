"""Where edflow 0.4 kept a dataset's files, and the error for files that are not there."""
from __future__ import annotations

import os
from pathlib import Path

from edflow.data.dataset import DatasetNotFoundError

CACHE_ENV_VAR = "EDDATA_CACHE"


def get_root(name: str) -> Path:
    """``$EDDATA_CACHE/<name>`` (default ``~/.eddata_cache/<name>``), the folder edflow 0.4 prepared it in."""
    base = os.environ.get(CACHE_ENV_VAR) or os.path.join("~", ".eddata_cache")
    return Path(base).expanduser().absolute() / name


def require(root: Path, names: list[str], dataset: str, source: str, how: str = "") -> None:
    """Every one of ``names`` (files, or folders when they end in /) exists in ``root``, else a clear error."""
    missing = [n for n in names if not (root / n.rstrip("/")).exists()]
    if missing:
        raise DatasetNotFoundError(
            f"{dataset} is not in edflow's data cache: missing {', '.join(missing)} in {root}/. Put "
            f"{', '.join(names)} there (from {source}){how}, or set ${CACHE_ENV_VAR} to the folder that holds "
            f"{root.name}/. Nothing is downloaded.")


def config_split(dataset, default: str = "train") -> str:
    """edflow's rule: ``<NAME>: {split: ...}`` in the config, else test under ``test_mode``, else train."""
    config = dataset.config
    split = "test" if config.get("test_mode", False) else default
    section = config.get(dataset.NAME)
    if isinstance(section, dict):
        split = section.get("split", split)
    return split
