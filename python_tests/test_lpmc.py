"""lpmc_loss against the pure-PyTorch reference (forward and backward)."""
import math

import pytest
import torch
from conftest import devices

from pyface.nn import LPMCLoss
from pyface.ops import lpmc_loss, pose_margin
from pyface.ops.reference import lpmc_loss_reference

# Kernel comparisons run once per CPU instruction-set path (conftest.cpu_isa).
pytestmark = pytest.mark.cpu_kernels

# (dtype, atol, rtol) for the loss and the gradients, compared to a float64 reference.
TOL = {
    torch.float64: (1e-10, 1e-9),
    torch.float32: (2e-5, 2e-5),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (5e-3, 5e-3),
}


def _inputs(B, D, C, dtype, device, *, margin_scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, generator=g).to(device=device, dtype=dtype)
    w = torch.randn(C, D, generator=g).to(device=device, dtype=dtype)
    labels = torch.randint(0, C, (B,), generator=g).to(device)
    margins = (torch.rand(B, generator=g) * margin_scale).to(device)
    return x, w, labels, margins


def _compare(x, w, labels, margins, *, tol_dtype=None, **kw):
    atol, rtol = TOL[tol_dtype or x.dtype]
    xf = x.detach().clone().requires_grad_()
    wf = w.detach().clone().requires_grad_()
    loss = lpmc_loss(xf, wf, labels, margins, **kw)
    xr = x.detach().double().requires_grad_()
    wr = w.detach().double().requires_grad_()
    ref_kw = {k: v for k, v in kw.items() if k != "chunk_size"}
    ref = lpmc_loss_reference(xr, wr, labels, margins.double(), **ref_kw)
    torch.testing.assert_close(loss.double(), ref.detach(), atol=atol * max(1.0, ref.abs().max().item()), rtol=rtol)
    g = torch.randn_like(ref) if ref.dim() else torch.ones_like(ref)
    (loss.double() * g).sum().backward()
    (ref * g).sum().backward()
    scale_x = max(xr.grad.abs().max().item(), 1e-3)
    scale_w = max(wr.grad.abs().max().item(), 1e-3)
    torch.testing.assert_close(xf.grad.double(), xr.grad, atol=atol * scale_x * 5, rtol=rtol * 5)
    torch.testing.assert_close(wf.grad.double(), wr.grad, atol=atol * scale_w * 5, rtol=rtol * 5)
    return loss


SHAPES = [(1, 8, 5), (7, 13, 1), (33, 17, 101), (64, 128, 1000), (5, 3, 70_001)]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("B,D,C", SHAPES)
@pytest.mark.parametrize("margin_type", ["cosine", "arc"])
def test_matches_reference_fp32(device, B, D, C, margin_type):
    x, w, y, m = _inputs(B, D, C, torch.float32, device)
    _compare(x, w, y, m, margin_type=margin_type)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_dtypes_and_reductions(device, dtype, reduction):
    x, w, y, m = _inputs(19, 31, 257, dtype, device)
    _compare(x, w, y, m, reduction=reduction, margin_type="arc")


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100, 257, 10_000])
def test_chunk_size_does_not_change_result(device, chunk_size):
    """C not a multiple of the chunk, chunk of one class, chunk larger than C."""
    x, w, y, m = _inputs(9, 16, 257, torch.float32, device)
    _compare(x, w, y, m, chunk_size=chunk_size)
    _compare(x, w, y, m, chunk_size=chunk_size, margin_type="arc")


@pytest.mark.parametrize("device", devices())
def test_zero_margin_equals_normalised_softmax_ce(device):
    x, w, y, _ = _inputs(23, 40, 77, torch.float32, device)
    zero = torch.zeros(23, device=device)
    for mt in ("cosine", "arc"):
        loss = lpmc_loss(x, w, y, zero, scale=30.0, margin_type=mt)
        logits = 30.0 * torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(w).t()
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, y), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("margin_type", ["cosine", "arc"])
def test_theta_near_zero_and_near_pi(device, margin_type):
    """Targets aligned with (theta ~ 0) and opposite to (theta ~ pi) their class centre."""
    B, D, C = 6, 16, 11
    x, w, y, m = _inputs(B, D, C, torch.float64, device, margin_scale=0.8)
    w = w.clone()
    w[y[:3]] = x[:3] * 2.5 + 1e-9 * torch.randn_like(x[:3])  # theta ~ 0
    w[y[3:]] = -x[3:] * 0.5  # theta ~ pi: arc fallback branch
    x = x.clone()
    x[:3] = w[y[:3]] / 2.5
    loss = _compare(x, w, y, m.double(), margin_type=margin_type, scale=16.0, reduction="none")
    assert torch.isfinite(loss).all()


