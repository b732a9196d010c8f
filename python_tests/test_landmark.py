"""Fused landmark loss (Eq. 3-9) and pose loss (Eq. 2) against the pure-PyTorch reference."""
import pytest
import torch
from conftest import devices

from pyface import geometry as G
from pyface.ops import landmark_loss, pose_loss
from pyface.ops.reference import (
    landmark_lambda_reference,
    landmark_loss_reference,
    pose_loss_reference,
    pose_rotation_reference,
)

# Kernel comparisons run once per CPU instruction-set path (conftest.cpu_isa).
pytestmark = pytest.mark.cpu_kernels

TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float64: dict(atol=1e-11, rtol=1e-11)}


def _inputs(B, device="cpu", dtype=torch.float32, spread=8.0):
    """Predictions around a posed face; |pred - target| crosses the Wing width w=10."""
    pose = (torch.rand(B, 3, dtype=torch.float64) * 2 - 1) * torch.tensor([80.0, 60.0, 45.0], dtype=torch.float64)
    face = 4.0 * G.project_shape(G.default_mean_shape(torch.float64), pose) + 56.0
    pred = face + torch.randn(B, 68, 2, dtype=torch.float64) * 3.0
    target = face + torch.randn(B, 68, 2, dtype=torch.float64) * spread
    f = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
    return f(pred), f(target), f(pose)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B", [1, 5, 129])
@pytest.mark.parametrize("lambda_p", ["dynamic", 0.0, 1.0, 0.37])
def test_forward_matches_reference(device, dtype, B, lambda_p):
    pred, target, pose = _inputs(B, device, dtype)
    for reduction in ("mean", "sum", "none"):
        got, lam = landmark_loss(pred, target, pose, lambda_p=lambda_p, reduction=reduction, return_lambda=True)
        want, lam_ref = landmark_loss_reference(pred, target, pose, lambda_p=lambda_p, reduction=reduction,
                                                return_lambda=True)
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, **TOL[dtype])
        torch.testing.assert_close(lam, lam_ref, **TOL[dtype])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lambda_p", ["dynamic", 0.0, 2.5])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_backward_matches_reference(device, dtype, lambda_p, reduction):
    pred, target, pose = _inputs(67, device, dtype)
    pred[0, :5] = target[0, :5]  # d == 0: zero Wing slope in both
    grads = []
    for fn in (landmark_loss, landmark_loss_reference):
        p = pred.clone().requires_grad_()
        t = target.clone().requires_grad_()
        out = fn(p, t, pose, lambda_p=lambda_p, reduction=reduction)
        w = torch.linspace(0.5, 2.0, out.numel(), device=device, dtype=dtype).reshape(out.shape)
        (out * w).sum().backward()
        grads.append((p.grad, t.grad))
    (gp, gt), (rp, rt) = grads
    torch.testing.assert_close(gp, rp, **TOL[dtype])
    torch.testing.assert_close(gt, rt, **TOL[dtype])
    assert gp.abs().max() > 0


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_are_computed_in_float32(device, dtype):
    pred, target, pose = _inputs(9, device, dtype)
    p = pred.clone().requires_grad_()
    out = landmark_loss(p, target, pose)
    assert out.dtype == torch.float32
    want = landmark_loss_reference(pred.float(), target.float(), pose.float())
    torch.testing.assert_close(out, want, **TOL[torch.float32])
    out.backward()
    assert p.grad.dtype == dtype and torch.isfinite(p.grad.float()).all()


def test_gradcheck_float64():
    pred, target, pose = _inputs(3, dtype=torch.float64)
    pred.requires_grad_()
    target.requires_grad_()
    for lp in (0.0, 1.0, 0.3):
        torch.autograd.gradcheck(lambda p, t, lp=lp: landmark_loss(p, t, pose, lambda_p=lp, reduction="none"),
                                 (pred, target))
    # lambda depends on pred (held constant by design) but not on target: exact there.
    torch.autograd.gradcheck(lambda t: landmark_loss(pred.detach(), t, pose, reduction="none"), (target,))


def test_opcheck():
    pred, target, pose = _inputs(4, dtype=torch.float32)
    shape = G.default_mean_shape()
    for lp, dyn in ((0.0, True), (1.5, False)):
        torch.library.opcheck(torch.ops.pyface.landmark_loss_fwd,
                              (pred.clone().requires_grad_(), target, pose, shape, 10.0, 2.0, lp, dyn))
    lam = torch.rand(4)
    torch.library.opcheck(torch.ops.pyface.landmark_loss_bwd, (torch.rand(4), pred, target, lam, 10.0, 2.0))


@pytest.mark.parametrize("device", devices())
def test_lambda_zero_for_scaled_shifted_projected_mean_shape(device):
    pose = torch.tensor([[0.0, 0.0, 0.0], [40.0, -20.0, 10.0], [-75.0, 30.0, -35.0]], dtype=torch.float64)
    S = G.default_mean_shape(torch.float64)
    pred = torch.stack([s * G.project_shape(S, p[None])[0] + torch.tensor(sh, dtype=torch.float64)
                        for p, s, sh in zip(pose, (3.0, 0.2, 17.0), ((10.0, -4.0), (112.0, 56.0), (0.0, 0.0)))])
    target = pred + 1.0
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        _, lam = landmark_loss(pred.to(device, dtype), target.to(device, dtype), pose.to(device, dtype),
                               return_lambda=True)
        assert lam.abs().max().item() < tol
    # a different pose gives a clearly non-zero lambda
    _, lam = landmark_loss(pred.to(device), target.to(device), pose.roll(1, 0).to(device), return_lambda=True)
    assert lam.min().item() > 0.01


