#!/usr/bin/env bash
# Execute pyface's CUDA kernels on the CPU (csrc/emu/README.md): build the emulated
# backend pyface._C_emu and run every CUDA test case on it.
#
#   tools/emu_check.sh ci        one ASan+UBSan build; all CUDA cases (pytest -m cuda, incl.
#                                python_tests/test_cuda_emu.py: seeds, injected faults) under it
#   tools/emu_check.sh full      ci, plus the CUDA cases under 5 more schedule seeds, plus the
#                                sanitizer self-check (an out-of-bounds read must be reported)
#   tools/emu_check.sh mutants   source mutations (each __syncthreads/__syncwarp removed in turn,
#                                warp_sum broken): each must make some emulated test fail
#   tools/emu_check.sh plain     plain build (fast, for development) + the CUDA cases
#   tools/emu_check.sh coverage  gcov build: the CUDA cases, then line coverage of every .cu
#                                kernel file and the shared math headers (never-run lines listed)
#
# PYTEST: the pytest command (default: python -m pytest); PYTEST_ARGS are added to it.
# The pyface that pytest imports may be the source tree or an installed one (CI): the
# emulated module is found through PYFACE_EMU_MODULE, set here.
# Exit status: 0 all passed; 3 skipped (no CUDA headers); else failed.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-ci}
pytest_cmd=${PYTEST:-python -m pytest}
t0=$(date +%s)

build() {  # build VARIANT [extra cmake args]: sets PYFACE_EMU_MODULE
  local out rc
  # (not 2>/dev/stderr: reopening it truncates a log file that stderr goes to)
  if [ -n "${EMU_LOG:-}" ]; then
    out=$(EMU_CMAKE_ARGS="${2:-}" bash tools/emu_build.sh "$1" 2>"$EMU_LOG")
  else
    out=$(EMU_CMAKE_ARGS="${2:-}" bash tools/emu_build.sh "$1")
  fi
  rc=$?
  if [ "$rc" = 3 ]; then echo "emu_check: SKIPPED - CUDA toolkit headers not found (set CUDA_HOME)"; exit 3; fi
  [ "$rc" = 0 ] || { echo "emu_check: build of the $1 variant FAILED"; exit 1; }
  PYFACE_EMU_MODULE=$(tail -1 <<<"$out")
  export PYFACE_EMU_MODULE
  echo "emu_check: built $PYFACE_EMU_MODULE"
}

sanitizer_env() {
  # ASan must be the first library loaded; libstdc++ too, or its __cxa_throw
  # interceptor fails on the first C++ exception torch throws (python does not link it).
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
  export LD_PRELOAD
  export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
}

run_cuda_cases() {  # label [pytest args...]; pytest -s: a sanitizer report is not swallowed by capture
  local label=$1
  shift
  echo "== emulated CUDA cases: $label"
  # shellcheck disable=SC2086
  ${NORAND:-} $pytest_cmd python_tests -m "cuda or emu" -q -ra -s -p no:cacheprovider ${PYTEST_ARGS:-} "$@"
}

# Sanitized runs without address-space randomisation where the machine allows it: GCC 12's
# ASan runtime fails on kernels with vm.mmap_rnd_bits = 32 (its shadow mapping collides).
if setarch "$(uname -m)" -R true 2>/dev/null; then NORAND="setarch $(uname -m) -R"; else NORAND=""; fi

