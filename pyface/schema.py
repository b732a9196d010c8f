"""Declared configuration schemas: every setting is one :class:`Key` (its default, type,
range, choices, and whether it may change when a run is resumed), declared next to
the defaults of its section, so adding a setting is one line::

    "warmup_steps": Key(0, int, ge=0),
    "schedule": Key("exp", choices=("exp", "cosine", "constant", "multistep")),
    "max_steps": Key(None, int, ge=1, may_change=True),   # None allowed: the default is None

A section is a plain dict of keys (or of nested sections). :func:`validate` checks a
whole configuration against it -- unknown keys at every level (with the closest known
name: ``optim.epoch: unknown key (did you mean 'epochs'?)``), types (``optim.lr:
expected a number, got 'fast' (str)``), ranges (``optim.lr: must be > 0, got -1``) and
choices -- and returns every problem, each naming its dotted key; :func:`check` raises
them as one :class:`~pyface.errors.ConfigError` line. :func:`defaults` gives the
section's defaults as a plain dict; :func:`fixed_part` the part of a configuration that
must not change on resume (every key not declared ``may_change``).

Types: ``bool``, ``int``, ``float`` (an int is a number too; a bool is neither), ``str``,
``list``, ``dict``, ``"any"``, or a tuple of them. Without a type, the default's type is
taken (None: any). A YAML 1.1 quirk is accepted for numbers: PyYAML reads ``1e-3``
(no dot) as the string ``"1e-3"``, which YAML 1.2 and every user mean as a number.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from pyface.errors import ConfigError
from pyface.registry import did_you_mean

__all__ = ["ANY", "Key", "check", "defaults", "fixed_part", "infer_key", "may_change", "raise_problems", "validate"]

ANY = "any"
_EXP_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping"}


class Key:
    """One setting. ``default``: its value when not given; ``type``: see the module
    docstring; ``ge``/``gt``/``le``/``lt``: numeric bounds; ``choices``: allowed values;
    ``items``: type of a list's elements; ``nullable``: None allowed (default: when the
    default is None); ``check(value) -> message or None``: any other rule; ``why``:
    appended to a range error (the reason for the bound); ``may_change``: a resumed run
    may use another value (e.g. ``max_steps``); ``doc``: one line for humans."""

    __slots__ = ("default", "type", "ge", "gt", "le", "lt", "choices", "items", "nullable", "check", "why",
                 "may_change", "doc")

    def __init__(self, default=None, type=None, *, ge=None, gt=None, le=None, lt=None, choices=None, items=None,
                 nullable: bool | None = None, check: Callable[[Any], str | None] | None = None, why: str = "",
                 may_change: bool = False, doc: str = ""):
        self.default = default
        self.type = type if type is not None else _type_of(default)
        self.ge, self.gt, self.le, self.lt = ge, gt, le, lt
        self.choices = tuple(choices) if choices is not None else None
        self.items = items
        self.nullable = default is None if nullable is None else nullable
        self.check, self.why, self.may_change, self.doc = check, why, may_change, doc

    def __repr__(self) -> str:
        return f"Key({self.default!r}, {self.type!r})"

    def validate(self, value, path: str) -> tuple[Any, list[str]]:
        """(value, problems): the value as used (a YAML-1.1 exponent string as a float)."""
        if value is None:
            return value, ([] if self.nullable else [f"{path}: must be set, got null"])
        value, problem = _convert(value, self.type, path)
        if problem:
            return value, [problem]
        if self.choices is not None and value not in self.choices:
            return value, [f"{path}: must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
                           + did_you_mean(value, [c for c in self.choices if isinstance(c, str)])]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for bound, op, ok in (("ge", ">=", lambda v, b: v >= b), ("gt", ">", lambda v, b: v > b),
                                  ("le", "<=", lambda v, b: v <= b), ("lt", "<", lambda v, b: v < b)):
                b = getattr(self, bound)
                if b is not None and not ok(value, b):
                    return value, [f"{path}: must be {op} {b}, got {value!r}" + (f" ({self.why})" if self.why else "")]
        if self.items is not None and isinstance(value, list):
            out, problems = [], []
            for i, v in enumerate(value):
                v, p = _convert(v, self.items, f"{path}[{i}]")
                out.append(v)
                problems += [p] if p else []
            if problems:
                return value, problems
            value = out
        if self.check is not None:
            msg = self.check(value)
            if msg:
                return value, [f"{path}: {msg}"]
        return value, []


def _type_of(default):
    if default is None:
        return ANY
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    if isinstance(default, (list, tuple)):
        return list
    if isinstance(default, dict):
        return dict
    return ANY


def infer_key(default) -> Key:
    """A :class:`Key` for a plain default (its type; a Key is returned as is)."""
    return default if isinstance(default, Key) else Key(default)


def _is(value, t) -> bool:
    if t == ANY:
        return True
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, t)


def _name(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_name(x) for x in t)
    return _TYPE_NAMES.get(t, "any value") if t != ANY else "any value"


def _convert(value, t, path: str) -> tuple[Any, str | None]:
    types = t if isinstance(t, tuple) else (t,)
    if any(_is(value, x) for x in types):
        if isinstance(value, tuple) and list in types:
            value = list(value)
        return value, None
    if float in types and isinstance(value, str) and _EXP_FLOAT.match(value.strip()):
        return float(value), None  # PyYAML's `1e-3`
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return value, f"{path}: expected {_name(t)}, got {shown} ({type(value).__name__})"


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def validate(cfg: dict, schema: dict, path: str = "") -> tuple[dict, list[str]]:
    """(cfg with converted values, problems) of ``cfg`` against ``schema`` (a dict of
    :class:`Key` or nested dicts). Keys of ``schema`` missing from ``cfg`` are not
    problems (their defaults apply)."""
    if not isinstance(cfg, dict):
        return cfg, [f"{path or 'config'}: expected a mapping, got {type(cfg).__name__}"]
    out, problems = dict(cfg), []
    for k, v in cfg.items():
        p = _join(path, k)
        if k not in schema:
            hint = did_you_mean(k, [str(s) for s in schema]) or _elsewhere(k, schema, path)
            problems.append(f"{p}: unknown key{hint}")
            continue
        spec = schema[k]
        if isinstance(spec, dict):
            if v is None:
                continue
            out[k], more = validate(v, spec, p)
        else:
            out[k], more = spec.validate(v, p)
        problems += more
    return out, problems


def _elsewhere(key, schema: dict, path: str) -> str:
    """" (did you mean 'optim.lr'?)" when ``key`` is a key of a section below."""
    found = [_join(_join(path, k), key) for k, s in schema.items() if isinstance(s, dict) and key in s]
    return " (did you mean " + " or ".join(repr(f) for f in found) + "?)" if found else ""


def check(cfg: dict, schema: dict, path: str = "", *, limit: int = 6) -> dict:
    """:func:`validate`, raising every problem as one :class:`ConfigError` line."""
    out, problems = validate(cfg, schema, path)
    raise_problems(problems, limit=limit)
    return out


def raise_problems(problems: list[str], *, limit: int = 6) -> None:
    if problems:
        more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
        raise ConfigError("; ".join(problems[:limit]) + more)


def defaults(schema: dict) -> dict:
    """The defaults of ``schema`` as a plain nested dict."""
    return {k: defaults(s) if isinstance(s, dict) else _copy(s.default) for k, s in schema.items()}


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_copy(x) for x in v]
    return v


def fixed_part(cfg: dict, schema: dict) -> dict:
    """``cfg`` without the keys declared ``may_change`` (what a resumed run must keep).
    Keys ``schema`` does not declare are kept (a section validated elsewhere)."""
    out = {}
    for k, v in cfg.items():
        s = schema.get(k)
        if isinstance(s, Key) and s.may_change:
            continue
        out[k] = fixed_part(v, s) if isinstance(s, dict) and isinstance(v, dict) else v
    return out


def may_change(schema: dict, path: str = "") -> list[str]:
    """Dotted names of the keys declared ``may_change``."""
    out = []
    for k, s in schema.items():
        if isinstance(s, dict):
            out += may_change(s, _join(path, k))
        elif s.may_change:
            out.append(_join(path, k))
    return out
