"""``pyface demo hmtl``: SL (HopeNet) vs HMTL 2x2 puzzling on SyntheticFaces in
the small-data regime of Pourmirzaei et al. Sec. 5.2 (few "subjects" = identities),
both from the same initial weights, then the pose MAE of each on held-out identities and
their loss / validation curves. Sized for a 2-core CPU in under 10 minutes.

Demo recipe (scaled down from the paper's ResNet50 / 224 px / 110 epochs): preset
``resnet50-tiny-hopenet-64`` at width 16 (ResNet50 bottleneck layout, one block per stage,
64 x 64 input), HopeNet head (66 bins of 3 degrees, alpha 2, dropout 0.5); HMTL adds the
2x2 puzzle branch at flag point 3 (dropout 0.2, loss x 50). AdaBelief lr 1e-3 with cosine
decay (the paper's step schedule assumes 110 epochs), batch 32, augmentation level 2,
DEMO_EPOCHS epochs over TRAIN_IDS identities x TRAIN_IMAGES images. Whether HMTL beats
SL here is a measurement on synthetic faces, not a promise.

Reference run (seed 0, 40 epochs, 800 steps each): held-out pose MAE SL 9.59 deg, HMTL
11.37 deg (mean-pose baseline 20.29): on these synthetic faces the puzzle head did not help.
Cost: 0.10 CPU-seconds per training step for either model (one thread), i.e. about 3 min of
CPU for the whole demo; 17.5 min wall on a 2-core machine shared with ~15 other processes.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from pyface.demos.rendered import TensorFaces, render
from pyface.io import write_json_atomic
from pyface.train.config import resolve
from pyface.train.trainer import Trainer, refuse_existing_run

__all__ = ["DEMO_EPOCHS", "demo_config", "run_hmtl_demo"]

IMAGE_SIZE = 64
TRAIN_IDS, TRAIN_IMAGES = 4, 160          # "subjects" x images each (Sec. 5.2: 1-4 subjects)
TEST_IDS, TEST_IMAGES = 40, 6             # held-out identities
DEMO_EPOCHS = 40
WIDTH = 16


class Augmented(Dataset):
    """In-memory samples through a sample transform (seeded per item by the trainer)."""

    def __init__(self, base, transform):
        self.base, self.transform = base, transform

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        return self.transform(self.base[i])


def demo_config(out_dir, hmtl: bool, *, epochs: int, quick: bool) -> dict:
    tasks = {"hopenet": {"bin_width": 3, "alpha": 2}}
    tasks["ssl_puzzle"] = {"k": 2, "flag": 3, "weight": 50} if hmtl else False
    return {
        "recipe": "hmtl", "out_dir": str(out_dir), "seed": 0, "device": "cpu", "amp": "none",
        "model": {"preset": "resnet50-tiny-hopenet-64", "width": WIDTH, "input_size": IMAGE_SIZE},
        "tasks": tasks,
        "data": {"train": "<SyntheticFaces rendered in memory>", "batch_size": 32, "num_workers": 0,
                 "val_batch_size": 256},
        "optim": {"schedule": "cosine", "milestones": None, "min_lr_ratio": 0.01, "epochs": epochs,
                  "max_steps": 4 if quick else None},
        "checkpoint_every": 200, "log_every": 5, "val_every_epochs": 1 if quick else 4,
        "tensorboard": False, "progress": True,
    }


def _plot(runs: dict, path: Path) -> None:
    from pyface.eval.figures import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, (name, tr) in enumerate(runs.items()):
        h, v = tr.history, tr.val_history
        axes[0].plot([r["epoch"] for r in h], [r["hopenet"] for r in h], color=f"C{i}", label=f"{name}: L_HopeNet")
        if "ssl_puzzle" in h[0]:
            axes[0].plot([r["epoch"] for r in h], [r["ssl_puzzle"] for r in h], color=f"C{i}", ls="--",
                         label=f"{name}: L_puzzle (x1)")
        axes[1].plot([r["epoch"] for r in v], [r["pose_mae_deg"] for r in v], "o-", color=f"C{i}", label=name)
    axes[0].set(xlabel="epoch", title="training losses (unweighted)", yscale="log")
    axes[1].set(xlabel="epoch", ylabel="degrees", title="held-out pose MAE (yaw, pitch, roll)")
    for a in axes:
        a.legend()
    fig.tight_layout()
    save_png(fig, path)


def run_hmtl_demo(out_dir, *, epochs: int = DEMO_EPOCHS, quick: bool = False, workers: int | None = None) -> dict:
    from pyface.data import SyntheticFaces
    from pyface.data.transforms import hmtl_augmentation

    t0 = time.perf_counter()
    out = Path(out_dir)
    for run in ("sl", "hmtl"):
        refuse_existing_run(out / run)  # before the rendering; the trainer would refuse too
    out.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    ids, per = (2, 16) if quick else (TRAIN_IDS, TRAIN_IMAGES)
    test_ids, test_per = (4, 4) if quick else (TEST_IDS, TEST_IMAGES)
    train = render(SyntheticFaces(ids, per, image_size=IMAGE_SIZE, seed=0), workers)
    test = render(SyntheticFaces(test_ids, test_per, image_size=IMAGE_SIZE, seed=0, identity_offset=ids), workers)
    t_data = time.perf_counter() - t0
    print(f"rendered {len(train['image'])} training ({ids} identities) and {len(test['image'])} held-out samples "
          f"in {t_data:.1f} s")

    runs, init, metrics = {}, {}, {"seconds": {"data": t_data}}
    for name, hmtl in (("SL", False), ("HMTL", True)):
        cfg = resolve(demo_config(out / name.lower(), hmtl, epochs=epochs, quick=quick))
        tr = Trainer(cfg, Augmented(TensorFaces(train), hmtl_augmentation(2)), TensorFaces(test))
        runs[name] = tr
        init[name] = {k: v.clone() for k, v in tr.model.state_dict().items()}
        counts = tr.model.parameter_counts()
        print(f"{name}: " + ", ".join(f"{k} {v / 1e6:.3f}M" for k, v in counts.items()))
        t1 = time.perf_counter()
        m = tr.fit()
        metrics[name] = {k: m[k] for k in ("pose_mae_deg", "yaw_mae_deg", "pitch_mae_deg", "roll_mae_deg",
                                           "pose_mae_baseline_deg")}
        metrics[name]["parameters"] = counts
        metrics[name]["val_curve"] = [(r["epoch"], r["pose_mae_deg"]) for r in tr.val_history]
        metrics["seconds"][name] = time.perf_counter() - t1
    # the trunk and the HopeNet head start from identical weights in both runs (same seed;
    # every head is built from a generator of its own, pyface.models.MultiTaskNet)
    metrics["same_initial_weights"] = all(torch.equal(v, init["HMTL"][k]) for k, v in init["SL"].items())
    sl, hm = metrics["SL"]["pose_mae_deg"], metrics["HMTL"]["pose_mae_deg"]
    metrics["hmtl_minus_sl_deg"] = hm - sl
    metrics["train_set"] = f"{ids} identities x {per} images, {IMAGE_SIZE}x{IMAGE_SIZE}, augmentation level 2"
    metrics["test_set"] = f"{test_ids} held-out identities x {test_per} images"
    metrics["epochs"] = runs["SL"].step / runs["SL"].steps_per_epoch
    _plot(runs, out / "hmtl_vs_sl.png")
    metrics["seconds"]["total"] = time.perf_counter() - t0
    write_json_atomic(out / "metrics.json", metrics, indent=2, sort_keys=False)
    return metrics
