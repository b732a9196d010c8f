#include "ops/selective_fit.h"

#include <pybind11/pybind11.h>

#include "ops/bind.h"
#include "ops/ptr.h"

namespace py = pybind11;

namespace pyface {

namespace {
template <typename T>
SelFitArgs<T> make_args(uintptr_t samples, uintptr_t poses, uintptr_t valid, uintptr_t face_size, int64_t B,
                        int64_t N, int64_t P, double threshold, int64_t keep, int64_t min_samples,
                        uintptr_t landmarks, uintptr_t pose, uintptr_t accepted, uintptr_t kept) {
  return SelFitArgs<T>{ptr<const T>(samples), ptr<const T>(poses), ptr<const uint8_t>(valid),
                       ptr<const T>(face_size), B, N, P, static_cast<T>(threshold), keep, min_samples,
                       ptr<T>(landmarks), ptr<T>(pose), ptr<uint8_t>(accepted), ptr<uint8_t>(kept)};
}
}  // namespace

// Floating tensors are float32, or float64 when f64 is set; bool tensors are bytes.
void bind_selective_fit(py::module_& m) {
  m.def("selective_fit_cpu", [](bool f64, uintptr_t samples, uintptr_t poses, uintptr_t valid, uintptr_t face_size,
                                int64_t B, int64_t N, int64_t P, double threshold, int64_t keep, int64_t min_samples,
                                uintptr_t landmarks, uintptr_t pose, uintptr_t accepted, uintptr_t kept) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      PYFACE_CPU_KERNEL(selective_fit_cpu<T>)(make_args<T>(samples, poses, valid, face_size, B, N, P, threshold, keep, min_samples,
                                        landmarks, pose, accepted, kept));
    };
    f64 ? run(double()) : run(float());
  });
#ifdef PYFACE_WITH_CUDA
  m.def("selective_fit_cuda", [](bool f64, uintptr_t samples, uintptr_t poses, uintptr_t valid, uintptr_t face_size,
                                 int64_t B, int64_t N, int64_t P, double threshold, int64_t keep, int64_t min_samples,
                                 uintptr_t landmarks, uintptr_t pose, uintptr_t accepted, uintptr_t kept,
                                 uintptr_t stream) {
    py::gil_scoped_release nogil;
    auto run = [&](auto zero) {
      using T = decltype(zero);
      selective_fit_cuda<T>(make_args<T>(samples, poses, valid, face_size, B, N, P, threshold, keep, min_samples,
                                         landmarks, pose, accepted, kept),
                            stream_ptr(stream));
    };
    f64 ? run(double()) : run(float());
  });
#endif
}

}  // namespace pyface
