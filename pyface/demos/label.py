"""``pyface demo label``: Algorithm 1 end to end on SyntheticFaces, with hidden labels,
then Algorithm 2 on two synthetic FR datasets.

(Top layer, beside pyface.cli: it trains with pyface.train and labels with pyface.label,
which never import each other.)

1. Trains (or reuses from ``DIR/nets/``) a small FLD + HPE net (``pretrain-fld-hpe``
   recipe, a ResNet with one block per stage, width 8, at 64 x 64) on SyntheticFaces
   with open eyes only (as 300W-LP has almost no blinks), augmented with random views of the same family as the
   labeler's (scale 0.85-1.35, shift +-8 %, reflect/constant padding, mirror), and the
   ``eyeblink`` recipe's ResNet18 on SyntheticEyes.
2. Writes a held-out "FR dataset" (other identities, a third of the eyes closed) as an
   image folder of JPEGs -- labels not written -- and runs ``pyface label landmarks``'s
   job (:func:`pyface.label.landmarks.label_dataset`) on it, net-only (MediaPipe does
   not see synthetic faces as faces).
3. Compares with the hidden truth: acceptance rate; NME (bbox) and pose MAE of the
   accepted pseudo-labels; the single-view net (the identity view, no eye net, no
   fitting) on the same accepted images and on all images; eye NME (points 36-47) on
   closed eyes with and without the eye-blink net. Repeated over ``seeds`` held-out sets.
4. Algorithm 2 (:func:`demo_identities`, :func:`pyface.label.identities.run_identities`): two small FR nets
   (recipe ``stl-fr``, different training identities) find the identities shared by two
   synthetic datasets; pair precision / recall of the merges with the paper's calibrated
   thresholds (best accuracy on verification pairs) and with a fixed 0.9.
5. ``labeled.png``: a grid of labeled images (kept samples as dots, label in green;
   rejected images with a red frame).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from pyface.io import write_bytes_atomic, write_json_atomic

__all__ = ["demo_identities", "run_label_demo"]

IMAGE_SIZE = 64
TRAIN_IDS, TRAIN_PER = 300, 10
TEST_IDS, TEST_PER = 60, 5
FLD_EPOCHS = 10
FR_IDS, FR_PER, FR_EPOCHS = 200, 8, 8     # each of Algorithm 2's two FR nets
EYE_IDS, EYE_PER, EYE_EPOCHS = 300, 4, 4


class _RandomViews(torch.utils.data.Dataset):
    """Pre-rendered samples seen through a random labeler-style view each time."""

    def __init__(self, s: dict):
        self.s = s

    def __len__(self):
        return len(self.s["image"])

    def __getitem__(self, i):
        from pyface.label import views as V

        u = lambda lo, hi: lo + (hi - lo) * float(torch.rand(()))  # noqa: E731
        view = V.View(u(0.85, 1.35), u(-0.08, 0.08), u(-0.08, 0.08), "reflect" if torch.rand(()) < 0.5 else "constant",
                      bool(torch.rand(()) < 0.5))
        img = self.s["image"][i].permute(1, 2, 0).numpy()
        A = V.view_matrices(V.boxes_array([img]), (view,), IMAGE_SIZE)
        out = torch.from_numpy(V.warp_views(img, A[0], (view,), IMAGE_SIZE)[0])
        lm = V.map_landmarks(self.s["landmarks"][i][None].double(), A, (view,), IMAGE_SIZE)[0, 0].float()
        pose = V.unmap_poses(self.s["pose"][i][None, None], (view,))[0, 0]  # mirror: the same sign flip
        return {"image": out, "landmarks": lm, "pose": pose, "identity": self.s["identity"][i], "source": "synthetic"}


def _reuse(path: Path, log) -> bool:
    """A net trained by an earlier run of the demo is kept (``pyface demo label`` reuses it)."""
    if path.is_file():
        log(f"reusing {path}")
        return True
    return False


def _net_config(out_dir: Path, recipe: str, seed: int, epochs: int, model: dict, **extra) -> dict:
    """The demo nets' shared training set-up (CPU, batch 64, lr 0.1 cosine with warm-up)."""
    from pyface.train import resolve_config

    return resolve_config({
        "recipe": recipe, "out_dir": str(out_dir), "device": "cpu", "seed": seed, "model": model,
        "data": {"train": "given", "batch_size": 64, "val_batch_size": 256},
        "optim": {"lr": 0.1, "schedule": "cosine", "warmup_steps": 50, "min_lr_ratio": 0.01, "epochs": epochs},
        "checkpoint_every": 200, "val_every_epochs": 100, "tensorboard": False, "progress": True, **extra})


