"""pyface.label: the pseudo-labeling pipeline (Lee et al. 2024, Sec. 3.1).

- :class:`Labeler` (Algorithm 1): landmark + pose pseudo-labels from N views per image,
  the landmark net, the eye-blink net and MediaPipe, fitted selectively;
  ``pyface label landmarks`` runs it over a dataset (:mod:`pyface.label.landmarks`).
- :mod:`pyface.label.identities` (Algorithm 2): one identity space across FR datasets,
  ``pyface label identities`` (:class:`IdentitiesConfig`, :func:`run_identities`).
- :mod:`pyface.label.shards`: the resumable Parquet shard folders both labeling jobs write.

Attributes load lazily (importing this package imports neither torch nor the jobs), so
the command line's parser can import :mod:`pyface.label.validity` for its defaults and
``pyface --help`` stays light (python_tests/test_cli.py checks that torch is not imported).
"""
_LAZY = {"Labeler": "labeler", "LabelResult": "labeler", "Validity": "validity", "SAMPLE_CAUSES": "validity",
         "IMAGE_CAUSES": "validity", "IdentitiesConfig": "identities", "run_identities": "identities"}
__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
