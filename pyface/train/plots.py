"""PNG figures (:mod:`pyface.eval.figures`: Agg, written atomically): loss curves and a
grid of predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pyface.eval.figures import pyplot, save_png


def plot_loss_curves(history: list[dict], val_history: list[dict], path, weights: dict[str, float]) -> Path:
    """Total and weighted per-task training losses against step, plus validation metrics."""
    plt = pyplot()
    ncols = 2 if val_history else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    steps = [r["step"] for r in history]
    ax.plot(steps, [r["loss"] for r in history], label="total", color="k")
    for i, (k, w) in enumerate(weights.items()):
        if k in history[0]:
            ax.plot(steps, [w * r[k] for r in history], label=f"{w:g} x L_{k}", color=f"C{i}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss")
    ax.legend()
    if val_history:
        ax = axes[0, 1]
        vs = [r["step"] for r in val_history]
        for k, c in (("pose_mae_deg", "C2"), ("nme", "C1"), ("verification_accuracy", "C0")):
            if k in val_history[0]:
                vals = [r[k] * (100 if k in ("nme", "verification_accuracy") else 1) for r in val_history]
                label = {"pose_mae_deg": "pose MAE (deg)", "nme": "NME (%)",
                         "verification_accuracy": "verification acc (%)"}[k]
                ax.plot(vs, vals, "o-", label=label, color=c)
        ax.set_xlabel("step")
        ax.set_title("validation")
        ax.legend()
    fig.tight_layout()
    return save_png(fig, path, dpi=100)


def plot_prediction_grid(images, landmarks, poses, path, gt_landmarks=None, ncols: int = 4, axis_length=None) -> Path:
    """images uint8 [N, 3, H, W]; landmarks [N, 68, 2] pixels; poses [N, 3] (yaw, pitch, roll)
    degrees drawn as head axes (x red, y green, z blue) at the landmark centroid."""
    from pyface.geometry import euler_to_matrix

    plt = pyplot()
    images = np.asarray(images)
    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].transpose(1, 2, 0)
        ax.imshow(img)
        h = img.shape[0]
        if gt_landmarks is not None:
            ax.scatter(gt_landmarks[i][:, 0], gt_landmarks[i][:, 1], s=3, c="w", alpha=0.6)
        if landmarks is not None:
            ax.scatter(landmarks[i][:, 0], landmarks[i][:, 1], s=3, c="yellow")
        if poses is not None:
            import torch

            R = euler_to_matrix(torch.as_tensor(np.asarray(poses[i:i + 1]), dtype=torch.float64))[0].numpy()
            c = landmarks[i].mean(0) if landmarks is not None else np.array([h / 2, h / 2])
            L = axis_length or h / 3
            for j, col in enumerate(("r", "g", "b")):
                d = R[:, j] * L  # image x right, y down
                ax.plot([c[0], c[0] + d[0]], [c[1], c[1] + d[1]], color=col, lw=1.5)
            y, p_, r = poses[i]
            ax.set_title(f"y{y:.0f} p{p_:.0f} r{r:.0f}", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)
