"""Small helpers edflow code relies on: nested look-ups in configs and objects from dotted paths."""
from __future__ import annotations

import difflib
import importlib
from typing import Any

from edflow.config import ConfigError

_MISSING = object()


class KeyNotFoundError(KeyError):
    pass


class ClassPathError(ConfigError, ImportError):
    """A dotted path in a config that does not lead to an importable class or function."""


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
    """``get_obj_from_str("iin.models.ae.Model")`` -> the class (or function), imported from its module."""
    if not isinstance(path, str) or "." not in path or not all(part.isidentifier() for part in path.split(".")):
        raise ClassPathError(f"expected a dotted path such as 'package.module.Name', got {path!r}")
    module_name, name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise ClassPathError(f"cannot import {path!r}: module {module_name!r} not found ({error}); "
                                 f"check the spelling and that its package is on PYTHONPATH") from error
        raise ClassPathError(f"cannot import {path!r}: its module needs {error.name!r}, which is not installed "
                             f"(pip install it)") from error
    if reload:
        module = importlib.reload(module)
    try:
        obj = getattr(module, name)
    except AttributeError:
        close = difflib.get_close_matches(name, [n for n in dir(module) if not n.startswith("_")], n=1)
        hint = f"; did you mean {module_name}.{close[0]}?" if close else ""
        raise ClassPathError(f"cannot import {path!r}: module {module_name!r} has no attribute {name!r}{hint}") \
            from None
    if not callable(obj):
        raise ClassPathError(f"{path!r} is a {type(obj).__name__}, not a class or function")
    return obj


def instantiate(path: str, *args, **kwargs) -> Any:
    return get_obj_from_str(path)(*args, **kwargs)
