from edflow.hooks.hook import Hook

__all__ = ["Hook"]