def _train_fld(out: Path, quick: bool, log) -> Path:
    from pyface.data import SyntheticFaces
    from pyface.demos.rendered import TensorFaces, render
    from pyface.train import Trainer

    path = out / "fld_hpe" / "model.pt"
    if _reuse(path, log):
        return path
    ids, per = (40, 4) if quick else (TRAIN_IDS, TRAIN_PER)
    train = render(SyntheticFaces(ids, per, image_size=IMAGE_SIZE, seed=0), 0)
    val = render(SyntheticFaces(20 if quick else 50, 4, image_size=IMAGE_SIZE, seed=5, identity_offset=50_000), 0)
    cfg = _net_config(out / "fld_hpe", "pretrain-fld-hpe", 0, 1 if quick else FLD_EPOCHS,
                      {"preset": "resnet18-fld-hpe", "width": 8, "layers": [1, 1, 1, 1]})
    t0 = time.time()
    m = Trainer(cfg, _RandomViews(train), TensorFaces(val)).fit(resume=True)
    log(f"trained the FLD+HPE net in {time.time() - t0:.0f} s: NME {m.get('nme', float('nan')):.4f}, "
        f"pose MAE {m.get('pose_mae_deg', float('nan')):.2f} deg (validation, centred crops)")
    return path


def _train_fr(out: Path, name: str, seed: int, quick: bool, log) -> Path:
    """A small FR net (recipe stl-fr) for Algorithm 2; the two nets see different
    identities (data seeds) and none of the demo's test identities."""
    from pyface.data import SyntheticFaces
    from pyface.demos.mtl import DEMO_M1, DEMO_M2, DEMO_SCALE
    from pyface.demos.rendered import TensorFaces, render
    from pyface.train import Trainer

    path = out / name / "model.pt"
    if _reuse(path, log):
        return path
    ids, per = (20, 4) if quick else (FR_IDS, FR_PER)
    train = render(SyntheticFaces(ids, per, image_size=IMAGE_SIZE, seed=seed), 0)
    cfg = _net_config(out / name, "stl-fr", seed, 1 if quick else FR_EPOCHS, {"preset": "iresnet10-multi-64"},
                      tasks={"fr": {"scale": DEMO_SCALE, "m1": DEMO_M1, "m2": DEMO_M2}})
    t0 = time.time()
    Trainer(cfg, TensorFaces(train, flip=True, num_identities=ids), None).fit(resume=True)
    log(f"trained FR net {name} in {time.time() - t0:.0f} s")
    return path


class _Images(torch.utils.data.Dataset):
    """Images ``k0 .. k0 + n - 1`` of every identity of a SyntheticFaces set."""

    def __init__(self, faces, k0: int, n: int):
        self.faces, self.k0, self.n = faces, k0, n

    def __len__(self):
        return self.faces.num_identities * self.n

    def __getitem__(self, i):
        ident, k = divmod(i, self.n)
        return self.faces[ident * self.faces.images_per_identity + self.k0 + k]


