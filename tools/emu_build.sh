#!/usr/bin/env bash
# Build pyface._C_emu, the CUDA backend emulated on the CPU (csrc/emu/README.md), and
# drop it into a pyface package folder.
#   tools/emu_build.sh [VARIANT] [DEST]
# VARIANT: plain (default) | address | undefined | address,undefined | coverage
# DEST: the pyface/ folder to put the module in (default: this source tree's).
# Extra CMake arguments: EMU_CMAKE_ARGS (e.g. -DPYFACE_EMU_CUDA_DIR=/tmp/mutant).
# Exit status 3 (and a message) when the CUDA toolkit headers are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-plain}
dest=${2:-pyface}
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
cmake --build "$bdir" --target _C_emu -j "$(nproc)"
rm -f "$dest"/_C_emu*.so
cp "$bdir"/_C_emu*.so "$dest"/
echo "built $(ls "$dest"/_C_emu*.so) ($variant)"
