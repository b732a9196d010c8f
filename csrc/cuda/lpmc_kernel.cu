#include <cfloat>

#include "cuda_utils.cuh"
#include "ops/lpmc.h"
#include "pyface/lpmc_math.h"

namespace pyface {

namespace {

constexpr int kFwdThreads = 256;

template <typename T>
__device__ __forceinline__ void online_add(T& m, T& l, T v) {
  if (v > m) {
    l = l * exp(m - v) + T(1);
    m = v;
  } else {
    l += exp(v - m);
  }
}

template <typename T>
__device__ __forceinline__ void pair_merge(T& m, T& l, T om, T ol) {
  if (ol == T(0)) return;
  if (l == T(0)) {
    m = om;
    l = ol;
    return;
  }
  if (om > m) {
    l = l * exp(m - om) + ol;
    m = om;
  } else {
    l += ol * exp(om - m);
  }
}

template <typename T>
__device__ __forceinline__ T shfl_xor(T v, int o) {
  return __shfl_xor_sync(0xffffffffu, v, o);
}

// One block per row: online (max, sum) per thread, then a block merge.
template <typename T>
__global__ void lpmc_fwd_kernel(LpmcArgs<T> a, T* run_max, T* run_sum, T* tgt) {
  const int64_t i = blockIdx.x;
  const int64_t label = a.labels[i];
  if (label == a.ignore_index) return;
  const T* row = a.buf + i * a.n;
  const T ix = a.inv_norm_x[i];
  const int64_t y = label - a.c0;
  T m = -FLT_MAX, l = 0;
  for (int64_t j = threadIdx.x; j < a.n; j += blockDim.x) {
    const T c = row[j] * ix * a.inv_norm_w[j];
    T v;
    if (j == y) {
      const lpmc::Target<T> t = lpmc::target_logit<T>(c, a.margins[i], a.scale, a.arc);
      v = t.logit;
      tgt[i] = v;
    } else {
      v = a.scale * c;
    }
    online_add(m, l, v);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const T om = shfl_xor(m, o);
    const T ol = shfl_xor(l, o);
    pair_merge(m, l, om, ol);
  }
  __shared__ T sm[kFwdThreads / 32], sl[kFwdThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    T bm = sm[0], bl = sl[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) pair_merge(bm, bl, sm[w], sl[w]);
    T rm = run_max[i], rs = run_sum[i];
    lpmc::lse_merge<T>(rm, rs, bm, bl);
    run_max[i] = rm;
    run_sum[i] = rs;
  }
}

constexpr int kTileCols = 32, kTileRows = 8;

// Block = 32 columns x 8 row lanes; loops over all rows. Column sums are reduced
// in shared memory; per-row partial sums go to scratch[i * nblk + block].
template <typename T>
__global__ void lpmc_bwd_kernel(LpmcArgs<T> a, const T* lse, const T* grad_rows, T* rw, T* scratch) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTileCols + tx;
  const bool col_ok = j < a.n;
  const T iw = col_ok ? a.inv_norm_w[j] : T(0);
  T colsum = 0;
  for (int64_t i = ty; i < a.B; i += kTileRows) {
    const int64_t label = a.labels[i];
    T gc = 0;
    if (col_ok) {
      T* p = a.buf + i * a.n + j;
      if (label == a.ignore_index) {
        *p = T(0);
      } else {
        const T ix = a.inv_norm_x[i];
        const T sc = ix * iw;
        const T c = *p * sc;
        const T g = grad_rows[i];
        T G;
        if (j == label - a.c0) {
          // The forward's rounding of the target cosine (row * ix * iw), not c: p - 1
          // cancels, so a one-ulp difference leaves a spurious gradient where p ~ 1.
          const lpmc::Target<T> t = lpmc::target_logit<T>(*p * ix * iw, a.margins[i], a.scale, a.arc);
          G = g * t.dlogit_dcos * (exp(t.logit - lse[i]) - T(1));
        } else {
          G = g * a.scale * exp(a.scale * c - lse[i]);
        }
        gc = G * c;
        *p = G * sc;
      }
    }
    colsum += gc;
    const T rs = warp_sum(gc);
    if (tx == 0) scratch[i * gridDim.x + blockIdx.x] = rs;
  }
  __shared__ T cs[kTileRows][kTileCols];
  cs[ty][tx] = colsum;
  __syncthreads();
  if (ty == 0 && col_ok) {
    T acc = 0;
    for (int r = 0; r < kTileRows; ++r) acc += cs[r][tx];
    rw[j] = acc * iw * iw;
  }
}

template <typename T>
__global__ void lpmc_rowsum_kernel(const T* scratch, int64_t B, int nblk, const T* inv_norm_x, T* rx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B) return;
  T acc = 0;
  for (int k = 0; k < nblk; ++k) acc += scratch[i * nblk + k];
  rx[i] += acc * inv_norm_x[i] * inv_norm_x[i];
}

}  // namespace

template <typename T>
void lpmc_fwd_chunk_cuda(const LpmcArgs<T>& a, T* run_max, T* run_sum, T* tgt, void* stream) {
  if (a.B == 0 || a.n == 0) return;
  lpmc_fwd_kernel<T><<<static_cast<unsigned>(a.B), kFwdThreads, 0, as_stream(stream)>>>(a, run_max, run_sum, tgt);
  PYFACE_CUDA_CHECK_LAUNCH("lpmc_fwd_chunk");
}

template <typename T>
void lpmc_bwd_chunk_cuda(const LpmcArgs<T>& a, const T* lse, const T* grad_rows, T* rx, T* rw, T* scratch,
                         void* stream) {
  if (a.B == 0 || a.n == 0) return;
  const unsigned nblk = ceil_div(a.n, kTileCols);
  cudaStream_t st = as_stream(stream);
  lpmc_bwd_kernel<T><<<nblk, dim3(kTileCols, kTileRows), 0, st>>>(a, lse, grad_rows, rw, scratch);
  PYFACE_CUDA_CHECK_LAUNCH("lpmc_bwd_chunk");
  lpmc_rowsum_kernel<T><<<ceil_div(a.B, 256), 256, 0, st>>>(scratch, a.B, static_cast<int>(nblk), a.inv_norm_x, rx);
  PYFACE_CUDA_CHECK_LAUNCH("lpmc_rowsum");
}

template void lpmc_fwd_chunk_cuda<float>(const LpmcArgs<float>&, float*, float*, float*, void*);
template void lpmc_fwd_chunk_cuda<double>(const LpmcArgs<double>&, double*, double*, double*, void*);
template void lpmc_bwd_chunk_cuda<float>(const LpmcArgs<float>&, const float*, const float*, float*, float*, float*,
                                         void*);
template void lpmc_bwd_chunk_cuda<double>(const LpmcArgs<double>&, const double*, const double*, double*, double*,
                                          double*, void*);

}  // namespace pyface