def demo_identities(out: str, net_a, net_b, *, identities: int = 60, shared: int = 20, images: int = 8,
                    image_size: int = 64, seed: int = 0, identity_offset: int = 10_000, pairs: int = 200,
                    device=None, progress: bool = False, threshold_a: float | None = None,
                    threshold_b: float | None = None) -> dict:
    """Algorithm 2 on two synthetic "FR datasets" that share ``shared`` known identities
    (different images of them), thresholds given or (default) calibrated on ``pairs``
    synthetic verification pairs of other identities; returns the summary with
    ``ground_truth`` precision/recall of the merges. The nets (e.g. two ``pyface demo``
    models) should not have seen these identities (``identity_offset`` is far from the
    demo's training ids)."""
    from pyface.data import SyntheticFaces
    from pyface.label.identities import IdentitiesConfig, run_identities

    if not 0 <= shared <= identities:
        raise ValueError(f"shared must be in [0, identities={identities}], got {shared}")
    o = identity_offset
    d1 = SyntheticFaces(identities, 2 * images, image_size=image_size, seed=seed, identity_offset=o)
    d2 = SyntheticFaces(identities, 2 * images, image_size=image_size, seed=seed,
                        identity_offset=o + identities - shared)
    cal = SyntheticFaces(pairs, 3, image_size=image_size, seed=seed, identity_offset=o + 2 * identities)
    imgs, same = [], []
    for p in range(pairs // 2):
        imgs += [cal[3 * p]["image"], cal[3 * p + 1]["image"], cal[3 * p + 2]["image"], cal[3 * (p + 1) + 2]["image"]]
        same += [True, False]
    return run_identities(IdentitiesConfig(
        {"synthetic_a": _Images(d1, 0, images), "synthetic_b": _Images(d2, images, images)}, net_a, net_b, out,
        threshold_a=threshold_a, threshold_b=threshold_b,
        calibration_pairs=None if threshold_a is not None else (torch.stack(imgs), np.array(same)), device=device,
        progress=progress, ground_truth={"synthetic_a": lambda i: i, "synthetic_b": lambda i: i}))


def _algorithm2(out: Path, quick: bool, log) -> dict:
    """Algorithm 2 on two synthetic datasets sharing known identities: pair precision /
    recall of the merges with the paper's calibrated thresholds and with a fixed one."""
    nets = out / "nets"
    a, b = _train_fr(nets, "fr_a", 1, quick, log), _train_fr(nets, "fr_b", 2, quick, log)
    kw = {"identities": 12, "shared": 4, "images": 3, "pairs": 40} if quick else {}
    res = {}
    for name, th in (("calibrated", {}), ("fixed_0.9", {"threshold_a": 0.9, "threshold_b": 0.9})):
        folder = out / f"identities_{name}"
        if folder.exists():
            shutil.rmtree(folder)
        s = demo_identities(str(folder), str(a), str(b), **kw, **th)
        res[name] = {"thresholds": s.get("thresholds"), **s["ground_truth"],
                     "identities_before": s.get("identities_before"), "identities_after": s.get("identities_after")}
        log(f"Algorithm 2 ({name} thresholds): precision {res[name]['precision']:.3f}, "
            f"recall {res[name]['recall']:.3f}")
    return res


def _train_eyes(out: Path, quick: bool, log) -> Path:
    from pyface.data import SyntheticEyes
    from pyface.train import Trainer, resolve_config

    path = out / "eyeblink" / "model.pt"
    if _reuse(path, log):
        return path
    ids, per = (40, 2) if quick else (EYE_IDS, EYE_PER)

    class _Mem(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.items = [ds[i] for i in range(len(ds))]

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    cfg = resolve_config({"recipe": "eyeblink", "out_dir": str(out / "eyeblink"), "device": "cpu",
                          "data": {"batch_size": 64}, "optim": {"epochs": 1 if quick else EYE_EPOCHS},
                          "tensorboard": False, "progress": True, "val_every_epochs": 100})
    t0 = time.time()
    m = Trainer(cfg, _Mem(SyntheticEyes(ids, per, image_size=IMAGE_SIZE, seed=0)),
                _Mem(SyntheticEyes(30, 2, image_size=IMAGE_SIZE, seed=1, identity_offset=90_000))).fit(resume=True)
    log(f"trained the eye-blink net in {time.time() - t0:.0f} s: accuracy {m.get('eyeblink_accuracy', 0):.3f} "
        f"(majority {m.get('eyeblink_baseline', 0):.3f})")
    return path


def _nme(pred, gt, points=None):
    from pyface.eval.metrics import landmark_bbox_size

    p, g = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    d = landmark_bbox_size(g)
    sel = slice(None) if points is None else list(points)
    return np.linalg.norm(p[:, sel] - g[:, sel], axis=-1).mean(1) / d


def _grid(path: Path, images, labels, samples, kept, accepted, n: int = 24):
    import cv2

    tiles = []
    for i in range(min(n, len(images))):
        img = cv2.resize(images[i], (192, 192), interpolation=cv2.INTER_LINEAR)
        s = 192 / images[i].shape[0]
        for k in np.flatnonzero(kept[i]):
            for x, y in samples[i, k]:
                if np.isfinite(x):
                    cv2.circle(img, (int(x * s), int(y * s)), 1, (255, 200, 0), -1)
        if accepted[i]:
            for x, y in labels[i]:
                cv2.circle(img, (int(x * s), int(y * s)), 2, (0, 255, 0), -1)
        else:
            cv2.rectangle(img, (0, 0), (191, 191), (255, 0, 0), 3)
        tiles.append(img)
    while len(tiles) % 6:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + 6], 1) for r in range(0, len(tiles), 6)]
    ok, png = cv2.imencode(".png", cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"cv2 could not encode {path}")
    write_bytes_atomic(path, png.tobytes())


