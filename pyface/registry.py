"""One registry helper for everything pyface looks up by name (heads, tasks, recipes,
optimizers, dataset types, transforms, demos, detectors...), in the shape of timm's
``register_model``::

    HEADS = Registry("head")

    @HEADS.register("fr")
    def build_fr_head(...): ...

    HEADS.get("fr")           # the object; an unknown name raises a ConfigError
    HEADS.names("ssl_*")      # sorted names, optionally filtered by a glob
    "fr" in HEADS

An unknown name is a :class:`pyface.errors.ConfigError` that names what was looked up,
suggests the closest names (``difflib``) and lists the known ones -- the same message
wherever the name came from (a YAML key, a dataset spec, a command-line argument).
"""
from __future__ import annotations

import difflib
import fnmatch
from typing import Generic, Iterator, TypeVar

from pyface.errors import ConfigError

__all__ = ["Registry", "did_you_mean"]

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """" (did you mean 'x'?)" for the closest of ``choices``, or ""."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


class Registry(Generic[T]):
    """Name -> object, registered by decorator or call; ``kind`` names the entries in errors."""

    def __init__(self, kind: str, *, plural: str | None = None):
        self.kind = kind
        self.plural = plural or kind + "s"
        self._items: dict[str, T] = {}

    def register(self, name: str | None = None, obj: T | None = None, *, overwrite: bool = False):
        """``@reg.register("name")`` / ``@reg.register()`` (the object's ``__name__``) or
        ``reg.register("name", obj)``. A second registration of a name is an error
        unless ``overwrite`` (tests replacing an entry)."""

        def add(o: T) -> T:
            key = name if name is not None else getattr(o, "__name__", None)
            if not isinstance(key, str) or not key:
                raise ValueError(f"a {self.kind} needs a name, got {key!r}")
            if key in self._items and not overwrite and self._items[key] is not o:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = o
            return o

        return add(obj) if obj is not None else add

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str, *, what: str | None = None) -> T:
        """The entry ``name``; :class:`ConfigError` with suggestions when unknown.
        ``what`` names where the name came from (e.g. ``"data.train.type"``)."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        where = f"{what}: " if what else ""
        known = ", ".join(self.names()) or "none registered"
        raise ConfigError(f"{where}unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                          f"known {self.plural}: {known}")

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, filtered by a glob ``pattern`` when given."""
        names = sorted(self._items)
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)] if pattern else names

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