def test_lambda_matches_geometry_module():
    pred, target, pose = _inputs(11, dtype=torch.float64)
    S = G.default_mean_shape(torch.float64) * 1.7 + 0.3
    _, lam = landmark_loss(pred, target, pose, mean_shape=S, return_lambda=True)
    want = (G.normalize_shape(G.project_shape(S, pose)) - G.normalize_shape(pred)).norm(dim=-1).mean(-1)
    torch.testing.assert_close(lam, want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(landmark_lambda_reference(pred, pose, S), want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-14), (torch.float32, 2e-6)])
def test_kernel_rotation_matches_geometry(device, dtype, atol):
    pose = ((torch.rand(50, 3, dtype=dtype) * 2 - 1) * 179).to(device)
    R = torch.ops.pyface.euler_to_matrix(pose)  # the kernels' rotation (CPU / CUDA backend)
    torch.testing.assert_close(R, G.euler_to_matrix(pose), atol=atol, rtol=0)
    torch.testing.assert_close(R, pose_rotation_reference(pose), atol=4 * atol, rtol=0)


def test_custom_mean_shape_and_wing_params():
    pred, target, pose = _inputs(6)
    S = torch.randn(68, 3)
    for kw in (dict(mean_shape=S), dict(wing_w=3.0, wing_eps=0.5), dict(wing_w=100.0, lambda_p=0.0)):
        torch.testing.assert_close(landmark_loss(pred, target, pose, reduction="none", **kw),
                                   landmark_loss_reference(pred, target, pose, reduction="none", **kw),
                                   **TOL[torch.float32])


def test_empty_batch():
    pred, target, pose = _inputs(0)
    assert landmark_loss(pred, target, pose).item() == 0.0
    assert landmark_loss(pred, target, pose, reduction="none").shape == (0,)


def test_bad_inputs():
    pred, target, pose = _inputs(4)
    cases = [
        (ValueError, "pred", dict(pred=pred[:, :67])),
        (ValueError, "pred", dict(pred=pred.reshape(4, 136))),
        (ValueError, "target", dict(target=target[:3])),
        (ValueError, "target", dict(target=target[:, :, :1])),
        (ValueError, "pose", dict(pose=pose[:, :2])),
        (ValueError, "pose", dict(pose=pose[:3])),
        (TypeError, "pred", dict(pred=pred.long())),
        (TypeError, "pose", dict(pose=pose.int())),
        (TypeError, "target", dict(target=target.numpy())),
        (ValueError, "mean_shape", dict(mean_shape=torch.zeros(68, 2))),
        (ValueError, "wing_w", dict(wing_w=0.0)),
        (ValueError, "wing_eps", dict(wing_eps=-1.0)),
        (ValueError, "lambda_p", dict(lambda_p=-0.5)),
        (ValueError, "lambda_p", dict(lambda_p="fixed")),
        (TypeError, "lambda_p", dict(lambda_p=None)),
        (ValueError, "reduction", dict(reduction="avg")),
        (TypeError, "return_lambda", dict(return_lambda=1)),
        (ValueError, "pred", dict(pred=pred.to("meta"))),
    ]
    for exc, name, kw in cases:
        args = dict(pred=pred, target=target, pose=pose)
        args.update({k: v for k, v in kw.items() if k in args})
        extra = {k: v for k, v in kw.items() if k not in args}
        with pytest.raises(exc, match=name):
            landmark_loss(args["pred"], args["target"], args["pose"], **extra)


@pytest.mark.parametrize("device", devices())
def test_non_finite_inputs(device):
    pred, target, pose = _inputs(70, device)
    for name, t, val in (("pred", pred, float("nan")), ("target", target, float("inf")),
                         ("pose", pose, float("nan"))):
        bad = t.clone()
        bad[65, 0] = val
        args = dict(pred=pred, target=target, pose=pose)
        args[name] = bad
        with pytest.raises(ValueError, match=f"{name} contains non-finite"):
            landmark_loss(**args)
    S = G.default_mean_shape(device=device).clone()
    S[3, 2] = float("inf")
    with pytest.raises(ValueError, match="mean_shape contains non-finite"):
        landmark_loss(pred, target, pose, mean_shape=S)


def test_pose_loss():
    pred = torch.randn(13, 3, dtype=torch.float64, requires_grad=True) * 30
    target = torch.randn(13, 3, dtype=torch.float64) * 30
    torch.testing.assert_close(pose_loss(pred, target), pose_loss_reference(pred, target))
    torch.testing.assert_close(pose_loss(pred, target), (pred - target).abs().sum() / 39)
    with pytest.raises(ValueError, match="target"):
        pose_loss(pred, target[:4])
    with pytest.raises(ValueError, match="pred"):
        pose_loss(pred[:, :2], target)
    with pytest.raises(TypeError, match="pred"):
        pose_loss(pred.long(), target)
