"""edflow: a YAML-driven training runner with edflow's interface, on PyTorch alone.

Replaces the unmaintained ``edflow`` 0.4 release; do not install both in one environment.
"""
__version__ = "1.0.0"


def __getattr__(name):
    # Lazy so that importing edflow.data or edflow.util does not pull in the whole runner.
    if name == "TemplateIterator":
        from edflow.iterators.template_iterator import TemplateIterator

        return TemplateIterator
    if name == "get_logger":
        from edflow.custom_logging import get_logger

        return get_logger
    if name == "Hook":
        from edflow.hooks.hook import Hook

        return Hook
    if name in ("retrieve", "get_obj_from_str"):
        from edflow import util

        return getattr(util, name)
    raise AttributeError(f"module 'edflow' has no attribute {name!r}")
