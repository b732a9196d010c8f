# pyface._C_emu: the CUDA backend (csrc/cuda/*.cu, unmodified) compiled as host C++
# and run by the pyemu runtime on the CPU, for tests only (csrc/emu/README.md).
# Included from CMakeLists.txt when PYFACE_CUDA_EMU=ON; built by tools/emu_build.sh;
# never installed into the wheel. Needs the CUDA toolkit headers (cuda_fp16.h,
# cuda_bf16.h, cuda_runtime.h for the types), not nvcc and not a GPU.

set(PYFACE_EMU_SANITIZE "" CACHE STRING
    "Instrument pyface._C_emu: '' | address | undefined | address,undefined | coverage")
set(PYFACE_EMU_CUDA_DIR "${CMAKE_CURRENT_SOURCE_DIR}/csrc/cuda" CACHE PATH
    "CUDA sources to emulate (the mutation check points this at a mutated copy)")

find_path(PYFACE_EMU_CUDA_INCLUDE cuda_fp16.h
  HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV CUDA_HOME ENV CUDA_PATH
  PATH_SUFFIXES include PATHS /usr/local/cuda /opt/cuda /usr)
if(NOT PYFACE_EMU_CUDA_INCLUDE OR NOT EXISTS "${PYFACE_EMU_CUDA_INCLUDE}/cuda_runtime.h")
  message(FATAL_ERROR "PYFACE_CUDA_EMU=ON needs the CUDA toolkit headers (cuda_runtime.h, cuda_fp16.h, "
                      "cuda_bf16.h); set CUDA_HOME or -DPYFACE_EMU_CUDA_INCLUDE=<dir>")
endif()
message(STATUS "pyface: CUDA emulation module _C_emu (headers: ${PYFACE_EMU_CUDA_INCLUDE}, "
               "instrumentation: '${PYFACE_EMU_SANITIZE}')")

# Rewrite every .cu (launches and __shared__ only) into build/…/emu/<name>.cpp.
set(_emu_dir "${CMAKE_CURRENT_SOURCE_DIR}/csrc/emu")
file(GLOB _emu_cu CONFIGURE_DEPENDS "${PYFACE_EMU_CUDA_DIR}/*.cu")
set(_emu_kernel_sources)
foreach(_cu IN LISTS _emu_cu)
  get_filename_component(_name "${_cu}" NAME_WE)
  set(_out "${CMAKE_CURRENT_BINARY_DIR}/emu/${_name}.cpp")
  add_custom_command(OUTPUT "${_out}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${CMAKE_CURRENT_BINARY_DIR}/emu"
    COMMAND ${Python_EXECUTABLE} "${_emu_dir}/rewrite_cu.py" "${_cu}" "${_out}"
    DEPENDS "${_cu}" "${_emu_dir}/rewrite_cu.py"
    COMMENT "pyemu: rewriting ${_name}.cu" VERBATIM)
  list(APPEND _emu_kernel_sources "${_out}")
endforeach()
set_source_files_properties(${_emu_kernel_sources} PROPERTIES
  COMPILE_OPTIONS "-include;pyemu_pre.h"
  OBJECT_DEPENDS "${_emu_dir}/include/pyemu.h;${_emu_dir}/include/pyemu_pre.h")

# Everything else exactly as in pyface._C (bindings, op glue, CPU kernels), so the
# emulated module has the same entry points; the .cu sources of _C are replaced.
get_target_property(_c_sources _C SOURCES)
list(FILTER _c_sources EXCLUDE REGEX "\\.cu$")
pybind11_add_module(_C_emu MODULE ${_c_sources} ${_emu_kernel_sources}
  "${_emu_dir}/pyemu_runtime.cpp" "${_emu_dir}/emu_bindings.cpp")
# Order matters: csrc/emu/include's cuda_runtime.h wraps the toolkit's (#include_next).
target_include_directories(_C_emu BEFORE PRIVATE "${_emu_dir}/include" "${_emu_dir}" "${PYFACE_EMU_CUDA_DIR}")
target_include_directories(_C_emu PRIVATE $<TARGET_PROPERTY:_C,INCLUDE_DIRECTORIES> "${PYFACE_EMU_CUDA_INCLUDE}")
set(_emu_variant plain)
if(PYFACE_EMU_SANITIZE)
  set(_emu_variant "${PYFACE_EMU_SANITIZE}")
endif()
target_compile_definitions(_C_emu PRIVATE $<TARGET_PROPERTY:_C,COMPILE_DEFINITIONS>
  PYFACE_WITH_CUDA=1 PYFACE_CUDA_EMU=1 PYFACE_MODULE_NAME=_C_emu "PYFACE_EMU_VARIANT=\"${_emu_variant}\"")
# _C's own libraries too (e.g. interface targets carrying flags and definitions),
# except the CUDA runtime (pyemu stands in for it) and pybind11's (added above).
get_target_property(_c_libs _C LINK_LIBRARIES)
list(FILTER _c_libs EXCLUDE REGEX "^(pybind11::|CUDA::)|cudart")
target_link_libraries(_C_emu PRIVATE ${_c_libs} Threads::Threads)
# Only the emulated kernels and the runtime are optimised, debuggable and
# instrumented: the bindings and the CPU kernels (unused here: the CPU path runs
# pyface._C) build at -O0, which halves the build time of a sanitizer variant.
# No -ffast-math and no FMA contraction, so the emulated kernels round like a plain
# host build (README.md).
target_compile_options(_C_emu PRIVATE -O0 -ffp-contract=off -Wno-unknown-pragmas)
set(_emu_instrumented ${_emu_kernel_sources} "${_emu_dir}/pyemu_runtime.cpp")
set(_emu_flags -O1 -g -fno-omit-frame-pointer)
if(PYFACE_EMU_SANITIZE STREQUAL "coverage")
  list(APPEND _emu_flags --coverage)
  target_link_options(_C_emu PRIVATE --coverage)
elseif(PYFACE_EMU_SANITIZE)
  list(APPEND _emu_flags -fsanitize=${PYFACE_EMU_SANITIZE} -fno-sanitize-recover=all)
  target_link_options(_C_emu PRIVATE -fsanitize=${PYFACE_EMU_SANITIZE})
endif()
set_property(SOURCE ${_emu_instrumented} APPEND PROPERTY COMPILE_OPTIONS ${_emu_flags})
