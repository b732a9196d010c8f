#!/usr/bin/env bash
# Build pyface._C_emu, the CUDA backend emulated on the CPU (csrc/emu/README.md).
#   tools/emu_build.sh [VARIANT]
# VARIANT: plain (default) | address | undefined | address,undefined | coverage
# The module stays in build/emu-<variant>/; the last line printed is its path: point
# PYFACE_EMU_MODULE at it (tools/emu_check.sh does). The plain variant is also copied
# into this source tree's pyface/ (found without the variable). Sanitized variants are
# not: an ASan module aborts a python that was started without LD_PRELOAD of libasan.
# Extra CMake arguments: EMU_CMAKE_ARGS (e.g. -DPYFACE_EMU_CUDA_DIR=/tmp/mutant).
# Exit status 3 (and a message) when the CUDA toolkit headers are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-plain}
inc=${PYFACE_EMU_CUDA_INCLUDE:-${CUDA_HOME:-/usr/local/cuda}/include}
if [ ! -f "$inc/cuda_fp16.h" ] || [ ! -f "$inc/cuda_runtime.h" ]; then
  echo "emu_build: SKIP - no CUDA toolkit headers in $inc (set CUDA_HOME); the emulated CUDA tests cannot be built" >&2
  exit 3
fi
case "$variant" in plain) san="" ;; *) san="$variant" ;; esac
bdir="build/emu-${variant//,/-}${EMU_BUILD_SUFFIX:-}"
pyb=$(python -c "import pybind11; print(pybind11.get_cmake_dir())")
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
# shellcheck disable=SC2086
cmake -S . -B "$bdir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Debug -DPYFACE_CUDA=OFF -DPYFACE_CUDA_EMU=ON \
  -DPYFACE_EMU_SANITIZE="$san" -DPYFACE_EMU_CUDA_INCLUDE="$inc" -Dpybind11_DIR="$pyb" \
  -DPython_EXECUTABLE="$(command -v python)" ${EMU_CMAKE_ARGS:-} >/dev/null
cmake --build "$bdir" --target _C_emu -j "$(nproc)" >&2
if [ "$variant" = plain ] && [ -z "${EMU_BUILD_SUFFIX:-}" ]; then
  rm -f pyface/_C_emu*.so
  cp "$bdir"/_C_emu*.so pyface/
fi
ls "$(pwd)/$bdir"/_C_emu*.so
