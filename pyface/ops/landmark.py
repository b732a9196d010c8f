"""Facial-landmark loss of Eq. 3-9 (Lee et al. 2024): Wing + lambda_P * MSE, fused.

Per sample b, over the 136 coordinates d = pred - target:
    wing_b = mean Wing(|d|)   (Wing(a) = w ln(1 + a/eps) if a < w else a - C, C = w - w ln(1 + w/eps))
    mse_b  = mean d^2
    loss_b = wing_b + lambda_b * mse_b
lambda_b is a number, or "dynamic": the mean over the 68 points of the distance between
N(project(mean_shape, pose_b)) and N(pred_b), N centring a shape and dividing by its
Frobenius norm; the projection is pyface.geometry's convention (computed in the kernel).
lambda_b is a weight: no gradient flows through it (nor to pose or the mean shape).

One kernel launch for the forward (every per-sample quantity including lambda) and one for
the backward, on CPU (C++) and CUDA.
"""
from __future__ import annotations

import torch

from pyface import checks as V
from pyface.data_files.mean_shape_68 import MEAN_SHAPE_68
from pyface.ops._ext import acc_dtype
from pyface.ops.backends import implementation, no_kernel

__all__ = ["landmark_loss", "pose_loss", "WING_W", "WING_EPS"]

WING_W = 10.0
WING_EPS = 2.0
NUM_POINTS = 68
_FLAG_NAMES = ((1, "pred"), (2, "target"), (4, "pose"), (8, "mean_shape"))  # landmark_math.h::Flag
_ALL_FLOAT = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_mean_shape_cache: dict[tuple, torch.Tensor] = {}


