"""The errors a user causes, as opposed to bugs.

A :class:`UserError` says what is wrong with the user's input -- a command-line flag, a
configuration key, a data file, a checkpoint, an output folder -- in one line that names
the flag, key or file. ``pyface``'s command line prints such an error as one line and
exits with code 2; any other exception is a bug and keeps its traceback.

Each class also derives from the builtin a Python caller would expect (``ValueError``,
``OSError``), so library code that catches those keeps working.
"""
from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "DataError", "OutputError", "UsageError", "UserError"]


class UserError(Exception):
    """Bad input from the user; the message names the flag, key or file."""


class UsageError(UserError, ValueError):
    """A command-line argument that cannot be used (unknown flag, bad value)."""


class ConfigError(UserError, ValueError):
    """A configuration key or value that cannot be used (the message names the key)."""


class DataError(UserError, ValueError):
    """A sample or data file that cannot be used: unreadable/corrupt image, missing
    file, or labels out of range. The message names the dataset, index and file."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded (unreadable, not pyface's, wrong heads)."""


class OutputError(UserError, OSError):
    """An output that cannot be written as asked: folder in use by another run, an
    existing run without --resume, no space left (the message names the path)."""
