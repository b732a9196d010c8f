// Landmark loss (Eq. 3-9) arithmetic shared by the CPU and CUDA backends.
//
// Per sample b over the 136 coordinates d = pred - target:
//   wing_b = mean Wing(|d|), Wing(a) = w ln(1 + a/eps) if a < w else a - C,
//   C = w - w ln(1 + w/eps);  mse_b = mean d^2;  loss_b = wing_b + lambda_b mse_b.
// Dynamic lambda_b = mean over the 68 points of |N(P_b)_k - N(pred_b)_k|, P_b the
// mean shape rotated by pose_b and projected orthographically, N centring at the
// centroid and dividing by the Frobenius norm (clamped to kNormEps). lambda_b is
// a weight: the gradient is taken with lambda_b held constant.
#pragma once
#include <cmath>

#include "pyface/common.h"

namespace pyface {
namespace landmark {

#if !defined(__CUDA_ARCH__)
using std::fabs;
using std::log1p;
using std::sqrt;
#endif

constexpr int kPoints = 68;
constexpr int kCoords = 2 * kPoints;
constexpr double kNormEps = 1e-12;

// Bits of the non-finite-input flags word written by the forward kernels.
enum Flag : int { kBadPred = 1, kBadTarget = 2, kBadPose = 4, kBadShape = 8 };

template <typename T>
PYFACE_HD T wing_c(T w, T eps) {
  return w - w * log1p(w / eps);
}

// Wing(a) for a = |d| >= 0; log1p is passed in so the CPU can use a vectorisable one.
template <typename T, typename Log1p>
PYFACE_HD T wing(T a, T w, T inv_eps, T C, Log1p log1p_fn) {
  const T inner = w * log1p_fn(a * inv_eps);
  return a < w ? inner : a - C;
}

// d/dd [Wing(|d|) + lam d^2] (before the 1/136 of the mean). Zero Wing slope at d = 0,
// as torch.abs's subgradient.
template <typename T>
PYFACE_HD T coord_grad(T d, T w, T eps, T lam) {
  // Computed unconditionally and selected (no division under a branch) so the host
  // compiler can vectorise without masked instructions.
  const T a = fabs(d);
  const T inner = w / (eps + a);
  const T slope = a < w ? inner : T(1);
  const T sgn = static_cast<T>(d > T(0)) - static_cast<T>(d < T(0));
  return slope * sgn + T(2) * lam * d;
}

template <typename T>
PYFACE_HD T safe_norm(T sq) {
  const T n = sqrt(sq);
  return n > T(kNormEps) ? n : T(kNormEps);
}

}  // namespace landmark
}  // namespace pyface
