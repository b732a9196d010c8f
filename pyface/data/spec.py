"""Datasets named on the command line or in a config: a path or a ``{type: Name, ...}`` mapping.

- ``{type: Name, **kwargs}`` (a dict, or its YAML/JSON text): ``Name(**kwargs)`` for a
  dataset class registered in :data:`DATASETS` (``@register_dataset``: every reader of
  :mod:`pyface.data`; nothing else -- a writer or an error class is not a dataset type);
  a ``transform`` list of ``{type: T, **kwargs}`` becomes ``transforms.Compose([T(**kwargs), ...])``
  for transforms registered in :data:`pyface.data.transforms.TRANSFORMS`. An unknown
  name is a :class:`~pyface.errors.ConfigError` naming the key and the close names;
- a ``.parquet`` file: :class:`ManifestDataset`;
- a ``.rec`` file: :class:`RecordIOFaces`;
- a folder with ``AFW/`` (or another 300W-LP subset) holding ``.mat`` files: :class:`W300LP`;
- any other folder: :class:`ImageFolderFaces` (``root/<identity>/<image>``).
"""
from __future__ import annotations

import inspect
import os

import torch

from pyface.errors import ConfigError
from pyface.registry import Registry, did_you_mean

__all__ = ["DATASETS", "check_spec", "keywords", "open_dataset", "describe_spec", "register_dataset"]

#: Dataset classes a ``{type: Name}`` spec may name (``DATASETS.names()``).
DATASETS: Registry[type] = Registry("dataset type")


def register_dataset(cls: type) -> type:
    """Class decorator: make ``cls`` (a ``torch.utils.data.Dataset``) a dataset type under
    its class name, e.g. ``{type: MyFaces, root: ...}`` in a config."""
    if not (isinstance(cls, type) and issubclass(cls, torch.utils.data.Dataset)):
        raise TypeError(f"register_dataset: {cls!r} is not a torch.utils.data.Dataset class")
    return DATASETS.register(cls.__name__, cls)


def describe_spec(spec) -> str | dict:
    """A canonical, JSON-able form of ``spec`` (for configuration hashes and logs)."""
    spec = _parse(spec)
    if isinstance(spec, dict):
        return {k: (os.path.abspath(v) if k in ("root", "path", "rec_path") and isinstance(v, str) else v)
                for k, v in spec.items()}
    return os.path.abspath(spec)


def _parse(spec):
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        import yaml

        spec = yaml.safe_load(spec)
    if not isinstance(spec, (str, dict, os.PathLike)):
        raise ValueError(f"dataset spec must be a path or a {{type: Name, ...}} mapping, got {spec!r}")
    return os.fspath(spec) if isinstance(spec, os.PathLike) else spec


def keywords(obj) -> set[str] | None:
    """The keyword arguments a dataset class or transform accepts (a class's
    ``__init__``, following ``**kwargs`` up its bases, or to the class its
    ``kwargs_go_to()`` names when it wraps one); None when it takes any."""
    names: set[str] = set()
    chain = [c for c in obj.__mro__ if "__init__" in vars(c)] if isinstance(obj, type) else [obj]
    for f in chain:
        if f in (object, torch.utils.data.Dataset):
            return names
        fn = f.__init__ if isinstance(f, type) else f
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):
            return None
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names
        if isinstance(f, type) and "kwargs_go_to" in vars(f):  # a wrapper: its **kwargs are another class's
            inner = keywords(f.kwargs_go_to())
            return None if inner is None else names | inner
    return None if not isinstance(obj, type) else names


def _required(obj) -> list[str]:
    fn = obj.__init__ if isinstance(obj, type) else obj
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.default is p.empty and p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_keywords(obj, args: dict, where: str, what: str) -> list[str]:
    known = keywords(obj)
    problems = [f"{where}: {what} needs {k!r}" for k in _required(obj) if k not in args]
    if known is not None:
        problems += [f"{where}.{k}: unknown key for {what}{did_you_mean(k, sorted(known))}"
                     for k in args if k not in known]
    return problems


def check_spec(spec, *, what: str | None = None) -> None:
    """Check a ``{type: Name, **kwargs}`` spec without opening anything: the type and
    its transforms registered, every required key given and every key one their
    constructors take (the closest one suggested). A path is left to
    :func:`open_dataset`. Raises one :class:`ConfigError` line naming the keys."""
    import pyface.data as D

    spec = _parse(spec)
    if not isinstance(spec, dict):
        return
    key = what or "dataset"
    args = dict(spec)
    name = args.pop("type", None)
    if not name:
        raise ConfigError(f"{key}.type: a dataset mapping needs 'type' (one of {DATASETS.names()})")
    cls = DATASETS.get(name, what=f"{key}.type")
    problems = _check_keywords(cls, args, key, f"dataset type {name}")
    transform = args.get("transform")
    if isinstance(transform, list):
        for i, t in enumerate(transform):
            w = f"{key}.transform[{i}]"
            if not isinstance(t, dict):
                problems.append(f"{w}: expected a {{type: Name, ...}} mapping, got {t!r}")
                continue
            t = dict(t)
            tname = t.pop("type", None)
            fn = D.transforms.TRANSFORMS.get(tname, what=f"{w}.type")
            problems += _check_keywords(fn, t, w, f"transform {tname}")
    if problems:
        raise ConfigError("; ".join(problems))


def open_dataset(spec, *, what: str | None = None, **kw):
    """The dataset ``spec`` names (see the module docstring); ``kw`` (e.g. ``on_error``)
    go to file-backed readers. ``what`` names the spec in errors (e.g. "data.train").
    Raises FileNotFoundError / ValueError (ConfigError for unknown names) naming the spec."""
    import pyface.data as D

    spec = _parse(spec)
    if isinstance(spec, dict):
        key = what or "dataset"
        check_spec(spec, what=key)
        args = dict(spec)
        cls = DATASETS.get(args.pop("type"), what=f"{key}.type")
        if isinstance(args.get("transform"), list):  # [{type: RandomFaceCrop, ...}, ...] -> transforms.Compose
            ts = []
            for i, t in enumerate(args["transform"]):
                if not isinstance(t, dict):
                    raise ConfigError(f"{key}.transform[{i}]: expected a {{type: Name, ...}} mapping, got {t!r}")
                t = dict(t)
                ts.append(D.transforms.TRANSFORMS.get(t.pop("type", None), what=f"{key}.transform[{i}].type")(**t))
            args["transform"] = D.transforms.Compose(ts)
        if issubclass(cls, D.base.FaceDataset):
            args = {**kw, **args}
        return cls(**args)
    path = spec
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset not found: {path}")
    if path.endswith(".parquet"):
        return D.ManifestDataset(path, **kw)
    if path.endswith(".rec"):
        return D.RecordIOFaces(path, **kw)
    if os.path.isdir(path):
        subsets = [s for s in D.w300lp.SUBSETS if os.path.isdir(os.path.join(path, s))]
        if subsets and any(f.endswith(".mat") for f in os.listdir(os.path.join(path, subsets[0]))):
            return D.W300LP(path, subsets=subsets,
                            flip=all(os.path.isdir(os.path.join(path, s + "_Flip")) for s in subsets), **kw)
        return D.ImageFolderFaces(path, **kw)
    raise ValueError(f"{path}: not a dataset (expected a folder, a .parquet manifest or a .rec file)")
