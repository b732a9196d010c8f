// Cosine duplicate search epilogues (Algorithm 2). The caller computes the raw
// products of a tile, raw = a[i0:i0+ta] @ b[j0:j0+tb]^T, into a float32 buffer
// [ta, tb] and calls these on it; see pyface/ops/cosine_dups.py for the loop.
#pragma once
#include <cstdint>

#include "pyface/cpu_isa.h"

namespace pyface {

struct DupTileArgs {
  const float* buf;  // [ta, tb] raw products (row-major)
  int64_t ta, tb, i0, j0;
  const float* inv_a;  // [ta] (offset to the tile)
  const float* inv_b;  // [tb] (offset to the tile)
  float threshold;
  bool self;       // keep only j > i
  int64_t* pairs;  // [capacity, 2] (i, j) out
  float* sim;      // [capacity] out
  int64_t capacity;
  int64_t* counter;  // [1] entries so far (host memory on CPU, device on CUDA)
};

// Appends the tile's hits at pairs[*counter...] and adds their number to
// *counter. Hits beyond `capacity` are counted but not written: the caller grows
// the output and runs the tile again from the old counter. On CPU the tile's hits
// are written in (i, j) order, and nothing at all when they do not all fit.
PYFACE_CPU_KERNELS(void dup_tile_cpu(const DupTileArgs& a);)

struct DupSecondArgs {
  const float* buf2;  // [ta, tb] raw products of the second space for the tile
  int64_t tb, i0, j0;
  const float* inv_a2;  // [ta] (offset to the tile)
  const float* inv_b2;  // [tb] (offset to the tile)
  float threshold2;
  const int64_t* pairs;  // candidates [begin, end) of this tile
  int64_t begin, end;
  float* sim2;    // [capacity] out: second-space cosine of each candidate
  uint8_t* keep;  // [capacity] out: sim2 >= threshold2
};

PYFACE_CPU_KERNELS(void dup_second_cpu(const DupSecondArgs& a);)

#ifdef PYFACE_WITH_CUDA
void dup_tile_cuda(const DupTileArgs& a, void* stream);
void dup_second_cuda(const DupSecondArgs& a, void* stream);
#endif

}  // namespace pyface
