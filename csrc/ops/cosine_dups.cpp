#include "ops/cosine_dups.h"

#include <pybind11/pybind11.h>

#include "ops/bind.h"
#include "ops/ptr.h"

namespace py = pybind11;

namespace pyface {

namespace {
DupTileArgs tile_args(uintptr_t buf, int64_t ta, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a,
                      uintptr_t inv_b, double threshold, bool self, uintptr_t pairs, uintptr_t sim,
                      int64_t capacity, uintptr_t counter) {
  return DupTileArgs{ptr<const float>(buf), ta, tb, i0, j0, ptr<const float>(inv_a), ptr<const float>(inv_b),
                     static_cast<float>(threshold), self, ptr<int64_t>(pairs), ptr<float>(sim), capacity,
                     ptr<int64_t>(counter)};
}
DupSecondArgs second_args(uintptr_t buf2, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a2, uintptr_t inv_b2,
                          double threshold2, uintptr_t pairs, int64_t begin, int64_t end, uintptr_t sim2,
                          uintptr_t keep) {
  return DupSecondArgs{ptr<const float>(buf2), tb, i0, j0, ptr<const float>(inv_a2), ptr<const float>(inv_b2),
                       static_cast<float>(threshold2), ptr<const int64_t>(pairs), begin, end, ptr<float>(sim2),
                       ptr<uint8_t>(keep)};
}
}  // namespace

// All floating buffers are float32; the counter is one int64.
void bind_cosine_dups(py::module_& m) {
  m.def("dup_tile_cpu", [](uintptr_t buf, int64_t ta, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a,
                           uintptr_t inv_b, double threshold, bool self, uintptr_t pairs, uintptr_t sim,
                           int64_t capacity, uintptr_t counter) {
    py::gil_scoped_release nogil;
    PYFACE_CPU_KERNEL(dup_tile_cpu)(tile_args(buf, ta, tb, i0, j0, inv_a, inv_b, threshold, self, pairs, sim, capacity, counter));
  });
  m.def("dup_second_cpu", [](uintptr_t buf2, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a2, uintptr_t inv_b2,
                             double threshold2, uintptr_t pairs, int64_t begin, int64_t end, uintptr_t sim2,
                             uintptr_t keep) {
    py::gil_scoped_release nogil;
    PYFACE_CPU_KERNEL(dup_second_cpu)(second_args(buf2, tb, i0, j0, inv_a2, inv_b2, threshold2, pairs, begin, end, sim2, keep));
  });
#ifdef PYFACE_WITH_CUDA
  m.def("dup_tile_cuda", [](uintptr_t buf, int64_t ta, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a,
                            uintptr_t inv_b, double threshold, bool self, uintptr_t pairs, uintptr_t sim,
                            int64_t capacity, uintptr_t counter, uintptr_t stream) {
    py::gil_scoped_release nogil;
    dup_tile_cuda(tile_args(buf, ta, tb, i0, j0, inv_a, inv_b, threshold, self, pairs, sim, capacity, counter),
                  stream_ptr(stream));
  });
  m.def("dup_second_cuda", [](uintptr_t buf2, int64_t tb, int64_t i0, int64_t j0, uintptr_t inv_a2,
                              uintptr_t inv_b2, double threshold2, uintptr_t pairs, int64_t begin, int64_t end,
                              uintptr_t sim2, uintptr_t keep, uintptr_t stream) {
    py::gil_scoped_release nogil;
    dup_second_cuda(second_args(buf2, tb, i0, j0, inv_a2, inv_b2, threshold2, pairs, begin, end, sim2, keep),
                    stream_ptr(stream));
  });
#endif
}

}  // namespace pyface
