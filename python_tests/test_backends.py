"""Backends by path (pyface/ops/backends/): every op's kernels registered with PyTorch's
dispatcher per device, the one switch for emulated CUDA, and the typed argument structs
through which the backends call the extension (csrc/ops/binding.h)."""
import types

import pytest
import torch
from conftest import EMULATED

from pyface.ops import _ext, backends, landmark_loss
from pyface.ops.backends import cuda as cuda_backend

C = _ext._C


def _pyface_ops() -> set[str]:
    return {n for n in torch._C._dispatch_get_all_op_names() if n.startswith("pyface::")}


def test_every_op_has_an_implementation_and_kernels_for_cpu_cuda_and_meta():
    declared = {op._qualname for op, _ in backends.implementations()}
    assert declared == _pyface_ops()
    assert {"pyface::lpmc_fwd", "pyface::selective_fit", "pyface::cosine_duplicates"} <= declared
    for name in declared:
        for key in ("CPU", "CUDA", "Meta"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(name, key), (name, key)


def test_implementations_and_backends_meet_in_either_order(monkeypatch):
    monkeypatch.setattr(backends, "_IMPLEMENTATIONS", [])
    monkeypatch.setattr(backends, "_BACKENDS", [])
    seen = []
    first = backends.implementation("op1")(lambda k: "one")
    backends.register_backend(lambda op, fn: seen.append(("b1", op, fn)))
    second = backends.implementation("op2")(lambda k: "two")
    backends.register_backend(lambda op, fn: seen.append(("b2", op, fn)))
    assert sorted((b, op) for b, op, _ in seen) == [("b1", "op1"), ("b1", "op2"), ("b2", "op1"), ("b2", "op2")]
    assert {fn for *_, fn in seen} == {first, second}
    assert backends.implementations() == [("op1", first), ("op2", second)]


def test_cuda_backend_without_the_cuda_build_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(_ext, "_C", types.SimpleNamespace())  # an extension built without CudaKernels
    with pytest.raises(RuntimeError, match="built without its CUDA backend"):
        cuda_backend._kernels(torch.device("cuda"))


def _landmark_launches() -> int:
    stats = _ext.emu_module().launch_stats()
    return sum(s["launches"] for s in stats if s["kernel"].startswith("landmark_fwd_kernel"))


@pytest.mark.emu
@pytest.mark.skipif(not EMULATED, reason="needs the emulated CUDA backend (tools/emu_build.sh)")
def test_cpu_tensors_run_the_emulated_cuda_kernels_only_while_emulating():
    pred, target, pose = torch.randn(3, 68, 2) * 5, torch.randn(3, 68, 2) * 5, torch.randn(3, 3) * 20
    with _ext.emulate_cuda(False):
        before = _landmark_launches()
        cpu = landmark_loss(pred, target, pose, reduction="none")
        assert _landmark_launches() == before
    with _ext.emulate_cuda(True):
        emulated = landmark_loss(pred, target, pose, reduction="none")
    assert _landmark_launches() == before + 1
    torch.testing.assert_close(emulated, cpu, rtol=2e-4, atol=1e-5)


# ----------------------------------------------------------------------------- argument structs


def _row_inv_norm_fields(x, out):
    return dict(x=x, n=x.shape[0], d=x.shape[1], dtype=_ext.dtype_code(x), eps=1e-12, out=out)


def test_struct_call_computes_what_torch_computes():
    x, out = torch.randn(7, 5, dtype=torch.float64), torch.empty(7, dtype=torch.float64)
    C.CpuKernels().row_inv_norm(C.RowInvNormArgs(**_row_inv_norm_fields(x, out)))
    torch.testing.assert_close(out, 1 / x.norm(dim=1), rtol=1e-14, atol=0)


@pytest.mark.parametrize("change,exc,match", [
    (lambda f: f.pop("eps"), TypeError, r"RowInvNormArgs needs every field: 'eps' is missing"),
    (lambda f: f.update(epsilon=1.0), TypeError, r"RowInvNormArgs has no field 'epsilon'"),
    (lambda f: f.update(n=2.5), TypeError, r"RowInvNormArgs\.n must be an int, got float"),
    (lambda f: f.update(eps="small"), TypeError, r"RowInvNormArgs\.eps must be a number, got str"),
    (lambda f: f.update(x=[1.0, 2.0]), TypeError, r"RowInvNormArgs\.x must be a tensor or None, got list"),
    (lambda f: f.update(x=torch.randn(5, 7).t()), TypeError, r"RowInvNormArgs\.x must be a contiguous tensor"),
])
def test_struct_fields_are_checked(change, exc, match):
    fields = _row_inv_norm_fields(torch.randn(7, 5), torch.empty(7))
    change(fields)
    with pytest.raises(exc, match=match):
        C.RowInvNormArgs(**fields)


def test_templated_structs_check_element_types_and_kernels_pick_by_struct():
    assert set(C.LpmcArgs) == {torch.float32, torch.float64} and C.CpuKernels.LpmcArgs is C.LpmcArgs
    fields = dict(buf=torch.zeros(2, 3), B=2, n=3, c0=0, inv_norm_x=torch.ones(2), inv_norm_w=torch.ones(3),
                  labels=torch.zeros(2, dtype=torch.int64), margins=torch.zeros(2), scale=64.0, arc=False,
                  ignore_index=-1)
    with pytest.raises(TypeError, match=r"LpmcArgs_float64\.buf must be a torch\.float64 tensor, got torch\.float32"):
        C.LpmcArgs[torch.float64](**fields)
    with pytest.raises(TypeError, match=r"LpmcArgs_float32\.labels must be a torch\.int64 tensor, got torch\.int32"):
        C.LpmcArgs[torch.float32](**{**fields, "labels": torch.zeros(2, dtype=torch.int32)})
    args = C.LpmcArgs[torch.float32](**fields)
    assert args.inv_norm_w == fields["inv_norm_w"].data_ptr() and args.B == 2 and args.arc is False
    assert repr(args).startswith("LpmcArgs_float32(buf=") and "ignore_index=-1" in repr(args)
    k = C.CpuKernels()
    with pytest.raises(TypeError, match=r"run_sum must be a torch\.float32 tensor, got torch\.float64"):
        k.lpmc_fwd_chunk(args, torch.zeros(2), torch.zeros(2, dtype=torch.float64), torch.zeros(2))
    run_max, run_sum, tgt = torch.full((2,), float("-inf")), torch.zeros(2), torch.zeros(2)
    k.lpmc_fwd_chunk(args, run_max, run_sum, tgt)  # all logits 0: max 0, sum 3 (label 0 in the chunk: margin 0)
    torch.testing.assert_close(run_sum, torch.full((2,), 3.0))
    torch.testing.assert_close(run_max, torch.zeros(2))
    args64 = C.LpmcArgs[torch.float64](**{n: t.double() if isinstance(t, torch.Tensor) and t.is_floating_point()
                                          else t for n, t in fields.items()})
    with pytest.raises(TypeError, match=r"run_max must be a torch\.float64 tensor, got torch\.float32"):
        k.lpmc_fwd_chunk(args64, run_max, run_sum, tgt)


def test_none_is_a_null_pointer():
    args = C.DupTileArgs(buf=None, ta=0, tb=0, i0=0, j0=0, inv_a=None, inv_b=None, threshold=0.5, self=True,
                         pairs=None, sim=None, capacity=0, counter=None)
    assert args.buf == 0 and args.counter == 0 and args.self is True
