// Declarations of every op's binding function (defined in csrc/ops/<op>.cpp).
#pragma once
#include <pybind11/pybind11.h>

namespace pyface {
void bind_common(pybind11::module_& m);
void bind_lpmc(pybind11::module_& m);
void bind_landmark(pybind11::module_& m);
}  // namespace pyface