@pytest.mark.parametrize("device", devices())
def test_scale_64_large_class_count_no_overflow(device):
    x, w, y, m = _inputs(4, 8, 70_001, torch.float32, device)
    w[y] = x * 3  # very confident targets: logits near +64, others spread
    loss = _compare(x, w, y, m, scale=64.0, reduction="none")
    assert torch.isfinite(loss).all()


@pytest.mark.parametrize("device", devices())
def test_ignore_index_rows_contribute_nothing(device):
    x, w, y, m = _inputs(10, 12, 30, torch.float32, device)
    y = y.clone()
    y[[1, 4, 7]] = -1
    per_row = _compare(x, w, y, m, reduction="none")
    assert (per_row[[1, 4, 7]] == 0).all()
    mean = lpmc_loss(x, w, y, m)
    torch.testing.assert_close(mean, per_row.sum() / 7)
    xg = x.clone().requires_grad_()
    lpmc_loss(xg, w, y, m).backward()
    assert (xg.grad[[1, 4, 7]] == 0).all()
    # custom ignore value, and every row ignored -> 0 with zero gradients
    y2 = torch.full_like(y, 99)
    wg = w.clone().requires_grad_()
    out = lpmc_loss(x, wg, y2, m, ignore_index=99)
    out.backward()
    assert out.item() == 0.0 and (wg.grad == 0).all()


def test_gradcheck_float64():
    x, w, y, m = _inputs(5, 7, 13, torch.float64, "cpu", margin_scale=0.5)
    x.requires_grad_()
    w.requires_grad_()
    y[2] = -1
    for mt in ("cosine", "arc"):
        def fn(a, b, mt=mt):
            return lpmc_loss(a, b, y, m.double(), margin_type=mt, scale=4.0, reduction="none", chunk_size=4)

        assert torch.autograd.gradcheck(fn, (x, w))


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    x, w, y, m = _inputs(6, 10, 21, torch.float32, device)
    x.requires_grad_()
    w.requires_grad_()
    torch.library.opcheck(torch.ops.pyface.lpmc_fwd, (x, w, y, m, 64.0, True, -1, 8))
    torch.library.opcheck(torch.ops.pyface.lpmc_fwd, (x.detach(), w.detach(), y, m, 30.0, False, -1, 100))
    rows, lse, inx, inw = torch.ops.pyface.lpmc_fwd(x.detach(), w.detach(), y, m, 64.0, True, -1, 8)
    torch.library.opcheck(torch.ops.pyface.lpmc_bwd,
                          (torch.rand(6, device=device), x.detach(), w.detach(), y, m, lse, inx, inw, 64.0, True,
                           -1, 8))


def test_torch_compile_fullgraph():
    x, w, y, m = _inputs(8, 16, 50, torch.float32, "cpu")

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x, w, y, pose):
        return lpmc_loss(x, w, y, pose_margin(pose), margin_type="arc")

    pose = torch.randn(8, 3) * 40
    xc, wc = x.clone().requires_grad_(), w.clone().requires_grad_()
    f(xc, wc, y, pose).backward()
    xe, we = x.clone().requires_grad_(), w.clone().requires_grad_()
    lpmc_loss(xe, we, y, pose_margin(pose), margin_type="arc").backward()
    torch.testing.assert_close(xc.grad, xe.grad)
    torch.testing.assert_close(wc.grad, we.grad)


def test_pose_margin_formula():
    pose = torch.tensor([[0.0, 0.0, 0.0], [30.0, -30.0, 30.0], [90.0, 90.0, 90.0], [-10.0, 5.0, 0.0]])
    m = pose_margin(pose, 0.3, 0.7)
    expected = torch.tensor([0.3, 0.3 + 0.7 * 0.5, 1.0, 0.3 + 0.7 * 15 / 180])
    torch.testing.assert_close(m, expected)
    with pytest.raises(ValueError, match="pose_deg"):
        pose_margin(torch.zeros(4, 2))


