"""Errors raised when a dataset cannot be read; both say which file or folder is at fault and how to fix it."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the places searched."""


class CorruptDataError(ValueError):
    """A dataset file exists but is truncated or not in the expected format."""
