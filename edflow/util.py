"""Small helpers edflow code relies on: nested look-ups in configs and objects from dotted paths."""
from __future__ import annotations

import importlib
from typing import Any

_MISSING = object()


class KeyNotFoundError(KeyError):
    pass


def retrieve(collection: Any, key: str, default: Any = _MISSING, splitval: str = "/") -> Any:
    """``retrieve(config, "Model/z_dim", default=64)``: walk nested dicts/lists along ``key``."""
    value = collection
    walked = []
    for part in key.split(splitval) if key else []:
        walked.append(part)
        try:
            if isinstance(value, (list, tuple)):
                value = value[int(part)]
            else:
                value = value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            if default is not _MISSING:
                return default
            raise KeyNotFoundError(f"config has no key {splitval.join(walked)!r} (looking up {key!r})") from None
    return value


def get_obj_from_str(path: str, reload: bool = False) -> Any:
    """``get_obj_from_str("iin.models.ae.Model")`` -> the class, imported from its module."""
    if not isinstance(path, str) or "." not in path:
        raise ValueError(f"expected a dotted path such as 'package.module.Name', got {path!r}")
    module_name, name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ImportError(f"cannot import {path!r}: module {module_name!r} not found ({error})") from error
    if reload:
        module = importlib.reload(module)
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImportError(f"cannot import {path!r}: module {module_name!r} has no attribute {name!r}") from None


def instantiate(path: str, *args, **kwargs) -> Any:
    return get_obj_from_str(path)(*args, **kwargs)