def test_module_owns_weight_and_matches_reference_switch():
    torch.manual_seed(3)
    head = LPMCLoss(40, 16, margin_type="arc")
    x = torch.randn(12, 16, requires_grad=True)
    y = torch.randint(0, 40, (12,))
    pose = torch.randn(12, 3) * 45
    fused = head(x, y, pose)
    fused.backward()
    gx, gw = x.grad.clone(), head.weight.grad.clone()
    x.grad = None
    head.weight.grad = None
    head.fused = False
    ref = head(x, y, pose)
    ref.backward()
    torch.testing.assert_close(fused, ref.float(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gx, x.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gw, head.weight.grad, atol=1e-5, rtol=1e-4)


def test_does_not_modify_inputs():
    x, w, y, m = _inputs(9, 12, 40, torch.float32, "cpu")
    copies = [t.clone() for t in (x, w, y, m)]
    lpmc_loss(x, w, y, m, margin_type="arc")
    for a, b in zip((x, w, y, m), copies):
        assert torch.equal(a, b)


# ---- bad input: clear errors naming the argument, before any kernel runs ----

def _good():
    return _inputs(4, 6, 10, torch.float32, "cpu")


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda a: a.update(embeddings=a["embeddings"].numpy()), TypeError, "embeddings"),
    (lambda a: a.update(embeddings=a["embeddings"][:, :5]), ValueError, "weight"),
    (lambda a: a.update(embeddings=a["embeddings"][0]), ValueError, "embeddings"),
    (lambda a: a.update(weight=a["weight"].double()), TypeError, "weight"),
    (lambda a: a.update(labels=a["labels"].int()), TypeError, "labels"),
    (lambda a: a.update(labels=a["labels"][:3]), ValueError, "labels"),
    (lambda a: a.update(labels=torch.tensor([0, 1, 10, 2])), ValueError, "labels"),
    (lambda a: a.update(labels=torch.tensor([0, 1, -2, 2])), ValueError, "labels"),
    (lambda a: a.update(margins=a["margins"][:2]), ValueError, "margins"),
    (lambda a: a.update(margins=torch.tensor([0.1, float("nan"), 0.2, 0.3])), ValueError, "margins"),
    (lambda a: a.update(margins=torch.tensor([0.1, float("inf"), 0.2, 0.3])), ValueError, "margins"),
    (lambda a: a.update(margins=torch.zeros(4, dtype=torch.int64)), TypeError, "margins"),
    (lambda a: a.update(scale=0.0), ValueError, "scale"),
    (lambda a: a.update(scale=float("nan")), ValueError, "scale"),
    (lambda a: a.update(margin_type="sphere"), ValueError, "margin_type"),
    (lambda a: a.update(reduction="avg"), ValueError, "reduction"),
    (lambda a: a.update(chunk_size=0), ValueError, "chunk_size"),
    (lambda a: a.update(weight=a["weight"].to("meta")), ValueError, "weight"),
    (lambda a: a.update(embeddings=torch.zeros(4, 0), weight=torch.zeros(10, 0)), ValueError, "embeddings"),
])
def test_bad_input(mutate, exc, match):
    x, w, y, m = _good()
    args = dict(embeddings=x, weight=w, labels=y, margins=m)
    mutate(args)
    kwargs = {k: args.pop(k) for k in list(args) if k not in ("embeddings", "weight", "labels", "margins")}
    with pytest.raises(exc, match=match):
        lpmc_loss(args["embeddings"], args["weight"], args["labels"], args["margins"], **kwargs)


def test_non_contiguous_inputs_are_handled_correctly():
    x, w, y, m = _inputs(8, 12, 30, torch.float32, "cpu")
    wt = w.t().contiguous().t()  # same values, column-major storage
    xs = torch.cat([x, x], dim=1)[:, ::2]  # strided view
    torch.testing.assert_close(lpmc_loss(xs, wt, y, m), lpmc_loss(xs.contiguous(), w, y, m))


def test_empty_batch():
    x = torch.zeros(0, 8)
    w = torch.randn(5, 8)
    out = lpmc_loss(x, w, torch.zeros(0, dtype=torch.long), torch.zeros(0), reduction="none")
    assert out.shape == (0,)
    assert lpmc_loss(x, w, torch.zeros(0, dtype=torch.long), torch.zeros(0)).item() == 0.0


def test_margin_changes_loss_in_the_right_direction():
    x, w, y, _ = _inputs(16, 32, 64, torch.float32, "cpu")
    small = lpmc_loss(x, w, y, torch.full((16,), 0.1))
    large = lpmc_loss(x, w, y, torch.full((16,), 0.6))
    assert large > small
    assert math.isfinite(large.item())


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_gemm_helpers_return_the_accumulation_type(device, dtype):
    """The chunk products never round through a 16-bit type."""
    from pyface.ops._gemm import mm_acc, mm_t_into

    x = torch.randn(37, 64, device=device).to(dtype)
    y = torch.randn(29, 64, device=device).to(dtype)
    exact = x.double() @ y.double().t()
    got = mm_acc(x, y.t(), torch.float32)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, atol=1e-3, rtol=1e-4)
    out = torch.empty(37, 29, device=device)
    assert mm_t_into(out, x, y) is not None
    torch.testing.assert_close(out.double(), exact, atol=1e-3, rtol=1e-4)
