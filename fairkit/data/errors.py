"""Errors raised when a dataset cannot be read; both say which file or folder is at fault and how to fix it."""
from edflow.data.dataset import CorruptDataError, DataError, DatasetNotFoundError

__all__ = ["CorruptDataError", "DataError", "DatasetNotFoundError"]
