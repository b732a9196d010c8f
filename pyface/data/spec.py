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

import os

import torch

from pyface.errors import ConfigError
from pyface.registry import Registry

__all__ = ["DATASETS", "open_dataset", "describe_spec", "register_dataset"]

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


def open_dataset(spec, *, what: str | None = None, **kw):
    """The dataset ``spec`` names (see the module docstring); ``kw`` (e.g. ``on_error``)
    go to file-backed readers. ``what`` names the spec in errors (e.g. "data.train").
    Raises FileNotFoundError / ValueError (ConfigError for unknown names) naming the spec."""
    import pyface.data as D

    spec = _parse(spec)
    if isinstance(spec, dict):
        key = what or "dataset"
        args = dict(spec)
        name = args.pop("type", None)
        if not name:
            raise ConfigError(f"{key}.type: a dataset mapping needs 'type' (one of {DATASETS.names()})")
        cls = DATASETS.get(name, what=f"{key}.type")
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
