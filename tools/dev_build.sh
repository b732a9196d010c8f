#!/usr/bin/env bash
# Development build: compiles pyface._C with CMake into build/dev and drops the
# module into pyface/ so that `PYTHONPATH=. pytest` uses the source tree.
# PYFACE_CUDA=OFF (default here: faster) | AUTO | ON.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=${PYFACE_CUDA:-OFF}
pyb=$(python -c "import pybind11; print(pybind11.get_cmake_dir())")
cmake -S . -B "build/dev-$cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPYFACE_CUDA="$cuda" \
  -Dpybind11_DIR="$pyb" -DPython_EXECUTABLE="$(command -v python)" >/dev/null
cmake --build "build/dev-$cuda" -j "$(nproc)"
cp "build/dev-$cuda"/_C*.so pyface/
echo "built $(ls pyface/_C*.so)"
