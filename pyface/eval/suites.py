"""The papers' benchmarks end to end: find the test sets, check them, run the model,
apply the protocols. Every reader is constructed (and its meta data checked) before
any inference, so a bad path or file fails in seconds, not after hours. Under torchrun
(``split`` in the keywords, see :func:`pyface.eval.runner.infer`) every rank infers its
shards and the protocols run once, on rank 0; the suites return None on the other ranks.

Data layout under ``--data-root`` (each part optional, each overridable by a flag):
``*.bin`` (insightface verification sets: lfw, cfp_fp, agedb_30, ...), ``IJBC/``
(``meta/`` + ``loose_crop/``), ``AFLW2000/`` (``.jpg`` + ``.mat``), ``BIWI*.npz``.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import numpy as np

from pyface.data import AFLW2000, BIWI, IJBC, VerificationBin
from pyface.eval.ijbc import pose_protocol
from pyface.eval.metrics import nme_by_yaw, pose_mae
from pyface.eval.runner import cache_key, infer, model_outputs, require_outputs
from pyface.eval.verification import DEFAULT_FARS, verification_accuracy
from pyface.io import DigestMemo

__all__ = ["TestSets", "find_test_sets", "eval_verification", "eval_ijbc", "eval_aflw2000", "eval_biwi"]


@dataclass
class TestSets:
    bins: list[str] = field(default_factory=list)
    ijbc: str | None = None
    aflw2000: str | None = None
    biwi: str | None = None

    def open(self, need: set[str]) -> dict:
        """Readers for the requested parts ("verification", "ijbc", "aflw2000", "biwi");
        raises naming the path of anything missing or malformed."""
        out = {}
        if "verification" in need:
            if not self.bins:
                raise FileNotFoundError("no verification .bin files given (--bin FILE or *.bin under --data-root)")
            out["verification"] = [VerificationBin(b) for b in self.bins]
        if "ijbc" in need:
            if not self.ijbc:
                raise FileNotFoundError("no IJB-C folder given (--ijbc DIR or IJBC/ under --data-root)")
            out["ijbc"] = IJBC(self.ijbc)
        if "aflw2000" in need:
            if not self.aflw2000:
                raise FileNotFoundError("no AFLW2000-3D folder given (--aflw2000 DIR or AFLW2000/ under --data-root)")
            out["aflw2000"] = AFLW2000(self.aflw2000, crop="loose")
        if "biwi" in need:
            if not self.biwi:
                raise FileNotFoundError("no BIWI .npz given (--biwi FILE or BIWI*.npz under --data-root)")
            out["biwi"] = BIWI(self.biwi)
        return out


def find_test_sets(data_root: str | None = None, bins=None, ijbc=None, aflw2000=None, biwi=None) -> TestSets:
    """Explicit paths win; otherwise look under ``data_root`` (module docstring)."""
    ts = TestSets(list(bins or []), ijbc, aflw2000, biwi)
    if data_root:
        if not os.path.isdir(data_root):
            raise FileNotFoundError(f"--data-root not found: {data_root}")
        if not ts.bins:
            ts.bins = sorted(glob.glob(os.path.join(data_root, "*.bin")))
        for attr, names in (("ijbc", ("IJBC", "ijbc", "IJB-C")), ("aflw2000", ("AFLW2000", "AFLW2000-3D", "aflw2000"))):
            if getattr(ts, attr) is None:
                for n in names:
                    if os.path.isdir(os.path.join(data_root, n)):
                        setattr(ts, attr, os.path.join(data_root, n))
                        break
        if ts.biwi is None:
            found = sorted(glob.glob(os.path.join(data_root, "BIWI*.npz"))
                           + glob.glob(os.path.join(data_root, "BIWI", "*.npz")))
            ts.biwi = found[0] if found else None
    return ts


def _cached(kw: dict, model, name: str, n: int, flip: bool, files) -> dict:
    """kw with cache_dir set to a per-(weights, test-set content) folder under
    kw["cache_dir"] (:func:`pyface.eval.runner.cache_key`); the file digests are
    remembered in ``<cache_dir>/digests.json``."""
    kw = dict(kw)
    if kw.get("cache_dir"):
        memo = DigestMemo(os.path.join(kw["cache_dir"], "digests.json"))
        key = cache_key(model, name, n, flip, files, amp=kw.get("amp", True), memo=memo)
        memo.save()
        kw["cache_dir"] = os.path.join(kw["cache_dir"], key)
    return kw


def eval_verification(model, sets: list[VerificationBin], **kw) -> dict:
    """insightface .bin protocol per set: flip-sum embeddings, 10-fold accuracy."""
    require_outputs(model, ["embedding"], "face verification")
    out = {}
    for ds in sets:
        o = infer(model, ds, flip=True, desc=f"verification {ds.name}",
                  **_cached(kw, model, ds.name, len(ds), True, [ds.path]))
        if o is None:  # a rank other than 0: the protocol runs once, on rank 0
            continue
        emb = o["embedding"]
        r = verification_accuracy(emb[0::2], emb[1::2], ds.issame)
        out[ds.name] = {**r, "pairs": int(len(ds.issame))}
    return out


def eval_ijbc(model, meta: IJBC, faceness: bool = True, fars=DEFAULT_FARS, **kw) -> dict:
    """IJB-C 1:1 (insightface test mode N1 D1 F2: unnormalised flip-sum features,
    weighted by the faceness score when ``faceness``) and the pose protocol when the
    model has a pose head (its yaw on the aligned crop decides each image's case)."""
    require_outputs(model, ["embedding"], "IJB-C verification")
    o = infer(model, meta.faces(model.config.input_size), flip=True, desc="IJB-C",
              **_cached(kw, model, meta.target.lower(), len(meta), True,
                        [meta.tid_mid_path, meta.pair_path, meta.pts_path]
                        + [os.path.join(meta.image_dir, str(n)) for n in meta.names]))
    if o is None:
        return None
    feats = o["embedding"] * (meta.faceness[:, None] if faceness else 1.0)
    has_pose = "pose" in o
    yaw = o["pose"][:, 0] if has_pose else np.zeros(len(feats))
    res = pose_protocol(feats, meta.templates, meta.medias, yaw, meta.t1, meta.t2, meta.labels, fars=fars)
    if not has_pose:
        res = {"all": res["all"]}
    return {"cases": res, "images": int(len(feats)), "faceness": bool(faceness), "pose_cases": has_pose}


def eval_aflw2000(model, ds: AFLW2000, limit_deg: float = 99.0, **kw) -> dict:
    """Pose MAE (Tables 5, 004-2: with and without the +-99 filter) and NME per yaw bin
    (Table 7) from one inference pass, for whichever heads the model has."""
    have = model_outputs(model)
    if not have & {"pose", "landmarks"}:
        require_outputs(model, ["pose"], "AFLW2000-3D")
    files = [os.path.join(ds.root, n + ext) for n in ds.names for ext in (".jpg", ".mat")]
    o = infer(model, ds, desc="AFLW2000-3D", **_cached(kw, model, "aflw2000", len(ds), False, files))
    if o is None:
        return None
    out = {"images": int(len(ds))}
    if "pose" in o:
        out["pose"] = pose_mae(o["pose"], o["pose_gt"], limit_deg=limit_deg)
        out["pose_full"] = pose_mae(o["pose"], o["pose_gt"], limit_deg=None)
        out["pose_errors"] = np.abs(o["pose"] - o["pose_gt"]).tolist()
    if "landmarks" in o:
        out["nme"] = nme_by_yaw(o["landmarks"], o["landmarks_gt"], o["pose_gt"][:, 0])
    return out


def eval_biwi(model, ds: BIWI, limit_deg: float = 99.0, **kw) -> dict:
    require_outputs(model, ["pose"], "BIWI head pose")
    o = infer(model, ds, desc="BIWI", **_cached(kw, model, "biwi", len(ds), False, [ds.path]))
    if o is None:
        return None
    return {"images": int(len(ds)), "pose": pose_mae(o["pose"], o["pose_gt"], limit_deg=limit_deg),
            "pose_errors": np.abs(o["pose"] - o["pose_gt"]).tolist()}
