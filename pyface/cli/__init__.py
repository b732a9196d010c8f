"""The ``pyface`` command line.

One strict parser: an option a command does not know is an error that names the
closest one (``pyface train: error: unknown option --out (did you mean '--out-dir'?)``),
and no abbreviations are taken. Every subcommand is a :class:`~pyface.cli.command.Command`
registered in :data:`~pyface.cli.command.COMMANDS` by the modules of
:data:`COMMAND_MODULES`; building the parser imports none of the jobs (``pyface --help``
does not import torch). Old spellings map explicitly to the new ones with a one-line
note (:data:`RENAMED`, :func:`upgrade_argv`).

Errors: a :class:`pyface.errors.UserError` from parsing or from a command prints
``pyface <command>: error: <message>`` (one line) and exits with 2; anything else is a
bug and keeps its traceback (exit 1). Under ``torchrun`` (WORLD_SIZE > 1) every job ends
through :func:`pyface.distributed.run_job` with the same reporting as its ``on_error``.
"""
from __future__ import annotations

import importlib
import os
import sys
import traceback

from pyface.cli.command import COMMANDS, Command, CommandLineError, Group, StrictParser, unknown_options
from pyface.errors import UserError
from pyface.registry import did_you_mean

__all__ = ["COMMAND_MODULES", "RENAMED", "build_parser", "commands", "main", "parse_args", "run", "upgrade_argv"]

#: The modules whose import registers the subcommands, in ``pyface --help`` order.
COMMAND_MODULES = ("train", "demo", "eval", "label", "data", "checkpoint", "export", "analyze", "bench",
                   "doctor")

#: Old command words -> new ones (an argv prefix is replaced; a note says so).
RENAMED: dict[tuple[str, ...], tuple[str, ...]] = {
    ("eval", "demo"): ("demo", "eval"),
    ("label", "demo"): ("demo", "label"),
}
#: Old options that became command words: ``pyface demo --recipe hmtl`` -> ``pyface demo hmtl``.
OPTION_RENAMED: dict[tuple[str, str], int] = {("demo", "--recipe"): 1}  # (command, option) -> argv position


def commands() -> dict[str, Command | Group]:
    """Every registered command and group by full name (registers them on first use)."""
    for m in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{m}")
    return {n: COMMANDS.get(n) for n in COMMANDS.names()}


def _top_level(cmds) -> list[str]:
    order = {m: i for i, m in enumerate(COMMAND_MODULES)}
    names = [n for n in cmds if " " not in n]
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def _subcommands(cmds, group: str) -> list[str]:
    """A group's subcommands, its default first."""
    subs = [n.split(" ", 1)[1] for n in cmds if n.startswith(group + " ")]
    return sorted(subs, key=lambda s: s != cmds[group].default)


def _build(cmds) -> tuple[StrictParser, dict[str, StrictParser]]:
    top = StrictParser(prog="pyface", description="pyface: multitask face analysis -- train, evaluate, "
                       "pseudo-label, demos, kernel benchmarks.",
                       epilog="`pyface <command> --help` shows a command's options.")
    sub = top.add_subparsers(dest="command", metavar="<command>")
    parsers = {}
    for name in _top_level(cmds):
        entry = cmds[name]
        p = sub.add_parser(name, help=entry.help, description=entry.description or entry.help)
        if isinstance(entry, Group):
            inner = p.add_subparsers(dest="subcommand", metavar="<command>")
            for s in _subcommands(cmds, name):
                c = cmds[f"{name} {s}"]
                q = inner.add_parser(s, help=c.help, description=c.description or c.help)
                c.add_arguments(q)
                parsers[c.name] = q
        else:
            entry.add_arguments(p)
            parsers[name] = p
    return top, parsers


def build_parser() -> StrictParser:
    """The whole ``pyface`` parser (for ``--help`` and tests; :func:`parse_args` adds
    the strict checks and the old spellings)."""
    return _build(commands())[0]


