"""``pyface demo eval``: synthetic copies of every evaluation format, written from
SyntheticFaces identities the demo model never saw, then the full ``pyface eval all``
path through the same readers (``.bin``, IJB-C meta + loose crops, AFLW2000-3D
``.jpg``/``.mat``, BIWI ``.npz``) and ``report.md``.

The IJB-C-style loose crops place each face at a random scale/offset in a larger
canvas and store five points such that aligning them to the (input-size-scaled) ArcFace
template restores the face as the model saw it in training — so the alignment is
exercised for real. Numbers are for a toy model on toy data, not the papers'.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from pyface.data import SyntheticFaces, write_aflw2000, write_bin, write_biwi_npz, write_ijbc
from pyface.data.align import ARCFACE_TEMPLATE
from pyface.io import FolderLock

__all__ = ["write_demo_data", "run_demo"]

ID_OFFSET = 1_000_000  # disjoint from every training identity of the demo


def write_demo_data(root: str | Path, image_size: int = 64, seed: int = 0, scale: float = 1.0) -> dict:
    """Write lfw.bin, IJBC/, AFLW2000/ and BIWI_test.npz under root; ``scale``
    multiplies the sizes (1: ~1,100 images, a minute of CPU inference for the demo net)."""
    def n(k: int, lo: int) -> int:
        return max(lo, int(round(k * scale)))

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # .bin: 10 folds x (15 genuine + 15 impostor) pairs, interleaved like LFW's folds
    n_pairs = 20 * n(15, 1)
    ids = SyntheticFaces(n(60, 4), 6, image_size=image_size, seed=seed + 1, identity_offset=ID_OFFSET)
    per = ids.images_per_identity
    imgs, same = [], []
    for k in range(n_pairs):
        a = int(rng.integers(ids.num_identities))
        if k % 2 == 0:
            i, j = rng.choice(per, 2, replace=False)
            b = a
        else:
            b = int((a + rng.integers(1, ids.num_identities)) % ids.num_identities)
            i, j = rng.integers(per, size=2)
        for ident, img in ((a, i), (b, j)):
            imgs.append(ids[ident * per + int(img)]["image"].permute(1, 2, 0).numpy())
        same.append(k % 2 == 0)
    write_bin(str(root / "lfw.bin"), imgs, same)
    # IJB-C: each identity has a gallery template (2 medias) and a probe template (3 medias)
    n_id, per = n(40, 4), 8
    ij = SyntheticFaces(n_id, per, image_size=image_size, seed=seed + 2, identity_offset=ID_OFFSET + 10_000,
                        max_yaw=80.0)
    canvas = int(image_size * 1.6)
    tmpl = ARCFACE_TEMPLATE * image_size / 112.0
    images, pts, templates, medias = [], [], [], []
    for k in range(len(ij)):
        s = ij[k]
        ident, j = divmod(k, per)
        sc = rng.uniform(0.8, 1.2)
        ox, oy = rng.uniform(0, canvas - image_size * sc, 2)
        m = np.array([[sc, 0, ox], [0, sc, oy]])
        images.append(cv2.warpAffine(s["image"].permute(1, 2, 0).numpy(), m, (canvas, canvas)))
        pts.append(tmpl @ m[:, :2].T + m[:, 2])
        gallery = j < 3
        templates.append(2 * ident + (0 if gallery else 1))
        medias.append(100 * templates[-1] + (j // 2 if gallery else (j - 3) // 2))
    gal, probe = np.arange(0, 2 * n_id, 2), np.arange(1, 2 * n_id, 2)
    pairs = [(int(g), int(p), int(g // 2 == p // 2)) for g in gal for p in probe]
    write_ijbc(str(root / "IJBC"), images, pts, templates, medias, pairs, faceness=rng.uniform(0.7, 1.0, len(images)))
    # AFLW2000-3D style: faces in a larger image, labels in .mat
    af = SyntheticFaces(n(100, 6), 1, image_size=2 * image_size, seed=seed + 3, identity_offset=ID_OFFSET + 20_000,
                        max_yaw=85.0, face_scale=(0.3, 0.4))
    write_aflw2000(str(root / "AFLW2000"), (af[i] for i in range(len(af))))
    bw = SyntheticFaces(n(100, 4), 1, image_size=image_size, seed=seed + 4, identity_offset=ID_OFFSET + 30_000)
    write_biwi_npz(str(root / "BIWI_test.npz"), (bw[i] for i in range(len(bw))))
    return {"bins": [str(root / "lfw.bin")], "ijbc": str(root / "IJBC"), "aflw2000": str(root / "AFLW2000"),
            "biwi": str(root / "BIWI_test.npz")}


def run_demo(checkpoint, out_dir, device=None, progress: bool = True, fps_repeats: int = 5, scale: float = 1.0) -> dict:
    from pyface.eval import runner
    from pyface.eval.job import evaluate, open_suites, select_suites, summary
    from pyface.eval.report import write_report
    from pyface.eval.suites import find_test_sets

    t0 = time.time()
    dev = runner.device_for(device)
    model = runner.load_model(checkpoint, dev)
    out = Path(out_dir)
    with FolderLock(out, "evaluation demo"):
        write_demo_data(out / "data", image_size=model.config.input_size, scale=scale)
        ts = find_test_sets(str(out / "data"))
        data = open_suites(ts, select_suites("all", model, ts))  # every format was written: what the heads can use
        res = evaluate(model, data, "all", device=dev, fps_repeats=fps_repeats, progress=progress)
        write_report(res, out)
    print(summary(res))
    res["seconds"] = time.time() - t0
    return res
