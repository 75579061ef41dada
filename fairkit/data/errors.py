"""Errors raised when a dataset cannot be read; both say which file or folder is at fault and how to fix it."""
from edflow.data.dataset import DataError


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A dataset's files are in none of the places searched."""


class CorruptDataError(DataError, ValueError):
    """A dataset file exists but is truncated or not in the expected format."""
