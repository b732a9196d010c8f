"""Helpers shared by the tests (imported as ``from utils import ...``; python_tests is on
sys.path under pytest's rootdir-based collection)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyface

#: The folder holding the pyface under test (the source tree, or site-packages in CI).
PKG_ROOT = Path(pyface.__file__).resolve().parents[1]


def subprocess_env(**extra: str) -> dict:
    """Environment for a child Python that must import the pyface under test: PKG_ROOT
    first on PYTHONPATH, and PYTHONSAFEPATH so that neither the cwd (``-c``) nor a
    script's folder is put before it -- a source checkout without a built extension in
    the cwd (CI's clone) would otherwise shadow the installed package."""
    path = os.pathsep.join([str(PKG_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return {**os.environ, "PYTHONPATH": path, "PYTHONSAFEPATH": "1", **extra}


#: A neutral working directory for child processes (never the repository).
NEUTRAL_CWD = tempfile.gettempdir()