def upgrade_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Old spellings rewritten to the new ones; returns (argv, notes)."""
    argv, notes = list(argv), []
    for old, new in RENAMED.items():
        if tuple(argv[:len(old)]) == old:
            argv = [*new, *argv[len(old):]]
            notes.append(f"'pyface {' '.join(old)}' is now 'pyface {' '.join(new)}'")
    for (cmd, opt), pos in OPTION_RENAMED.items():
        if argv[:1] != [cmd]:
            continue
        for i, a in enumerate(argv):
            if a == "--":
                break
            if a == opt or a.startswith(opt + "="):
                value = a.split("=", 1)[1] if "=" in a else (argv[i + 1] if i + 1 < len(argv) else None)
                if value is None:
                    break  # the parser reports the missing value
                del argv[i:i + (1 if "=" in a else 2)]
                argv.insert(pos, value)
                notes.append(f"'pyface {cmd} {opt} {value}' is now 'pyface {cmd} {value}'")
                break
    return argv, notes


_HELP = ("-h", "--help")


def _resolve(argv: list[str], cmds) -> tuple[Command | None, list[str]]:
    """The command argv names (None for ``pyface --help``) and argv with a group's
    default subcommand filled in; unknown command words are UsageErrors with suggestions."""
    if not argv:
        raise CommandLineError("pyface", "no command given; choose one of: " + ", ".join(_top_level(cmds)))
    head = argv[0]
    if head in _HELP:
        return None, argv
    top = _top_level(cmds)
    if head.startswith("-"):
        raise CommandLineError("pyface", f"unknown option {head}{did_you_mean(head, _HELP)}; "
                               "`pyface <command> --help` shows a command's options")
    if head not in top:
        raise CommandLineError("pyface", f"unknown command {head!r}{did_you_mean(head, top)}; "
                               f"commands: {', '.join(top)}")
    entry = cmds[head]
    if isinstance(entry, Command):
        return entry, argv
    subs = _subcommands(cmds, head)
    nxt = argv[1] if len(argv) > 1 else None
    if entry.default and (nxt is None or (nxt.startswith("-") and nxt not in _HELP)):
        argv = [head, entry.default, *argv[1:]]
        nxt = entry.default
    if nxt in _HELP:
        return None, argv
    if nxt is None:
        raise CommandLineError(f"pyface {head}", "no command given; choose one of: " + ", ".join(subs))
    if nxt.startswith("-"):
        raise CommandLineError(f"pyface {head}", f"unknown option {nxt}; name a command first: {', '.join(subs)}")
    if nxt not in subs:
        raise CommandLineError(f"pyface {head}", f"unknown command {nxt!r}{did_you_mean(nxt, subs)}; "
                               f"commands: {', '.join(subs)}")
    return cmds[f"{head} {nxt}"], argv


def parse_args(argv: list[str]):
    """(command, args) for ``argv`` (no program name), strictly: an unknown option or
    argument is a :class:`CommandLineError` naming the closest option. Old spellings
    are rewritten first (a note on stderr). ``--help`` prints and raises SystemExit(0)."""
    argv, notes = upgrade_argv(list(argv))
    for n in notes:
        print(f"pyface: note: {n} (the old spelling will be removed)", file=sys.stderr)
    cmds = commands()
    cmd, argv = _resolve(argv, cmds)
    top, parsers = _build(cmds)
    if cmd is None:  # pyface --help / pyface <group> --help
        top.parse_args(argv)
        raise AssertionError("--help returns through SystemExit")  # pragma: no cover
    p = parsers[cmd.name]
    words = len(cmd.name.split())
    if not cmd.extra_options:
        unknown = unknown_options(argv[words:], p.option_strings())
        if unknown:
            u, known = unknown[0], p.option_strings()
            hint = did_you_mean(u, known) or "; options: " + " ".join(o for o in known if o.startswith("--"))
            raise CommandLineError(p.prog, f"unknown option {u}{hint}")
    args, rest = top.parse_known_args(argv)
    if rest and not cmd.extra_options:
        raise CommandLineError(p.prog, "unexpected argument" + ("s " if len(rest) > 1 else " ")
                               + " ".join(repr(r) for r in rest))
    args.rest = rest
    return cmd, args


def _one_line(prog: str, exc: BaseException) -> int:
    msg = " ".join(str(exc).split("\n")).strip() or type(exc).__name__
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return 2


def _reporter(prog: str):
    """``on_error`` of run_job: a user error as one line (2), a bug with its traceback (1)."""

    def report(exc: BaseException) -> int:
        if isinstance(exc, UserError):
            return _one_line(prog, exc)
        traceback.print_exception(exc)
        return 1

    return report


def _job(cmd: Command):
    if cmd.elastic_record:  # torchelastic's error file names the failing rank's exception
        from torch.distributed.elastic.multiprocessing.errors import record

        return record(cmd.run)
    return cmd.run


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors propagate (tests use this to see
    them; ``main`` reports them)."""
    cmd, args = parse_args(sys.argv[1:] if argv is None else argv)
    return _job(cmd)(args)


def main(argv: list[str] | None = None) -> int:
    """The ``pyface`` program: exit code 0 on success, 2 on a user error (one line on
    stderr); a bug raises (traceback, exit 1)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cmd, args = parse_args(argv)
    except CommandLineError as exc:
        return _one_line(exc.prog, exc)
    prog = f"pyface {cmd.name}"
    try:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # one rank of a torchrun launch (issue 16)
            from pyface.distributed import run_job

            return run_job(_job(cmd), args, on_error=_reporter(prog))
        return _job(cmd)(args)
    except UserError as exc:
        return _one_line(getattr(exc, "prog", prog), exc)

