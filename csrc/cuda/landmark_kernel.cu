#include "cuda_utils.cuh"
#include "ops/landmark.h"
#include "pyface/geometry_math.h"
#include "pyface/landmark_math.h"

namespace pyface {

namespace {

using landmark::kCoords;
using landmark::kPoints;

constexpr int kWarpsPerBlock = 4;
constexpr int kPtsPerLane = (kPoints + 31) / 32;  // 3
constexpr int kBwdThreads = 256;

struct DeviceLog1p {
  template <typename T>
  __device__ T operator()(T x) const {
    return log1p(x);
  }
};

// One warp per sample: Wing/MSE sums over the 136 coordinates, then (dynamic) the
// projected mean shape and both normalisations with warp reductions.
template <typename T>
__global__ void landmark_fwd_kernel(LandmarkArgs<T> a, T* rows, T* lam, int32_t* flags) {
  __shared__ T shape[3 * kPoints];
  int32_t bad = 0;
  if (a.dynamic) {
    for (int k = threadIdx.x; k < 3 * kPoints; k += blockDim.x) {
      const T v = a.shape[k];
      shape[k] = v;
      if (blockIdx.x == 0 && !isfinite(v)) bad |= landmark::kBadShape;
    }
    __syncthreads();
  }
  const int lane = threadIdx.x % 32;
  const int64_t b = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (b < a.B) {
    const T* p = a.pred + b * kCoords;
    const T* t = a.target + b * kCoords;
    const T C = landmark::wing_c<T>(a.w, a.eps), inv_eps = T(1) / a.eps;
    T sw = 0, sm = 0;
    for (int j = lane; j < kCoords; j += 32) {
      const T pv = p[j], tv = t[j];
      if (!isfinite(pv)) bad |= landmark::kBadPred;
      if (!isfinite(tv)) bad |= landmark::kBadTarget;
      const T d = pv - tv;
      sw += landmark::wing<T>(fabs(d), a.w, inv_eps, C, DeviceLog1p());
      sm += d * d;
    }
    sw = warp_sum(sw);
    sm = warp_sum(sm);
    const T y = a.pose[3 * b], pi = a.pose[3 * b + 1], r = a.pose[3 * b + 2];
    if (lane == 0 && !(isfinite(y) && isfinite(pi) && isfinite(r))) bad |= landmark::kBadPose;
    T l = a.lambda;
    if (a.dynamic) {
      T R[9];
      geometry::euler_to_matrix<T>(y, pi, r, R);
      T pu[kPtsPerLane], pv[kPtsPerLane], qu[kPtsPerLane], qv[kPtsPerLane];
      T spu = 0, spv = 0, squ = 0, sqv = 0;
#pragma unroll
      for (int i = 0; i < kPtsPerLane; ++i) {
        const int k = lane + 32 * i;
        pu[i] = pv[i] = qu[i] = qv[i] = 0;
        if (k < kPoints) {
          geometry::project_point<T>(R, shape + 3 * k, pu[i], pv[i]);
          qu[i] = p[2 * k];
          qv[i] = p[2 * k + 1];
        }
        spu += pu[i];
        spv += pv[i];
        squ += qu[i];
        sqv += qv[i];
      }
      spu = warp_sum(spu) / T(kPoints);
      spv = warp_sum(spv) / T(kPoints);
      squ = warp_sum(squ) / T(kPoints);
      sqv = warp_sum(sqv) / T(kPoints);
      T np = 0, nq = 0;
#pragma unroll
      for (int i = 0; i < kPtsPerLane; ++i) {
        if (lane + 32 * i < kPoints) {
          pu[i] -= spu;
          pv[i] -= spv;
          qu[i] -= squ;
          qv[i] -= sqv;
          np += pu[i] * pu[i] + pv[i] * pv[i];
          nq += qu[i] * qu[i] + qv[i] * qv[i];
        }
      }
      const T ip = T(1) / landmark::safe_norm<T>(warp_sum(np));
      const T iq = T(1) / landmark::safe_norm<T>(warp_sum(nq));
      T dist = 0;
#pragma unroll
      for (int i = 0; i < kPtsPerLane; ++i) {
        if (lane + 32 * i < kPoints) {
          const T du = pu[i] * ip - qu[i] * iq, dv = pv[i] * ip - qv[i] * iq;
          dist += sqrt(du * du + dv * dv);
        }
      }
      l = warp_sum(dist) / T(kPoints);
    }
    if (lane == 0) {
      lam[b] = l;
      rows[b] = (sw + l * sm) / T(kCoords);
    }
  }
  if (bad) atomicOr(flags, bad);
}

// One thread per coordinate.
template <typename T>
__global__ void landmark_bwd_kernel(LandmarkArgs<T> a, const T* lam, const T* grad_rows, T* dpred) {
  const int64_t n = a.B * kCoords;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = i / kCoords;
    dpred[i] = grad_rows[b] / T(kCoords) * landmark::coord_grad<T>(a.pred[i] - a.target[i], a.w, a.eps, lam[b]);
  }
}

template <typename T>
__global__ void euler_to_matrix_kernel(const T* pose, int64_t n, T* R) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) geometry::euler_to_matrix<T>(pose[3 * i], pose[3 * i + 1], pose[3 * i + 2], R + 9 * i);
}

}  // namespace

template <typename T>
void landmark_fwd_cuda(const LandmarkArgs<T>& a, T* rows, T* lam, int32_t* flags, void* stream) {
  if (a.B == 0) return;
  landmark_fwd_kernel<T>
      <<<ceil_div(a.B, kWarpsPerBlock), 32 * kWarpsPerBlock, 0, as_stream(stream)>>>(a, rows, lam, flags);
  PYFACE_CUDA_CHECK_LAUNCH("landmark_fwd");
}

template <typename T>
void landmark_bwd_cuda(const LandmarkArgs<T>& a, const T* lam, const T* grad_rows, T* dpred, void* stream) {
  if (a.B == 0) return;
  const long long n = a.B * kCoords;
  const unsigned blocks = ceil_div(n, kBwdThreads) < 65535u ? ceil_div(n, kBwdThreads) : 65535u;
  landmark_bwd_kernel<T><<<blocks, kBwdThreads, 0, as_stream(stream)>>>(a, lam, grad_rows, dpred);
  PYFACE_CUDA_CHECK_LAUNCH("landmark_bwd");
}

template <typename T>
void euler_to_matrix_cuda(const T* pose, int64_t n, T* R, void* stream) {
  if (n == 0) return;
  euler_to_matrix_kernel<T><<<ceil_div(n, 128), 128, 0, as_stream(stream)>>>(pose, n, R);
  PYFACE_CUDA_CHECK_LAUNCH("euler_to_matrix");
}

template void landmark_fwd_cuda<float>(const LandmarkArgs<float>&, float*, float*, int32_t*, void*);
template void landmark_fwd_cuda<double>(const LandmarkArgs<double>&, double*, double*, int32_t*, void*);
template void landmark_bwd_cuda<float>(const LandmarkArgs<float>&, const float*, const float*, float*, void*);
template void landmark_bwd_cuda<double>(const LandmarkArgs<double>&, const double*, const double*, double*, void*);
template void euler_to_matrix_cuda<float>(const float*, int64_t, float*, void*);
template void euler_to_matrix_cuda<double>(const double*, int64_t, double*, void*);

}  // namespace pyface