def _default_mean_shape(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (dtype, device)
    t = _mean_shape_cache.get(key)
    if t is None:
        t = _mean_shape_cache[key] = torch.tensor(MEAN_SHAPE_68, dtype=dtype, device=device)
    return t


@torch.library.custom_op("pyface::landmark_loss_fwd", mutates_args=())
def _landmark_fwd(pred: torch.Tensor, target: torch.Tensor, pose: torch.Tensor, mean_shape: torch.Tensor,
                  wing_w: float, wing_eps: float, lambda_p: float, dynamic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss_b [B], lambda_b [B]) in pred's dtype (float32 or float64)."""
    raise no_kernel("pyface::landmark_loss_fwd", pred.device)


@implementation(_landmark_fwd)
def _landmark_fwd_impl(k, pred, target, pose, mean_shape, wing_w, wing_eps, lambda_p, dynamic):
    # The kernels read row-major memory: a caller of the raw op may pass any layout.
    pred, target, pose, mean_shape = (t.contiguous() for t in (pred, target, pose, mean_shape))
    B = pred.shape[0]
    rows = pred.new_empty(B)
    lam = pred.new_empty(B)
    flags = torch.zeros(1, dtype=torch.int32, device=pred.device)
    if B:
        args = k.LandmarkArgs[pred.dtype](pred=pred, target=target, pose=pose, shape=mean_shape, B=B, w=wing_w,
                                          eps=wing_eps, lambda_=lambda_p, dynamic=dynamic)
        k.landmark_fwd(args, rows, lam, flags)
        # Value check inside the op (one host sync) so it also holds under torch.compile.
        bad = int(flags.item())
        if bad:
            names = [n for bit, n in _FLAG_NAMES if bad & bit]
            raise ValueError(f"{', '.join(names)} contains non-finite values (nan or inf)")
    return rows, lam


@_landmark_fwd.register_fake
def _(pred, target, pose, mean_shape, wing_w, wing_eps, lambda_p, dynamic):
    B = pred.shape[0]
    return pred.new_empty(B), pred.new_empty(B)


@torch.library.custom_op("pyface::landmark_loss_bwd", mutates_args=())
def _landmark_bwd(grad_rows: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, lam: torch.Tensor,
                  wing_w: float, wing_eps: float) -> torch.Tensor:
    """d(sum_b grad_rows_b * loss_b) / d pred, lambda held constant: [B, 68, 2]."""
    raise no_kernel("pyface::landmark_loss_bwd", pred.device)


@implementation(_landmark_bwd)
def _landmark_bwd_impl(k, grad_rows, pred, target, lam, wing_w, wing_eps):
    pred, target, lam = pred.contiguous(), target.contiguous(), lam.contiguous()
    dpred = torch.empty_like(pred)
    B = pred.shape[0]
    if B:
        g = grad_rows.to(pred.dtype).contiguous()
        # The backward reads neither the pose nor lambda's inputs (lam holds lambda_b).
        args = k.LandmarkArgs[pred.dtype](pred=pred, target=target, pose=None, shape=None, B=B, w=wing_w,
                                          eps=wing_eps, lambda_=0.0, dynamic=False)
        k.landmark_bwd(args, lam, g, dpred)
    return dpred


@_landmark_bwd.register_fake
def _(grad_rows, pred, target, lam, wing_w, wing_eps):
    return pred.new_empty(pred.shape)  # contiguous, like the kernel's output


def _setup_context(ctx, inputs, output):
    pred, target, _pose, _shape, wing_w, wing_eps, _lp, _dyn = inputs
    _, lam = output
    ctx.save_for_backward(pred, target, lam)
    ctx.args = (wing_w, wing_eps)


def _backward(ctx, grad_rows, _grad_lam):
    pred, target, lam = ctx.saved_tensors
    dpred = dtarget = None
    if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
        dpred = torch.ops.pyface.landmark_loss_bwd(grad_rows, pred, target, lam, *ctx.args)
        if ctx.needs_input_grad[1]:
            dtarget = -dpred
        if not ctx.needs_input_grad[0]:
            dpred = None
    return dpred, dtarget, None, None, None, None, None, None


_landmark_fwd.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("pyface::euler_to_matrix", mutates_args=())
def _euler_to_matrix(pose: torch.Tensor) -> torch.Tensor:
    """R [n, 3, 3] from pose [n, 3] (yaw, pitch, roll degrees; float32 or float64, contiguous) by the
    kernels' rotation (csrc/include/pyface/geometry_math.h), which the dynamic lambda uses: the tests
    cross-check it against pyface.geometry. Not part of the API."""
    raise no_kernel("pyface::euler_to_matrix", pose.device)


@implementation(_euler_to_matrix)
def _euler_to_matrix_impl(k, pose):
    pose = pose.contiguous()
    R = pose.new_empty((pose.shape[0], 3, 3))
    if pose.shape[0]:
        k.euler_to_matrix(pose, pose.shape[0], R)
    return R


@_euler_to_matrix.register_fake
def _(pose):
    return pose.new_empty((pose.shape[0], 3, 3))


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, pose: torch.Tensor, *,
                  mean_shape: torch.Tensor | None = None,
                  wing_w: float = WING_W, wing_eps: float = WING_EPS, lambda_p: float | str = "dynamic",
                  reduction: str = "mean", return_lambda: bool = False):
    """Fused landmark loss L_FLD = Wing + lambda_P * MSE (Eq. 3-9).

    pred, target: [B, 68, 2] landmarks (iBUG order, pixels); pose: [B, 3] ground-truth
    (yaw, pitch, roll) in degrees (only used by the dynamic lambda); mean_shape: [68, 3]
    mean 3D face in image axes (default: pyface.geometry.default_mean_shape()).
    lambda_p: a number >= 0 (0 and 1 are the paper's Table 9 ablation) or "dynamic".
    Floating dtypes; bfloat16/float16 are computed in float32; float64 stays float64.
    Returns the mean (or sum, or [B] for "none") of the per-sample losses in the compute
    dtype, and also lambda [B] when return_lambda. Gradients flow to pred and target.
    """
    V.tensor("pred", pred, dtypes=_ALL_FLOAT, ndim=3)
    V.tensor("target", target, dtypes=_ALL_FLOAT, ndim=3)
    V.tensor("pose", pose, dtypes=_ALL_FLOAT, ndim=2)
    V.shape("pred", pred, (None, NUM_POINTS, 2))
    B = pred.shape[0]
    V.shape("target", target, (B, NUM_POINTS, 2))
    V.shape("pose", pose, (B, 3))
    if mean_shape is not None:
        V.tensor("mean_shape", mean_shape, dtypes=_ALL_FLOAT, ndim=2)
        V.shape("mean_shape", mean_shape, (NUM_POINTS, 3))
    dev = V.same_device(pred=pred, target=target, pose=pose, mean_shape=mean_shape)
    w = V.number("wing_w", wing_w, lo=0.0, lo_open=True)
    eps = V.number("wing_eps", wing_eps, lo=0.0, lo_open=True)
    if isinstance(lambda_p, str):
        V.choice("lambda_p", lambda_p, ("dynamic",))
        dynamic, lam = True, 0.0
    else:
        dynamic, lam = False, V.number("lambda_p", lambda_p, lo=0.0)
    V.choice("reduction", reduction, ("mean", "sum", "none"))
    if not isinstance(return_lambda, bool):
        raise TypeError(f"return_lambda must be a bool, got {type(return_lambda).__name__}")

    dt = acc_dtype(pred)
    p = pred.to(dt).contiguous()
    t = target.to(dt).contiguous()
    po = pose.to(dt).contiguous()
    ms = _default_mean_shape(dt, dev) if mean_shape is None else mean_shape.to(dt).contiguous()
    rows, lam_b = torch.ops.pyface.landmark_loss_fwd(p, t, po, ms, w, eps, lam, dynamic)
    if reduction == "none":
        out = rows
    elif reduction == "sum":
        out = rows.sum()
    else:
        out = rows.sum() / max(B, 1)
    return (out, lam_b) if return_lambda else out


def pose_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_HPE of Eq. 2: mean absolute error over the batch and the 3 angles (yaw, pitch,
    roll, degrees). pred, target: [B, 3] floating tensors on one device."""
    V.tensor("pred", pred, dtypes=_ALL_FLOAT, ndim=2)
    V.tensor("target", target, dtypes=_ALL_FLOAT, ndim=2)
    V.shape("pred", pred, (None, 3))
    V.shape("target", target, (pred.shape[0], 3))
    V.same_device(pred=pred, target=target)
    return (pred - target.to(pred.dtype)).abs().mean()
