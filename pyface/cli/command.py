"""How a ``pyface`` subcommand is written and registered.

A subcommand is a :class:`Command` -- a name (``"train"``, ``"label landmarks"``), a
one-line help, ``add_arguments(parser)`` and ``run(args) -> exit code`` -- registered in
:data:`COMMANDS` by the :func:`command` class decorator; two-word names sit under a
:class:`Group` registered the same way (``label``, ``demo``, ``checkpoint``). The
modules that define commands import only argparse-level things at the top (the
command line's ``--help`` must not import torch); ``run`` imports its job.

``run`` checks its arguments before any long work and raises
:class:`pyface.errors.UsageError` naming the flag (:func:`existing_file` and friends);
any :class:`pyface.errors.UserError` it raises is printed by ``pyface.cli.main`` as one
line with exit code 2, anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import re

from pyface.errors import UsageError
from pyface.registry import Registry

__all__ = ["COMMANDS", "Command", "CommandLineError", "Group", "StrictParser", "command", "dataset_spec",
           "existing_dir", "existing_file", "existing_path", "positive_float", "positive_int", "non_negative_int",
           "unknown_options"]

#: Every subcommand and command group of ``pyface``, by its full name ("label landmarks").
COMMANDS: Registry = Registry("command")


class Command:
    """One subcommand. Subclasses set ``name`` and ``help`` and override
    :meth:`add_arguments` and :meth:`run`."""

    name: str = ""
    help: str = ""
    #: Shown by ``pyface <name> --help`` above the options (default: ``help``).
    description: str | None = None
    #: Options this command's parser does not know are passed on in ``args.rest`` for
    #: ``run`` to check (``bench``: the selected benchmarks' own options).
    extra_options: bool = False
    #: Wrap ``run`` in torchelastic's ``record`` (its error file names the failing rank).
    elastic_record: bool = False

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


class Group:
    """A command word that only holds subcommands (``pyface label ...``). ``default``:
    the subcommand used when none is named (``pyface demo`` is ``pyface demo mtl``)."""

    def __init__(self, name: str, help: str, default: str | None = None, description: str | None = None):
        self.name, self.help, self.default, self.description = name, help, default, description

    def __repr__(self) -> str:
        return f"Group({self.name!r})"


def command(cls: type[Command]) -> type[Command]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if not cls.name or not cls.help:
        raise ValueError(f"{cls.__name__}: a command needs a name and a help line")
    COMMANDS.register(cls.name, cls())
    return cls


class CommandLineError(UsageError):
    """An argument the parser of ``prog`` refused (printed as ``<prog>: error: <message>``)."""

    def __init__(self, prog: str, message: str):
        super().__init__(message)
        self.prog = prog


class StrictParser(argparse.ArgumentParser):
    """An argument parser that raises :class:`CommandLineError` instead of printing its
    usage and exiting, and takes no abbreviations (``--out`` is not ``--out-dir``: an
    abbreviation that works today would silently change meaning when an option is
    added)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise CommandLineError(self.prog, message)

    def option_strings(self) -> list[str]:
        return [s for a in self._actions for s in a.option_strings]


_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


def unknown_options(tokens: list[str], known: list[str]) -> list[str]:
    """Option-like tokens (``--x``, ``--x=v``, ``-x``) that are not in ``known``;
    negative numbers are values, and ``--`` ends the options."""
    out = []
    for t in tokens:
        if t == "--":
            break
        if t.startswith("-") and not _NEGATIVE_NUMBER.match(t) and t.split("=", 1)[0] not in known:
            out.append(t.split("=", 1)[0])
    return out


# ----------------------------------------------------------------------------- argument checks
def _arg_type(check):
    """An argparse ``type=`` from ``check(text) -> value`` raising ValueError(message)."""

    def convert(text: str):
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__
    return convert


def _number(text: str, kind, lo, strict: bool):
    try:
        v = kind(text)
    except ValueError:
        raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if v < lo or (strict and v == lo):
        raise ValueError(f"must be {'>' if strict else '>='} {lo}, got {text}")
    return v


positive_int = _arg_type(lambda t: _number(t, int, 0, True))
positive_int.__name__ = "positive_int"
non_negative_int = _arg_type(lambda t: _number(t, int, 0, False))
non_negative_int.__name__ = "non_negative_int"
positive_float = _arg_type(lambda t: _number(t, float, 0.0, True))
positive_float.__name__ = "positive_float"


def existing_path(flag: str, path, what: str = "path") -> str:
    """``path`` if it exists, else a UsageError naming ``flag``."""
    if path is None or not os.path.exists(path):
        raise UsageError(f"{flag}: {what} not found: {path}")
    return os.fspath(path)


def existing_file(flag: str, path, what: str = "file") -> str:
    existing_path(flag, path, what)
    if os.path.isdir(path):
        raise UsageError(f"{flag}: expected a {what}, got a folder: {path}")
    return os.fspath(path)


def existing_dir(flag: str, path, what: str = "folder") -> str:
    existing_path(flag, path, what)
    if not os.path.isdir(path):
        raise UsageError(f"{flag}: expected a {what}, got a file: {path}")
    return os.fspath(path)


def dataset_spec(flag: str, spec: str) -> str:
    """A dataset spec of the command line (pyface.data.spec): a path must exist; a
    ``{type: ...}`` mapping is checked when the dataset opens."""
    if not spec.lstrip().startswith("{"):
        existing_path(flag, spec, "dataset")
    return spec
