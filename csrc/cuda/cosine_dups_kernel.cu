#include <cstdint>

#include "cuda_utils.cuh"
#include "ops/cosine_dups.h"
#include "pyface/cosine_dups_math.h"

namespace pyface {

namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 4;

// grid.y = tile rows, grid.x = column chunks of kThreads * kPerThread. Hits take
// a slot with one warp-aggregated atomicAdd; slots >= capacity are counted only.
__global__ void dup_tile_kernel(DupTileArgs a) {
  const int64_t r = blockIdx.y;
  const int64_t i = a.i0 + r;
  const float* row = a.buf + r * a.tb;
  const float ia = a.inv_a[r];
  const int64_t c0 = dups::first_col(i, a.j0, a.self);
  const int64_t base = static_cast<int64_t>(blockIdx.x) * kThreads * kPerThread;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int u = 0; u < kPerThread; ++u) {
    const int64_t j = base + u * kThreads + threadIdx.x;
    bool is_hit = false;
    float c = 0.f;
    if (j < a.tb && j >= c0) {
      c = dups::cosine(row[j], ia, a.inv_b[j]);
      is_hit = dups::hit(c, a.threshold);
    }
    const unsigned mask = __ballot_sync(0xffffffffu, is_hit);
    if (mask == 0u) continue;
    unsigned long long slot0 = 0;
    const int leader = __ffs(mask) - 1;
    if (lane == leader) slot0 = atomicAdd(reinterpret_cast<unsigned long long*>(a.counter), __popc(mask));
    slot0 = __shfl_sync(0xffffffffu, slot0, leader);
    if (is_hit) {
      const int64_t k = static_cast<int64_t>(slot0) + __popc(mask & ((1u << lane) - 1u));
      if (k < a.capacity) {
        a.pairs[2 * k] = i;
        a.pairs[2 * k + 1] = a.j0 + j;
        a.sim[k] = c;
      }
    }
  }
}

__global__ void dup_second_kernel(DupSecondArgs a) {
  const int64_t k = a.begin + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= a.end) return;
  const int64_t r = a.pairs[2 * k] - a.i0, c = a.pairs[2 * k + 1] - a.j0;
  const float s = dups::cosine(a.buf2[r * a.tb + c], a.inv_a2[r], a.inv_b2[c]);
  a.sim2[k] = s;
  a.keep[k] = dups::hit(s, a.threshold2) ? 1 : 0;
}

}  // namespace

void dup_tile_cuda(const DupTileArgs& a, void* stream) {
  if (a.ta <= 0 || a.tb <= 0) return;
  if (a.ta > 65535) throw std::invalid_argument("cosine_duplicates: CUDA tiles have at most 65535 rows");
  const dim3 grid(ceil_div(a.tb, kThreads * kPerThread), static_cast<unsigned>(a.ta));
  dup_tile_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(a);
  PYFACE_CUDA_CHECK_LAUNCH("dup_tile");
}

void dup_second_cuda(const DupSecondArgs& a, void* stream) {
  const int64_t n = a.end - a.begin;
  if (n <= 0) return;
  dup_second_kernel<<<ceil_div(n, 256), 256, 0, as_stream(stream)>>>(a);
  PYFACE_CUDA_CHECK_LAUNCH("dup_second");
}

}  // namespace pyface
