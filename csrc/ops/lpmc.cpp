// Bindings of the LPMC chunk epilogues (csrc/ops/lpmc.h). Buffers are float32, or
// float64 for float64 inputs (LpmcArgs[torch.float64]).
#include "ops/lpmc.h"

#include "ops/binding.h"

namespace pyface {

PYFACE_BINDINGS(lpmc, b) {
  b.structs<LpmcArgs, float, double>("LpmcArgs", [](auto& s) {
    using S = typename std::decay_t<decltype(s)>::Struct;
    s.field("buf", &S::buf).field("B", &S::B).field("n", &S::n).field("c0", &S::c0);
    s.field("inv_norm_x", &S::inv_norm_x).field("inv_norm_w", &S::inv_norm_w).field("labels", &S::labels);
    s.field("margins", &S::margins).field("scale", &S::scale).field("arc", &S::arc);
    s.field("ignore_index", &S::ignore_index);
  });
  for_each_type<float, double>([&](auto zero) {
    using T = decltype(zero);
    b.cpu.def(
        "lpmc_fwd_chunk",
        [](const CpuKernels&, const LpmcArgs<T>& a, py::handle run_max, py::handle run_sum, py::handle tgt) {
          T* mx = tensor_ptr<T>(run_max, "run_max");
          T* sm = tensor_ptr<T>(run_sum, "run_sum");
          T* tg = tensor_ptr<T>(tgt, "tgt");
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(lpmc_fwd_chunk_cpu<T>)(a, mx, sm, tg);
        },
        py::arg("args"), py::arg("run_max"), py::arg("run_sum"), py::arg("tgt"));
    b.cpu.def(
        "lpmc_bwd_chunk",
        [](const CpuKernels&, const LpmcArgs<T>& a, py::handle lse, py::handle grad_rows, py::handle rx,
           py::handle rw) {
          const T* ls = tensor_ptr<const T>(lse, "lse");
          const T* g = tensor_ptr<const T>(grad_rows, "grad_rows");
          T* x = tensor_ptr<T>(rx, "rx");
          T* w = tensor_ptr<T>(rw, "rw");
          py::gil_scoped_release nogil;
          PYFACE_CPU_KERNEL(lpmc_bwd_chunk_cpu<T>)(a, ls, g, x, w);
        },
        py::arg("args"), py::arg("lse"), py::arg("grad_rows"), py::arg("rx"), py::arg("rw"));
#ifdef PYFACE_WITH_CUDA
    b.cuda.def(
        "lpmc_fwd_chunk",
        [](const CudaKernels& k, const LpmcArgs<T>& a, py::handle run_max, py::handle run_sum, py::handle tgt) {
          T* mx = tensor_ptr<T>(run_max, "run_max");
          T* sm = tensor_ptr<T>(run_sum, "run_sum");
          T* tg = tensor_ptr<T>(tgt, "tgt");
          py::gil_scoped_release nogil;
          lpmc_fwd_chunk_cuda<T>(a, mx, sm, tg, k.stream);
        },
        py::arg("args"), py::arg("run_max"), py::arg("run_sum"), py::arg("tgt"));
    // scratch: T [B * ceil(n / 32)] (lpmc.h).
    b.cuda.def(
        "lpmc_bwd_chunk",
        [](const CudaKernels& k, const LpmcArgs<T>& a, py::handle lse, py::handle grad_rows, py::handle rx,
           py::handle rw, py::handle scratch) {
          const T* ls = tensor_ptr<const T>(lse, "lse");
          const T* g = tensor_ptr<const T>(grad_rows, "grad_rows");
          T* x = tensor_ptr<T>(rx, "rx");
          T* w = tensor_ptr<T>(rw, "rw");
          T* sc = tensor_ptr<T>(scratch, "scratch");
          py::gil_scoped_release nogil;
          lpmc_bwd_chunk_cuda<T>(a, ls, g, x, w, sc, k.stream);
        },
        py::arg("args"), py::arg("lse"), py::arg("grad_rows"), py::arg("rx"), py::arg("rw"), py::arg("scratch"));
#endif
  });
}

}  // namespace pyface
