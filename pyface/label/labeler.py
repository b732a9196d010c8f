"""Algorithm 1 of Lee et al. 2024 (Sec. 3.1.2): sampling and selective fitting of
landmark and pose pseudo-labels, batched over images x views.

Per batch of images:

1. every image is warped into N views (:mod:`pyface.label.views`, the augmentation set A);
2. the landmark + pose net runs on all B x N views at once (CUDA with AMP when
   available); the eye-blink net sees the two eye crops of every view and
   :func:`~pyface.label.eyes.adjust_upper_eyes` closes the upper lids by P(closed);
3. MediaPipe's face mesh (optional) runs on every view, 468 -> 68 by the index map;
   its samples carry the net pose of the same view (NaN pose without a net);
4. each sample is checked (:class:`Validity`) in the pixels of its view, mapped back to
   the original image, and all images are fitted in one call of
   :func:`pyface.ops.selective_fit` (drop the farthest sample until <= 3 remain, accept
   when all are within ``threshold`` x face size of their mean). The pose label is the
   mean pose of the kept samples. Face size: sqrt(w * h) of the bounding box of the mean
   valid sample (the NME normaliser of :func:`pyface.eval.metrics.nme`).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pyface import runtime
from pyface.label import views as V
from pyface.label.eyes import adjust_upper_eyes
from pyface.label.validity import IMAGE_CAUSES, SAMPLE_CAUSES, Validity
from pyface.ops.selective_fit import (
    SELECTIVE_FIT_KEEP,
    SELECTIVE_FIT_MIN_SAMPLES,
    SELECTIVE_FIT_THRESHOLD,
    selective_fit,
)

__all__ = ["Labeler", "LabelResult", "Validity", "SAMPLE_CAUSES", "IMAGE_CAUSES"]

@dataclass
class LabelResult:
    """One image's pseudo-label. ``landmarks`` [68, 2] original-image pixels and ``pose``
    [3] (yaw, pitch, roll) degrees, NaN when not ``accepted`` (pose NaN also when no
    net ran); ``n_valid`` samples passed the validity checks, ``n_kept`` remained after
    selective fitting; ``spread``: the largest kept sample's distance to the label,
    in face sizes; ``cause``: why it was rejected (one of IMAGE_CAUSES) or None."""

    landmarks: np.ndarray
    pose: np.ndarray
    accepted: bool
    n_kept: int
    n_valid: int = 0
    spread: float = float("nan")
    cause: str | None = None


@dataclass
class _Batch:
    """A batch between :meth:`Labeler.start` and :meth:`Labeler.finish`."""

    images: list
    a_net: np.ndarray | None
    a_mp: np.ndarray | None
    s_net: int
    futures: list | None = None
    results: list | None = None


class Labeler:
    """Algorithm 1 (see the module docstring).

    ``net``: a ``pyface train`` checkpoint path (or MultiTaskNet) with the fld and hpe
    heads; ``eye_net``: an eyeblink checkpoint (or module), optional; ``mediapipe``:
    also sample MediaPipe's face mesh (needs ``pip install "pyface-mtl[label]"``; when it is
    missing the labeler runs net-only and warns once); ``views``: N views per image (or a
    sequence of :class:`~pyface.label.views.View`); ``threshold``: t_d in face sizes;
    ``device``: None = CUDA when available (:func:`pyface.runtime.resolve_device`).
    Keyword-only: ``validity`` (:class:`Validity`), ``batch_size`` (views per net
    forward), ``amp`` (:func:`pyface.runtime.autocast`: True = fp16 on CUDA and fp32 on
    the CPU, "bf16", False = fp32), ``min_samples`` (fewest samples that may give a
    label: 1, the paper's, or 2 for the stricter rule), ``mediapipe_size`` (side of the
    views MediaPipe sees), ``index_map`` (468 -> 68, see :mod:`pyface.label.mediapipe`),
    ``cpu_workers`` (K processes for the warps, MediaPipe and its validity checks,
    :mod:`pyface.label.cpu_pool`; 0 = in this process; the labels are the same for every
    K). A labeler with workers holds them until :meth:`close` (or the end of a ``with`` block).

    Batches can be pipelined: :meth:`start` hands a batch's CPU work to the workers and
    returns at once, :meth:`finish` runs the nets and the fit; :meth:`label_arrays` is
    the two in a row.
    """

    def __init__(self, net=None, eye_net=None, mediapipe=True, views=8, threshold: float = SELECTIVE_FIT_THRESHOLD,
                 device=None, *, validity: Validity | None = None, batch_size: int = 256, amp=True,
                 min_samples: int = SELECTIVE_FIT_MIN_SAMPLES, mediapipe_size: int = 256, index_map=None,
                 cpu_workers: int = 0):
        from pyface.label.nets import EyeBlinkNet, LandmarkPoseNet

        self.device = runtime.resolve_device(device, what="device")
        if not (isinstance(threshold, (int, float)) and np.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive number (face sizes), got {threshold!r}")
        self.threshold = float(threshold)
        self.views = tuple(views) if not isinstance(views, (int, np.integer)) else V.make_views(int(views))
        if not self.views or not all(isinstance(v, V.View) for v in self.views):
            raise ValueError("views must be a positive int or a non-empty sequence of View")
        self.validity = validity or Validity()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        runtime.amp_dtype(amp, self.device)  # a bad value fails here, not in the first batch
        self.batch_size, self.amp, self.min_samples = int(batch_size), amp, int(min_samples)
        if not 1 <= self.min_samples <= SELECTIVE_FIT_KEEP:
            raise ValueError(f"min_samples must be in [1, {SELECTIVE_FIT_KEEP}], got {min_samples}")
        self.net = LandmarkPoseNet(net).to(self.device) if net is not None else None
        self.eye_net = EyeBlinkNet(eye_net).to(self.device) if eye_net is not None else None
        if self.eye_net is not None and self.net is None:
            raise ValueError("eye_net needs a landmark net (AdjustUpperEyes moves the net's eye points)")
        self.mediapipe = None
        if mediapipe:
            from pyface.label import mediapipe as M

            if M.available():
                self.mediapipe = M.FaceMesh68(index_map)
            elif mediapipe == "require" or self.net is None:
                raise ImportError(f"MediaPipe is not usable ({M.why_unavailable()}); "
                                  'install it with pip install "pyface-mtl[label]"')
            else:
                M.warn_once()
        if self.net is None and self.mediapipe is None:
            raise ValueError("Labeler needs a net, MediaPipe, or both")
        self.mediapipe_size = int(mediapipe_size)
        if int(cpu_workers) < 0:
            raise ValueError(f"cpu_workers must be >= 0, got {cpu_workers}")
        self.cpu_workers = int(cpu_workers)
        self._pool = None
        #: Seconds per stage, summed over this process and its workers ("cpu_wait": this
        #: process waiting for the workers' results).
        self.timings = {"warp": 0.0, "net": 0.0, "eyes": 0.0, "mediapipe": 0.0, "fit": 0.0, "cpu_wait": 0.0}

    def close(self, wait: bool = True) -> None:
        """End the CPU worker processes (if any); the labeler starts new ones when used again."""
        pool, self._pool = getattr(self, "_pool", None), None
        if pool is not None:
            pool.close(wait)

    def __enter__(self) -> "Labeler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close(wait=False)  # (at interpreter exit: do not block on the workers)

    def _cpu_pool(self):
        if self._pool is None:
            from pyface.label.cpu_pool import CpuPool

            mesh = None if self.mediapipe is None else (self.mediapipe.index_map,
                                                        self.mediapipe.min_detection_confidence)
            self._pool = CpuPool(self.cpu_workers, mesh)
        return self._pool

    # ------------------------------------------------------------------ config
    def config(self) -> dict:
        """What determines the labels (hashed by the CLI's --resume check)."""
        return {"views": [asdict(v) for v in self.views], "threshold": self.threshold,
                "validity": asdict(self.validity), "min_samples": self.min_samples,
                "net": None if self.net is None else self.net.model.config.to_dict(),
                "eye_net": None if self.eye_net is None else self.eye_net.model.config.to_dict()
                if hasattr(self.eye_net.model, "config") else type(self.eye_net.model).__name__,
                "mediapipe": None if self.mediapipe is None else self.mediapipe.config(),
                "mediapipe_size": self.mediapipe_size}

    # ------------------------------------------------------------------ stages
    def _autocast(self):
        return runtime.autocast(self.device, self.amp)

    def _render(self, images, A, size) -> torch.Tensor:
        t0 = time.perf_counter()
        B, nv = len(images), len(self.views)
        buf = np.empty((B, nv, 3, size, size), dtype=np.uint8)
        for i, img in enumerate(images):
            V.warp_views(img, A[i], self.views, size, out=buf[i])
        self.timings["warp"] += time.perf_counter() - t0
        return torch.from_numpy(buf).view(B * nv, 3, size, size)

    def _run_net(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from pyface.data.eyes import eye_crops

        lms, poses = [], []
        for s in range(0, len(x), self.batch_size):
            t0 = time.perf_counter()
            chunk = x[s:s + self.batch_size].to(self.device, non_blocking=True)
            with torch.no_grad(), self._autocast():
                lm, ps = self.net(chunk)
            lm, ps = lm.float(), ps.float()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t1 = time.perf_counter()
            self.timings["net"] += t1 - t0
            if self.eye_net is not None:
                crops = eye_crops(chunk, lm, self.eye_net.input_size)  # [n, 2, 3, s, s]
                with torch.no_grad(), self._autocast():
                    sigma = self.eye_net(crops.flatten(0, 1)).float().view(-1, 2)
                lm = adjust_upper_eyes(lm, sigma)
                self.timings["eyes"] += time.perf_counter() - t1
            lms.append(lm.cpu())
            poses.append(ps.cpu())
        return torch.cat(lms), torch.cat(poses)

    # ------------------------------------------------------------------ API
    def start(self, images, boxes=None) -> "_Batch":
        """Check a batch and start its CPU work (views, MediaPipe) on the workers; the
        batch is labeled by :meth:`finish`. Without workers the work waits for finish."""
        images = list(images)
        for i, img in enumerate(images):
            if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                raise ValueError(f"images[{i}] must be an HxWx3 uint8 RGB array, got "
                                 f"{getattr(img, 'shape', type(img))} {getattr(img, 'dtype', '')}")
        box = V.boxes_array(images, boxes)
        s_net = self.net.input_size if self.net is not None else 0
        a_net = V.view_matrices(box, self.views, s_net) if self.net is not None else None
        a_mp = V.view_matrices(box, self.views, self.mediapipe_size) if self.mediapipe is not None else None
        batch = _Batch(images, a_net, a_mp, s_net)
        if self.cpu_workers:
            pool = self._cpu_pool()
            batch.futures = [pool.submit(img, None if a_net is None else a_net[i], s_net,
                                         None if a_mp is None else a_mp[i], self.mediapipe_size, self.views,
                                         self.validity) for i, img in enumerate(images)]
        return batch

    def _cpu_results(self, batch: "_Batch") -> list[dict]:
        """The per-image CPU work of ``batch``: from the workers, or done here now."""
        if batch.results is None:
            t0 = time.perf_counter()
            if batch.futures is not None:
                batch.results = [f.result() for f in batch.futures]
                self.timings["cpu_wait"] += time.perf_counter() - t0
            else:
                from pyface.label.cpu_pool import view_work

                batch.results = [view_work(img, None if batch.a_net is None else batch.a_net[i], batch.s_net,
                                           None if batch.a_mp is None else batch.a_mp[i], self.mediapipe_size,
                                           self.views, self.validity, self.mediapipe)
                                 for i, img in enumerate(batch.images)]
            for r in batch.results:
                self.timings["warp"] += r["warp"]
                self.timings["mediapipe"] += r["mediapipe"]
        return batch.results

    def label_arrays(self, images, boxes=None, keep_samples: bool = False) -> dict:
        """Label a batch; arrays instead of LabelResult objects (what the CLI writes).

        Returns {"landmarks" [B, 68, 2], "pose" [B, 3] float32 (NaN unless accepted),
        "accepted" [B] bool, "n_valid", "n_kept" [B] int32, "spread" [B] float32,
        "cause" [B] str ('' when accepted), "sample_causes" {cause: count}} and, with
        ``keep_samples``, "samples" [B, S, 68, 2] / "kept" [B, S] (original pixels)."""
        return self.finish(self.start(images, boxes), keep_samples)

    def finish(self, batch: "_Batch", keep_samples: bool = False) -> dict:
        """Label a batch begun with :meth:`start` (returns what :meth:`label_arrays` does)."""
        B, nv = len(batch.images), len(self.views)
        samples, poses, causes = [], [], []
        net_pose = torch.full((B, nv, 3), float("nan"))
        if self.net is not None:
            S = batch.s_net
            A = batch.a_net
            x = torch.from_numpy(np.stack([r["net_views"] for r in self._cpu_results(batch)]))
            lm, ps = self._run_net(x.view(B * nv, 3, S, S))
            lm, ps = lm.view(B, nv, 68, 2), ps.view(B, nv, 3)
            causes.append(self.validity.check(lm, ps, S))
            net_pose = V.unmap_poses(ps, self.views)
            samples.append(V.unmap_landmarks(lm, A, self.views, S))
            poses.append(net_pose)
        if self.mediapipe is not None:
            res = self._cpu_results(batch)
            lm = torch.from_numpy(np.stack([r["mp_landmarks"] for r in res]))
            causes.append(torch.from_numpy(np.stack([r["mp_cause"] for r in res])))
            samples.append(V.unmap_landmarks(lm, batch.a_mp, self.views, self.mediapipe_size))
            poses.append(net_pose)
        t0 = time.perf_counter()
        samples = torch.cat(samples, 1).float()
        poses = torch.cat(poses, 1).float()
        cause = torch.cat(causes, 1)
        valid = cause == 0
        if self.net is None:  # MediaPipe-only: no pose; selective_fit needs finite ones
            poses = torch.zeros_like(poses)
        n_valid = valid.sum(1)
        w = valid[..., None, None].float()
        mean = (torch.nan_to_num(samples) * w).sum(1) / n_valid.clamp_min(1)[:, None, None]
        wh = mean.amax(1) - mean.amin(1)
        face = (wh[:, 0] * wh[:, 1]).clamp_min(0).sqrt()
        face = torch.where((n_valid > 0) & (face > 0), face, torch.ones_like(face))
        dev = self.device
        lm_fit, pose_fit, accepted, kept = (t.cpu() for t in selective_fit(
            samples.to(dev), poses.to(dev), valid.to(dev), face.to(dev), threshold=self.threshold,
            min_samples=self.min_samples))
        dist = (samples - lm_fit[:, None]).norm(dim=-1).mean(-1) / face[:, None]
        spread = torch.where(kept, dist, torch.zeros_like(dist)).amax(1)
        spread = torch.where(kept.any(1), spread, torch.full_like(spread, float("nan")))
        nan = float("nan")
        lm_out = torch.where(accepted[:, None, None], lm_fit, torch.full_like(lm_fit, nan))
        pose_out = torch.where(accepted[:, None], pose_fit, torch.full_like(pose_fit, nan))
        if self.net is None:
            pose_out = torch.full_like(pose_out, nan)
        img_cause = np.where(accepted.numpy(), "",
                             np.where(n_valid.numpy() < self.min_samples, IMAGE_CAUSES[0], IMAGE_CAUSES[1]))
        counts = torch.bincount(cause.flatten(), minlength=len(SAMPLE_CAUSES) + 1).tolist()
        self.timings["fit"] += time.perf_counter() - t0
        out = {"landmarks": lm_out.numpy(), "pose": pose_out.numpy(), "accepted": accepted.numpy(),
               "n_valid": n_valid.numpy().astype(np.int32), "n_kept": kept.sum(1).numpy().astype(np.int32),
               "spread": spread.numpy().astype(np.float32), "cause": img_cause.astype(str),
               "sample_causes": dict(zip(SAMPLE_CAUSES, counts[1:]))}
        if keep_samples:
            out["samples"], out["kept"], out["valid"] = samples.numpy(), kept.numpy(), valid.numpy()
        return out

    def label_images(self, images, boxes=None) -> list[LabelResult]:
        """``images``: HxWx3 uint8 RGB arrays; ``boxes``: None or per image None /
        (x0, y0, x1, y1) face box (default: the largest centred square, for face crops)."""
        r = self.label_arrays(images, boxes)
        return [LabelResult(r["landmarks"][i], r["pose"][i], bool(r["accepted"][i]), int(r["n_kept"][i]),
                            int(r["n_valid"][i]), float(r["spread"][i]), r["cause"][i] or None)
                for i in range(len(r["accepted"]))]
