"""Datasets named on the command line: a path or a ``{type: Name, ...}`` mapping.

- ``{type: Name, **kwargs}`` (a dict, or its YAML/JSON text): ``pyface.data.Name(**kwargs)``;
  a ``transform`` list of ``{type: T, **kwargs}`` becomes ``transforms.Compose([T(**kwargs), ...])``;
- a ``.parquet`` file: :class:`ManifestDataset`;
- a ``.rec`` file: :class:`RecordIOFaces`;
- a folder with ``AFW/`` (or another 300W-LP subset) holding ``.mat`` files: :class:`W300LP`;
- any other folder: :class:`ImageFolderFaces` (``root/<identity>/<image>``).
"""
from __future__ import annotations

import os

__all__ = ["open_dataset", "describe_spec"]


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


def open_dataset(spec, **kw):
    """The dataset ``spec`` names (see the module docstring); ``kw`` (e.g. ``on_error``)
    go to file-backed readers. Raises FileNotFoundError/ValueError naming the spec."""
    import pyface.data as D

    spec = _parse(spec)
    if isinstance(spec, dict):
        args = dict(spec)
        name = args.pop("type", None)
        if not name or not hasattr(D, name) or not isinstance(getattr(D, name), type):
            raise ValueError(f"dataset type {name!r} is not a dataset of pyface.data")
        cls = getattr(D, name)
        if isinstance(args.get("transform"), list):  # [{type: RandomFaceCrop, ...}, ...] -> transforms.Compose
            ts = []
            for t in args["transform"]:
                t = dict(t)
                tname = t.pop("type", None)
                if not tname or not hasattr(D.transforms, tname):
                    raise ValueError(f"transform type {tname!r} is not in pyface.data.transforms")
                ts.append(getattr(D.transforms, tname)(**t))
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