def run_label_demo(out_dir, quick: bool = False, seeds: int = 2, log=print) -> dict:
    from pyface.data import ImageFolderFaces, SyntheticFaces, write_image_folder
    from pyface.eval.metrics import pose_mae
    from pyface.label import Labeler
    from pyface.label import views as V
    from pyface.label.landmarks import label_dataset

    if int(seeds) < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    nets = out / "nets"
    fld, eyes = _train_fld(nets, quick, log), _train_eyes(nets, quick, log)
    t_train = time.time() - t_start
    ids, per = (8, 3) if quick else (TEST_IDS, TEST_PER)
    runs = []
    for seed in range(int(seeds)):
        ds = SyntheticFaces(ids, per, image_size=IMAGE_SIZE, seed=100 + seed, identity_offset=1_000_000,
                            eye_closed_prob=1 / 3)
        truth = [ds[i] for i in range(len(ds))]
        folder = out / f"fr_dataset_{seed}"
        if not folder.is_dir():
            write_image_folder(str(folder), truth)  # images only: the labels stay hidden
        gt_lm = torch.stack([s["landmarks"] for s in truth]).numpy()
        gt_pose = torch.stack([s["pose"] for s in truth]).numpy()
        closed = np.array([min(ds.eye_openness(i)) < 0.5 for i in range(len(ds))])
        fr = ImageFolderFaces(str(folder))
        lab = Labeler(str(fld), eye_net=str(eyes), mediapipe=False, views=8, device="cpu")
        t0 = time.time()
        summary = label_dataset(fr, lab, out / f"labels_{seed}", resume=True, shard_size=256, batch_size=64,
                                workers=0, progress=False)
        t_label = time.time() - t0
        import pyarrow.parquet as pq

        table = pq.read_table(out / f"labels_{seed}" / "manifest.parquet")
        acc = table.column("accepted").to_numpy(zero_copy_only=False)
        lm = np.stack(table.column("landmarks").to_numpy(zero_copy_only=False)).reshape(-1, 68, 2)
        pose = np.stack(table.column("pose").to_numpy(zero_copy_only=False))
        # the single-view net: identity view, no eye net, no fitting
        one = Labeler(str(fld), mediapipe=False, views=(V.View(),), device="cpu", min_samples=1)
        images = [fr[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(len(fr))]
        single = one.label_arrays(images, keep_samples=True)
        s_lm, s_pose = single["samples"][:, 0], None
        # pose of the single view (the fit of one sample is the sample itself)
        s_pose = np.where(np.isfinite(single["pose"]), single["pose"], 0)
        no_eye = Labeler(str(fld), mediapipe=False, views=8, device="cpu").label_arrays(images)
        r = {"seed": 100 + seed, "images": int(len(acc)), "acceptance_rate": float(acc.mean()),
             "label_seconds": t_label, "images_per_s": summary["images_per_s"],
             "nme_alg1_accepted": float(_nme(lm[acc], gt_lm[acc]).mean()),
             "nme_single_view_accepted": float(_nme(s_lm[acc], gt_lm[acc]).mean()),
             "nme_single_view_all": float(_nme(s_lm, gt_lm).mean()),
             "pose_mae_alg1_accepted": pose_mae(pose[acc], gt_pose[acc])["mae"],
             "pose_mae_single_view_accepted": pose_mae(s_pose[acc], gt_pose[acc])["mae"],
             "pose_mae_single_view_all": pose_mae(s_pose, gt_pose)["mae"]}
        both = acc & closed & no_eye["accepted"]
        if both.any():
            eye_pts = range(36, 48)
            r["eye_nme_closed_with_eye_net"] = float(_nme(lm[both], gt_lm[both], eye_pts).mean())
            r["eye_nme_closed_without_eye_net"] = float(_nme(no_eye["landmarks"][both], gt_lm[both], eye_pts).mean())
            r["closed_eye_images_compared"] = int(both.sum())
        runs.append(r)
        if seed == 0:
            full = lab.label_arrays(images[:24], keep_samples=True)
            _grid(out / "labeled.png", images, full["landmarks"], full["samples"], full["kept"], full["accepted"])
    keys = [k for k in runs[0] if isinstance(runs[0][k], float)]
    report = {k: {"mean": float(np.mean([r[k] for r in runs if k in r])),
                  "min": float(np.min([r[k] for r in runs if k in r])),
                  "max": float(np.max([r[k] for r in runs if k in r]))} for k in keys}
    alg2 = _algorithm2(out, quick, log)
    better_nme = all(r["nme_alg1_accepted"] < r["nme_single_view_accepted"] for r in runs)
    better_pose = all(r["pose_mae_alg1_accepted"] < r["pose_mae_single_view_accepted"] for r in runs)
    checks = {"accepts_some": all(0.1 < r["acceptance_rate"] for r in runs),
              "alg1_nme_better_than_single_view": better_nme, "alg1_pose_better_than_single_view": better_pose}
    if all("eye_nme_closed_with_eye_net" in r for r in runs):
        checks["eye_net_helps_closed_eyes"] = all(r["eye_nme_closed_with_eye_net"] < r["eye_nme_closed_without_eye_net"]
                                                  for r in runs)
    metrics = {"report": report, "runs": runs, "checks": checks, "algorithm2": alg2,
               "seconds": {"train": t_train, "total": time.time() - t_start}, "quick": quick,
               "device": "cpu", "threads": torch.get_num_threads()}
    write_json_atomic(out / "metrics.json", metrics, indent=1, sort_keys=False)
    return metrics

