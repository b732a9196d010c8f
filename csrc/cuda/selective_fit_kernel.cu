#include <cstdint>
#include <stdexcept>

#include "cuda_utils.cuh"
#include "ops/selective_fit.h"
#include "pyface/selective_fit_math.h"

namespace pyface {

namespace {

constexpr int kWarpsPerBlock = 4;

template <typename T>
__device__ __forceinline__ T quiet_nan();
template <>
__device__ __forceinline__ float quiet_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double quiet_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

// Writes the mean of S (in_s[s] != 0) into mean [2P] (shared); returns |S|.
template <typename T>
__device__ void warp_mean(const T* x, const uint8_t* in_s, int64_t N, int64_t P2, T* mean, int n, int lane) {
  for (int64_t q = lane; q < P2; q += 32) {
    T acc = 0;
    for (int64_t s = 0; s < N; ++s)
      if (in_s[s]) acc += x[s * P2 + q];
    mean[q] = acc / T(n);
  }
  __syncwarp();
}

template <typename T>
__device__ T warp_sample_dist(const T* row, const T* mean, int64_t P, T fs, int lane) {
  T acc = 0;
  for (int64_t p = lane; p < P; p += 32)
    acc += selfit::point_dist(row[2 * p], row[2 * p + 1], mean[2 * p], mean[2 * p + 1]);
  return selfit::sample_dist(warp_sum(acc), P, fs);
}

// One warp per image; lanes stride over coordinates / points. Shared memory per
// warp: mean [2P] T, then membership of S [N] bytes.
template <typename T>
__global__ void selective_fit_kernel(SelFitArgs<T> a, int64_t smem_per_warp) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (b >= a.B) return;  // whole warps leave together
  const int64_t N = a.N, P = a.P, P2 = 2 * a.P;
  T* mean = reinterpret_cast<T*>(smem + warp * smem_per_warp);
  uint8_t* in_s = reinterpret_cast<uint8_t*>(mean + P2);
  const T* x = a.samples + b * N * P2;
  const T* pz = a.poses + b * N * 3;
  const T fs = a.face_size[b];

  int n = 0;
  for (int64_t s = 0; s < N; ++s) {
    bool ok = a.valid[b * N + s] != 0;
    if (ok) {
      bool mine = true;
      for (int64_t q = lane; q < P2; q += 32) mine &= selfit::finite(x[s * P2 + q]);
      if (lane < 3) mine &= selfit::finite(pz[s * 3 + lane]);
      ok = __all_sync(0xffffffffu, mine);
    }
    if (lane == 0) in_s[s] = ok ? 1 : 0;
    n += ok ? 1 : 0;
  }
  __syncwarp();

  while (n > a.keep) {
    warp_mean(x, in_s, N, P2, mean, n, lane);
    int64_t far = -1;
    T best = 0;  // replaced by the first member of S (far < 0)
    for (int64_t s = 0; s < N; ++s) {
      if (!in_s[s]) continue;
      const T d = warp_sample_dist(x + s * P2, mean, P, fs, lane);
      if (selfit::farther(d, best) || far < 0) {
        best = d;
        far = s;
      }
    }
    __syncwarp();
    if (lane == 0) in_s[far] = 0;
    __syncwarp();
    --n;
  }

  T* lm = a.landmarks + b * P2;
  T* po = a.pose + b * 3;
  uint8_t* kept = a.kept + b * N;
  for (int64_t s = lane; s < N; s += 32) kept[s] = in_s[s];
  if (n == 0) {
    const T nan = quiet_nan<T>();
    for (int64_t q = lane; q < P2; q += 32) lm[q] = nan;
    if (lane < 3) po[lane] = nan;
    if (lane == 0) a.accepted[b] = 0;
    return;
  }
  warp_mean(x, in_s, N, P2, mean, n, lane);
  for (int64_t q = lane; q < P2; q += 32) lm[q] = mean[q];
  bool all_within = true;
  T ps = 0;
  for (int64_t s = 0; s < N; ++s) {
    if (!in_s[s]) continue;
    const T d = warp_sample_dist(x + s * P2, mean, P, fs, lane);
    all_within = all_within && selfit::within(d, a.threshold);
    if (lane < 3) ps += pz[s * 3 + lane];
  }
  if (lane < 3) po[lane] = ps / T(n);
  if (lane == 0) a.accepted[b] = selfit::accept(n, a.min_samples, all_within) ? 1 : 0;
}

}  // namespace

template <typename T>
void selective_fit_cuda(const SelFitArgs<T>& a, void* stream) {
  if (a.B == 0) return;
  const int64_t per_warp = ((2 * a.P * static_cast<int64_t>(sizeof(T)) + a.N) + 15) / 16 * 16;
  const int64_t smem = per_warp * kWarpsPerBlock;
  if (smem > 48 * 1024) throw std::invalid_argument("selective_fit: too many samples or points for the CUDA kernel");
  selective_fit_kernel<T>
      <<<ceil_div(a.B, kWarpsPerBlock), kWarpsPerBlock * 32, static_cast<size_t>(smem), as_stream(stream)>>>(a,
                                                                                                             per_warp);
  PYFACE_CUDA_CHECK_LAUNCH("selective_fit");
}

template void selective_fit_cuda<float>(const SelFitArgs<float>&, void*);
template void selective_fit_cuda<double>(const SelFitArgs<double>&, void*);

}  // namespace pyface
