// Extra functions of pyface._C_emu: control of the emulation runtime. The module is
// csrc/bindings.cpp compiled again with PYFACE_MODULE_NAME=_C_emu and the CUDA
// sources emulated on the CPU (see README.md here).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "ops/binding.h"
#include "pyemu_runtime.h"

namespace pyface {

PYFACE_BINDINGS(emu, b) {
  py::module_& m = b.m;
  m.attr("emulated") = true;
#ifndef PYFACE_EMU_VARIANT
#define PYFACE_EMU_VARIANT "plain"
#endif
  m.attr("variant") = PYFACE_EMU_VARIANT;  // plain | a sanitizer list | coverage
  m.def("set_schedule_seed", &pyemu::set_schedule_seed, py::arg("seed"),
        "Seed of the shuffled warp/lane schedule; a negative seed restores round robin.");
  m.def("schedule_seed", &pyemu::schedule_seed);
  m.def(
      "set_fault",
      [](const std::string& name) {
        if (name == "none")
          pyemu::set_fault(pyemu::kFaultNone);
        else if (name == "syncthreads")
          pyemu::set_fault(pyemu::kFaultSyncthreads);
        else if (name == "shuffle")
          pyemu::set_fault(pyemu::kFaultShuffle);
        else
          throw py::value_error("fault must be 'none', 'syncthreads' or 'shuffle', got '" + name + "'");
      },
      py::arg("name"), "Inject a runtime fault (mutation tests): none | syncthreads | shuffle.");
  m.def("fault", [] {
    static const char* names[] = {"none", "syncthreads", "shuffle"};
    return std::string(names[pyemu::fault()]);
  });
  m.def(
      "launch_stats",
      [](bool reset) {
        py::list out;
        for (auto& [name, sig, s] : pyemu::launch_stats(reset)) {
          py::dict d;
          d["kernel"] = name;
          d["signature"] = sig;
          d["launches"] = s.launches;
          d["blocks"] = s.blocks;
          d["threads"] = s.threads;
          d["partial_warp_blocks"] = s.partial_warp_blocks;
          d["early_exit_threads"] = s.early_exit_threads;
          d["failures"] = s.failures;
          out.append(d);
        }
        return out;
      },
      py::arg("reset") = false, "Per kernel instantiation: launches, blocks, threads, partial warps, early exits.");
}

}  // namespace pyface
