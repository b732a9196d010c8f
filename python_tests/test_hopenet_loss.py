"""pyface.nn HopeNet / regression pose losses against straightforward references."""
import math

import numpy as np
import pytest
import torch

from pyface.nn import bin_centres, hopenet_angles, hopenet_bins, hopenet_loss, num_bins, pose_regression_loss


def reference_loss(logits, angles, w, alpha, exclude=False):
    """Per angle: mean CE to the (clamped) bin + alpha * sqrt(mean (E - y)^2), loops + numpy."""
    lg = logits.double()
    b, a, n = lg.shape
    total = 0.0
    for j in range(a):
        rows = [i for i in range(b) if not math.isnan(float(angles[i, j]))
                and not (exclude and abs(float(angles[i, j])) > 99)]
        if not rows:
            continue
        ce, sq = 0.0, 0.0
        for i in rows:
            y = float(angles[i, j])
            k = min(max(int(np.floor((y + 99) / w)), 0), n - 1)
            logp = torch.log_softmax(lg[i, j], 0)
            ce = ce - logp[k]
            e = sum(torch.exp(logp[m]) * (-99 + (m + 0.5) * w) for m in range(n))
            sq = sq + (e - y) ** 2
        total = total + ce / len(rows) + alpha * torch.sqrt(sq / len(rows))
    return total


def test_bins_and_centres():
    assert num_bins(3.0) == 66 and num_bins(1) == 198 and num_bins(6) == 33
    c = bin_centres(3.0)
    assert c[0] == -97.5 and c[-1] == 97.5 and c.shape == (66,)
    a = torch.tensor([-99.0, -97.0, -96.0, 0.0, 1.4, 98.9, 99.0, 150.0, -180.0, float("nan")])
    assert hopenet_bins(a, 3.0).tolist() == [0, 0, 1, 33, 33, 65, 65, 65, 0, -1]
    assert hopenet_bins(torch.tensor([-0.5, 0.5]), 1.0).tolist() == [98, 99]


def test_angles_expectation_over_centres():
    # all mass in one bin -> that bin's centre (HopeNet's lower-edge formula would give -1.5 less)
    logits = torch.full((2, 3, 66), -1e4)
    logits[0, :, 33] = 0.0
    logits[1, 0, 0] = 0.0
    logits[1, 1, 65] = 0.0
    logits[1, 2, 10] = 0.0
    out = hopenet_angles(logits)
    torch.testing.assert_close(out, torch.tensor([[1.5, 1.5, 1.5], [-97.5, 97.5, -67.5]]))
    lower_edge = (torch.softmax(logits, -1) * torch.arange(66.0)).sum(-1) * 3 - 99
    torch.testing.assert_close(out - lower_edge, torch.full((2, 3), 1.5))
    # uniform logits -> 0
    torch.testing.assert_close(hopenet_angles(torch.zeros(1, 3, 198), 1.0), torch.zeros(1, 3), atol=1e-4, rtol=0)


@pytest.mark.parametrize("w,b,alpha", [(3.0, 5, 2.0), (1.0, 3, 0.5), (3.0, 1, 0.0), (6.0, 7, 2.0)])
def test_loss_matches_reference_with_grad(w, b, alpha):
    n = num_bins(w)
    g = torch.Generator().manual_seed(b)
    logits = torch.randn(b, 3, n, generator=g) * 2
    angles = torch.rand(b, 3, generator=g) * 240 - 120       # includes |y| > 99
    angles[0, 1] = float("nan")
    a = logits.clone().requires_grad_()
    r = logits.double().requires_grad_()
    loss = hopenet_loss(a, angles, w, alpha)
    ref = reference_loss(r, angles, w, alpha)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(a.grad.double(), r.grad, rtol=1e-4, atol=1e-6)


def test_loss_exclude_out_of_range():
    logits = torch.randn(6, 3, 66, generator=torch.Generator().manual_seed(0))
    angles = torch.tensor([[10.0, 120.0, -5.0]] * 3 + [[-100.0, 20.0, 5.0]] * 3)
    got = hopenet_loss(logits, angles, out_of_range="exclude")
    torch.testing.assert_close(got.double(), reference_loss(logits, angles, 3.0, 2.0, exclude=True),
                               rtol=1e-5, atol=1e-4)
    assert not torch.allclose(got, hopenet_loss(logits, angles))
    # every row excluded for one angle: that angle contributes 0
    all_nan = angles.clone()
    all_nan[:, 2] = float("nan")
    torch.testing.assert_close(hopenet_loss(logits[:, :2], angles[:, :2]).double(),
                               hopenet_loss(logits, all_nan).double())


def test_loss_bf16_logits_and_zero_grad_at_nan_rows():
    logits = torch.randn(4, 3, 66, dtype=torch.bfloat16, requires_grad=True)
    angles = torch.tensor([[1.0, 2.0, 3.0], [float("nan")] * 3, [5.0, -5.0, 0.0], [0.0, 0.0, 0.0]])
    loss = hopenet_loss(logits, angles)
    assert loss.dtype == torch.float32
    loss.backward()
    assert bool((logits.grad[1] == 0).all()) and bool(torch.isfinite(logits.grad.float()).all())


def test_loss_bad_inputs():
    logits = torch.zeros(2, 3, 66)
    with pytest.raises(ValueError, match=r"logits must be \[B, A, 198\]"):
        hopenet_loss(logits, torch.zeros(2, 3), bin_width=1.0)
    with pytest.raises(ValueError, match="angles_deg must have shape"):
        hopenet_loss(logits, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="bin_width must divide 198"):
        hopenet_loss(logits, torch.zeros(2, 3), bin_width=4.0)
    with pytest.raises(ValueError, match="bin_width must be > 0"):
        num_bins(0.0)
    with pytest.raises(ValueError, match="inf"):
        hopenet_loss(logits, torch.tensor([[float("inf"), 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="out_of_range"):
        hopenet_loss(logits, torch.zeros(2, 3), out_of_range="drop")
    with pytest.raises(TypeError, match="logits must have dtype"):
        hopenet_angles(logits.long())
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        hopenet_loss(logits, torch.zeros(2, 3), alpha=-1.0)


def test_regression_loss_formula3():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(9, 3, generator=g, dtype=torch.float64) * 20
    y = torch.randn(9, 3, generator=g, dtype=torch.float64) * 20
    y[2, 0] = float("nan")
    p = pred.clone().requires_grad_()
    loss = pose_regression_loss(p, y)
    r = pred.clone().requires_grad_()
    ref = 0.0
    for j in range(3):
        ok = ~torch.isnan(y[:, j])
        mse = ((r[ok, j] - y[ok, j]) ** 2).mean()
        ref = ref + mse + torch.sqrt(mse)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p.grad, r.grad, rtol=1e-4, atol=1e-6)
    rmse_only = sum(torch.sqrt(((pred[~torch.isnan(y[:, j]), j] - y[~torch.isnan(y[:, j]), j]) ** 2).mean())
                    for j in range(3))
    torch.testing.assert_close(pose_regression_loss(pred, y, mse_weight=0.0), rmse_only)   # Formula 1
    two = pose_regression_loss(pred[:, :2].float(), y[:, :2].float())   # yaw/pitch only (ETH-XGaze)
    assert two.shape == () and math.isfinite(float(two))
    with pytest.raises(ValueError, match="angles_deg must have shape"):
        pose_regression_loss(pred, y[:, :2])