case "$mode" in
  ci | full)
    build address,undefined
    (sanitizer_env && run_cuda_cases "ASan + UBSan, round-robin schedule") || exit 1
    if [ "$mode" = full ]; then
      for seed in 11 12 13 14 15; do
        (sanitizer_env && PYEMU_SCHED_SEED=$seed run_cuda_cases "ASan + UBSan, schedule seed $seed") || exit 1
      done
      echo "== sanitizer self-check: an out-of-bounds read in an emulated kernel must be reported"
      out=$(sanitizer_env && python - <<'PY' 2>&1
import torch
from pyface.ops import _ext
emu = _ext.emu_module()
x = torch.randn(9, 40)  # the CUDA row_inv_norm told there are 10 rows: reads past the end
out = torch.empty(10)
emu.CudaKernels(0).row_inv_norm(emu.RowInvNormArgs(x=x, n=10, d=40, dtype=0, eps=0.0, out=out))
PY
)
      if grep -q "heap-buffer-overflow" <<<"$out"; then echo "ok: reported"; else echo "NOT reported"; exit 1; fi
    fi
    ;;
  plain)
    build plain
    NORAND="" run_cuda_cases "plain build" || exit 1
    ;;
  coverage)
    build coverage
    objdir=$(dirname "$PYFACE_EMU_MODULE")/CMakeFiles/_C_emu.dir
    find "$objdir" -name '*.gcda' -delete
    run_cuda_cases "coverage build" >/dev/null || exit 1
    gdir=$(mktemp -d)
    (cd "$gdir" && gcov -p -o "$objdir/emu" "$objdir"/emu/*.gcda >/dev/null 2>&1)
    python - "$gdir" <<'PY'
import pathlib, re, sys
rows = []
for g in sorted(pathlib.Path(sys.argv[1]).glob("*.gcov")):
    src = None
    run, never = 0, []
    for line in g.read_text(errors="replace").splitlines():
        m = re.match(r"\s*([^:]+):\s*(\d+):(.*)", line)
        if not m:
            continue
        cnt, no, code = m.group(1).strip(), int(m.group(2)), m.group(3)
        if no == 0 and code.startswith("Source:"):
            src = code[len("Source:"):]
            continue
        if cnt == "-":
            continue
        if cnt.startswith("#####") or cnt.startswith("====="):
            never.append(no)
        else:
            run += 1
    if src and ("/csrc/cuda/" in src or "/csrc/include/pyface/" in src):
        rows.append((src.split("/csrc/")[-1], run, never))
for name, run, never in rows:
    total = run + len(never)
    print(f"{name:<40} {run:>4}/{total:<4} lines run" + (f"; never: {never}" if never else ""))
PY
    rm -rf "$gdir"
    ;;
  mutants)
    # Each mutant: a copy of csrc/cuda with one change, built in one build folder
    # (only the changed kernel recompiles). A mutant must make the CUDA cases fail.
    work=$(mktemp -d)
    survived=0
    # Equivalent mutants (the barrier is not needed; re-check when the kernel changes):
    # selective_fit's __syncwarp() before lane 0 clears in_s[far]: every lane has passed
    # its last warp_sum at a member s >= far, and reads only in_s[s'] for s' > s before
    # the next __syncwarp(), so no lane reads the entry being cleared.
    equivalent="selective_fit_kernel.cu:__syncwarp();:2"
    mutants=$(python - <<'PY'
import pathlib, re
for f in sorted(pathlib.Path("csrc/cuda").glob("*.cu")):
    s = f.read_text()
    for tok in ("__syncthreads();", "__syncwarp();"):
        for k in range(s.count(tok)):
            print(f"{f.name}:{tok}:{k}")
print("cuda_utils.cuh:warp_sum:0")
PY
)
    for m in $mutants; do
      IFS=: read -r file what k <<<"$m"
      rm -rf "$work/cuda" && cp -r csrc/cuda "$work/cuda"
      python - "$work/cuda/$file" "$what" "$k" <<'PY'
import sys
path, what, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = open(path).read()
if what == "warp_sum":  # the classic bug: the butterfly starts at 8, half the warp is lost
    new = s.replace("for (int o = 16; o > 0; o >>= 1) v +=", "for (int o = 8; o > 0; o >>= 1) v +=")
    assert new != s, "warp_sum loop not found"
else:
    at = -1
    for _ in range(k + 1):
        at = s.index(what, at + 1)
    new = s[:at] + "/* mutant: removed */" + s[at + len(what):]
open(path, "w").write(new)
PY
      EMU_BUILD_SUFFIX=-mutant EMU_LOG=/dev/null build plain "-DPYFACE_EMU_CUDA_DIR=$work/cuda" >/dev/null
      caught=0
      for seed in -1 1 2 3; do
        if ! PYEMU_SCHED_SEED=$seed $pytest_cmd python_tests -m "cuda or emu" -q -x -p no:cacheprovider \
             -k "not test_missing_syncthreads and not test_broken_warp" >/dev/null 2>&1; then
          caught=1
          echo "mutant $m: CAUGHT (schedule seed $seed)"
          break
        fi
      done
      if [ $caught = 0 ]; then
        if [[ " $equivalent " == *" $m "* ]]; then
          echo "mutant $m: survived (known equivalent mutant, see the list above)"
        else
          echo "mutant $m: SURVIVED"
          survived=$((survived + 1))
        fi
      fi
    done
    rm -rf "$work"
    echo "mutants survived: $survived"
    [ $survived = 0 ] || exit 1
    ;;
  *)
    echo "usage: tools/emu_check.sh [ci|full|mutants|plain]" >&2
    exit 2
    ;;
esac
echo "emu_check $mode: passed in $(($(date +%s) - t0)) s"
