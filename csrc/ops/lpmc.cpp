#include "ops/lpmc.h"

#include <pybind11/pybind11.h>

#include "ops/bind.h"
#include "ops/ptr.h"

namespace py = pybind11;

namespace pyface {

namespace {
template <typename T>
LpmcArgs<T> make_args(uintptr_t buf, int64_t B, int64_t n, int64_t c0, uintptr_t inx, uintptr_t inw,
                      uintptr_t labels, uintptr_t margins, double scale, bool arc, int64_t ignore_index) {
  return LpmcArgs<T>{ptr<T>(buf), B, n, c0, ptr<const T>(inx), ptr<const T>(inw),
                     ptr<const int64_t>(labels), ptr<const T>(margins), static_cast<T>(scale), arc, ignore_index};
}
}  // namespace

// Buffers are float32, or float64 when f64 is set (float64 inputs, e.g. gradcheck).
void bind_lpmc(py::module_& m) {
  m.def("lpmc_fwd_chunk_cpu", [](bool f64, uintptr_t buf, int64_t B, int64_t n, int64_t c0, uintptr_t inx,
                                 uintptr_t inw, uintptr_t labels, uintptr_t margins, double scale, bool arc,
                                 int64_t ignore_index, uintptr_t run_max, uintptr_t run_sum, uintptr_t tgt) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      PYFACE_CPU_KERNEL(lpmc_fwd_chunk_cpu<T>)(make_args<T>(buf, B, n, c0, inx, inw, labels, margins, scale, arc, ignore_index),
                            ptr<T>(run_max), ptr<T>(run_sum), ptr<T>(tgt));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("lpmc_bwd_chunk_cpu", [](bool f64, uintptr_t buf, int64_t B, int64_t n, int64_t c0, uintptr_t inx,
                                 uintptr_t inw, uintptr_t labels, uintptr_t margins, double scale, bool arc,
                                 int64_t ignore_index, uintptr_t lse, uintptr_t grad_rows, uintptr_t rx,
                                 uintptr_t rw) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      PYFACE_CPU_KERNEL(lpmc_bwd_chunk_cpu<T>)(make_args<T>(buf, B, n, c0, inx, inw, labels, margins, scale, arc, ignore_index),
                            ptr<const T>(lse), ptr<const T>(grad_rows), ptr<T>(rx), ptr<T>(rw));
    };
    f64 ? run(double()) : run(float());
  });
#ifdef PYFACE_WITH_CUDA
  m.def("lpmc_fwd_chunk_cuda", [](bool f64, uintptr_t buf, int64_t B, int64_t n, int64_t c0, uintptr_t inx,
                                  uintptr_t inw, uintptr_t labels, uintptr_t margins, double scale, bool arc,
                                  int64_t ignore_index, uintptr_t run_max, uintptr_t run_sum, uintptr_t tgt,
                                  uintptr_t stream) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      lpmc_fwd_chunk_cuda<T>(make_args<T>(buf, B, n, c0, inx, inw, labels, margins, scale, arc, ignore_index),
                             ptr<T>(run_max), ptr<T>(run_sum), ptr<T>(tgt), stream_ptr(stream));
    };
    f64 ? run(double()) : run(float());
  });
  m.def("lpmc_bwd_chunk_cuda", [](bool f64, uintptr_t buf, int64_t B, int64_t n, int64_t c0, uintptr_t inx,
                                  uintptr_t inw, uintptr_t labels, uintptr_t margins, double scale, bool arc,
                                  int64_t ignore_index, uintptr_t lse, uintptr_t grad_rows, uintptr_t rx,
                                  uintptr_t rw, uintptr_t scratch, uintptr_t stream) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      lpmc_bwd_chunk_cuda<T>(make_args<T>(buf, B, n, c0, inx, inw, labels, margins, scale, arc, ignore_index),
                             ptr<const T>(lse), ptr<const T>(grad_rows), ptr<T>(rx), ptr<T>(rw), ptr<T>(scratch),
                             stream_ptr(stream));
    };
    f64 ? run(double()) : run(float());
  });
#endif
}

}  // namespace pyface
