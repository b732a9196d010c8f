"""Dataset specs -> dataset objects, shared by the trainer's YAML and the labeler's CLI.

A spec is one of:

- a dataset object (returned as is);
- a dict ``{type: Name, **kwargs}`` -> ``pyface.data.Name(**kwargs)``; a ``transform`` list
  of ``{type: T, **kwargs}`` becomes ``transforms.Compose([T(**kwargs), ...])``;
- a string (the command line's ``SPEC``): a ``.rec`` file (:class:`RecordIOFaces`), a
  ``.parquet`` manifest (:class:`ManifestDataset`), a ``.yaml``/``.yml``/``.json`` file or
  an inline ``{...}`` YAML mapping holding a dict spec, or a folder: 300W-LP when it holds
  any of the 300W-LP subset folders (AFW, HELEN, IBUG, LFPW), otherwise an image folder per
  identity (:class:`ImageFolderFaces`, the VGGFace2 layout).

:func:`image_ref` names one image of a dataset without decoding it (the manifest's
``image`` reference: an absolute path, or ``<abs path>.rec#<key>``).
"""
from __future__ import annotations

import os

__all__ = ["build_dataset", "dataset_from_spec", "image_ref", "image_refs"]


def build_dataset(spec):
    """A dataset object is returned as is; a dict ``{type: Name, **kwargs}`` calls
    ``pyface.data.Name(**kwargs)``; a ``transform`` list of ``{type: T, **kwargs}``
    becomes ``pyface.data.transforms.Compose([T(**kwargs), ...])``."""
    if spec is None or not isinstance(spec, dict):
        return spec
    import pyface.data as D

    kw = dict(spec)
    name = kw.pop("type", None)
    if not name or not hasattr(D, name):
        raise ValueError(f"dataset type {name!r} is not in pyface.data")
    if isinstance(kw.get("transform"), list):  # [{type: RandomFaceCrop, ...}, ...] -> transforms.Compose
        ts = []
        for t in kw["transform"]:
            t = dict(t)
            tname = t.pop("type", None)
            if not tname or not hasattr(D.transforms, tname):
                raise ValueError(f"transform type {tname!r} is not in pyface.data.transforms")
            ts.append(getattr(D.transforms, tname)(**t))
        kw["transform"] = D.transforms.Compose(ts)
    return getattr(D, name)(**kw)


def dataset_from_spec(spec, what: str = "dataset", **kwargs):
    """Build a dataset from a spec (see the module docstring). ``kwargs`` (e.g.
    ``on_error="skip"``) go to the reader of a string spec. Errors name ``what``."""
    from pyface.data.w300lp import SUBSETS

    if not isinstance(spec, str):
        return build_dataset(spec)
    s = spec.strip()
    if s.startswith("{"):
        import yaml

        d = yaml.safe_load(s)
        if not isinstance(d, dict):
            raise ValueError(f"{what}: inline spec {spec!r} is not a mapping")
        return build_dataset({**kwargs, **d})
    low = s.lower()
    if low.endswith((".yaml", ".yml", ".json")):
        import yaml

        if not os.path.isfile(s):
            raise FileNotFoundError(f"{what}: spec file not found: {s}")
        with open(s) as f:
            d = yaml.safe_load(f)
        if not isinstance(d, dict):
            raise ValueError(f"{what}: {s} does not hold a mapping {{type: Name, ...}}")
        return build_dataset({**kwargs, **d})
    from pyface.data import ImageFolderFaces, ManifestDataset, RecordIOFaces, W300LP

    if low.endswith(".rec"):
        if not os.path.isfile(s):
            raise FileNotFoundError(f"{what}: RecordIO file not found: {s}")
        return RecordIOFaces(s, **kwargs)
    if low.endswith(".parquet"):
        if not os.path.isfile(s):
            raise FileNotFoundError(f"{what}: manifest not found: {s}")
        return ManifestDataset(s, **kwargs)
    if not os.path.isdir(s):
        raise FileNotFoundError(f"{what}: {s} is not a folder, .rec, .parquet or .yaml spec")
    present = [x for x in SUBSETS if os.path.isdir(os.path.join(s, x))]
    if present:
        return W300LP(s, subsets=present, flip=all(os.path.isdir(os.path.join(s, x + "_Flip")) for x in present),
                      **kwargs)
    return ImageFolderFaces(s, **kwargs)


def image_ref(dataset, i: int) -> str:
    """The manifest reference of image ``i``: the absolute file path (``<abs>.rec#<key>``
    for RecordIO); ``<source>#<i>`` for in-memory datasets such as SyntheticFaces."""
    describe = getattr(dataset, "_describe", None)
    if describe is None:
        return f"{getattr(dataset, 'source', type(dataset).__name__)}#{i}"
    ref = describe(i)
    if "#" in ref and ref.split("#", 1)[0].endswith(".rec"):
        path, key = ref.rsplit("#", 1)
        return f"{os.path.abspath(path)}#{key}"
    return os.path.abspath(ref)


def image_refs(dataset) -> list[str]:
    """:func:`image_ref` of every image, in order."""
    return [image_ref(dataset, i) for i in range(len(dataset))]
