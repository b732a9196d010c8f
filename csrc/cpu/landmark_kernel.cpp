#include <atomic>
#include <cmath>

#include "ops/landmark.h"
#include "pyface/fast_math.h"
#include "pyface/geometry_math.h"
#include "pyface/landmark_math.h"
#include "pyface/parallel.h"

PYFACE_CPU_NAMESPACE_BEGIN

namespace {

using landmark::kCoords;
using landmark::kPoints;

struct Log1p {
  template <typename T>
  T operator()(T x) const {
    return vlog1pf(x);
  }
};

// Wing and squared-error sums over one sample's 136 coordinates; fin_p / fin_t stay 0
// unless pred / target hold a non-finite value (x - x is nan for inf and nan).
template <typename T>
void row_sums(const T* __restrict p, const T* __restrict t, T w, T inv_eps, T C, T* wing_sum, T* sq_sum, T* fin_p,
              T* fin_t) {
  T sw = 0, sm = 0, fp = 0, ft = 0;
#pragma omp simd reduction(+ : sw, sm, fp, ft)
  for (int j = 0; j < kCoords; ++j) {
    const T d = p[j] - t[j];
    const T a = d < T(0) ? -d : d;
    sw += landmark::wing<T>(a, w, inv_eps, C, Log1p());
    sm += d * d;
    fp += p[j] - p[j];
    ft += t[j] - t[j];
  }
  *wing_sum = sw;
  *sq_sum = sm;
  *fin_p = fp;
  *fin_t = ft;
}

// Centres pts[68][2] in place and returns 1 / max(Frobenius norm, eps).
template <typename T>
inline T centre_and_inv_norm(T* __restrict u, T* __restrict v) {
  T su = 0, sv = 0;
#pragma omp simd reduction(+ : su, sv)
  for (int k = 0; k < kPoints; ++k) {
    su += u[k];
    sv += v[k];
  }
  su /= T(kPoints);
  sv /= T(kPoints);
  T sq = 0;
#pragma omp simd reduction(+ : sq)
  for (int k = 0; k < kPoints; ++k) {
    u[k] -= su;
    v[k] -= sv;
    sq += u[k] * u[k] + v[k] * v[k];
  }
  return T(1) / landmark::safe_norm<T>(sq);
}

template <typename T>
T dynamic_lambda(const T* pred, const T* pose, const T* shape) {
  T R[9];
  geometry::euler_to_matrix<T>(pose[0], pose[1], pose[2], R);
  alignas(64) T pu[kPoints], pv[kPoints], qu[kPoints], qv[kPoints];
  for (int k = 0; k < kPoints; ++k) {
    geometry::project_point<T>(R, shape + 3 * k, pu[k], pv[k]);
    qu[k] = pred[2 * k];
    qv[k] = pred[2 * k + 1];
  }
  const T ip = centre_and_inv_norm<T>(pu, pv);
  const T iq = centre_and_inv_norm<T>(qu, qv);
  T dist = 0;
  for (int k = 0; k < kPoints; ++k) {
    const T du = pu[k] * ip - qu[k] * iq, dv = pv[k] * ip - qv[k] * iq;
    dist += std::sqrt(du * du + dv * dv);
  }
  return dist / T(kPoints);
}

template <typename T>
void row_grad(const T* __restrict p, const T* __restrict t, T* __restrict g, T scale, T w, T eps, T lam) {
#pragma omp simd
  for (int j = 0; j < kCoords; ++j) g[j] = scale * landmark::coord_grad<T>(p[j] - t[j], w, eps, lam);
}

}  // namespace

template <typename T>
void landmark_fwd_cpu(const LandmarkArgs<T>& a, T* rows, T* lam, int32_t* flags) {
  int32_t bad_shape = 0;
  if (a.dynamic) {
    for (int k = 0; k < 3 * kPoints; ++k) bad_shape |= std::isfinite(a.shape[k]) ? 0 : landmark::kBadShape;
  }
  std::atomic<int32_t> bad{bad_shape};
  const T C = landmark::wing_c<T>(a.w, a.eps), inv_eps = T(1) / a.eps;
  parallel_for(a.B, 64, [&](int64_t b0, int64_t b1) {
    int32_t local = 0;
    for (int64_t b = b0; b < b1; ++b) {
      const T* p = a.pred + b * kCoords;
      const T* t = a.target + b * kCoords;
      const T* pose = a.pose + 3 * b;
      T sw, sm, fp, ft;
      row_sums<T>(p, t, a.w, inv_eps, C, &sw, &sm, &fp, &ft);
      if (fp != T(0)) local |= landmark::kBadPred;
      if (ft != T(0)) local |= landmark::kBadTarget;
      if (!(std::isfinite(pose[0]) && std::isfinite(pose[1]) && std::isfinite(pose[2]))) local |= landmark::kBadPose;
      const T l = a.dynamic ? dynamic_lambda<T>(p, pose, a.shape) : a.lambda;
      lam[b] = l;
      rows[b] = (sw + l * sm) / T(kCoords);
    }
    if (local) bad.fetch_or(local);
  });
  flags[0] |= bad.load();
}

template <typename T>
void landmark_bwd_cpu(const LandmarkArgs<T>& a, const T* lam, const T* grad_rows, T* dpred) {
  parallel_for(a.B, 64, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      row_grad<T>(a.pred + b * kCoords, a.target + b * kCoords, dpred + b * kCoords, grad_rows[b] / T(kCoords), a.w,
                  a.eps, lam[b]);
    }
  });
}

template <typename T>
void euler_to_matrix_cpu(const T* pose, int64_t n, T* R) {
  for (int64_t i = 0; i < n; ++i)
    geometry::euler_to_matrix<T>(pose[3 * i], pose[3 * i + 1], pose[3 * i + 2], R + 9 * i);
}

template void landmark_fwd_cpu<float>(const LandmarkArgs<float>&, float*, float*, int32_t*);
template void landmark_fwd_cpu<double>(const LandmarkArgs<double>&, double*, double*, int32_t*);
template void landmark_bwd_cpu<float>(const LandmarkArgs<float>&, const float*, const float*, float*);
template void landmark_bwd_cpu<double>(const LandmarkArgs<double>&, const double*, const double*, double*);
template void euler_to_matrix_cpu<float>(const float*, int64_t, float*);
template void euler_to_matrix_cpu<double>(const double*, int64_t, double*);

PYFACE_CPU_NAMESPACE_END
