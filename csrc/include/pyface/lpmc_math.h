// LPMC margin softmax (Eq. 10) arithmetic shared by the CPU and CUDA backends.
//
// For row i and class j: cos_ij = raw_ij * inv_norm_x_i * inv_norm_w_j with
// raw = x @ w^T (un-normalised). Non-target logits are s*cos_ij. The target
// logit is s*(cos - m) ("cosine", CosFace form) or s*cos(theta + m) ("arc"),
// where theta + m >= pi falls back to s*(cos - m*sin(m)).
#pragma once
#include <cmath>

#include "pyface/common.h"

namespace pyface {
namespace lpmc {

#if !defined(__CUDA_ARCH__)
using std::cos;
using std::exp;
using std::sin;
using std::sqrt;
#endif

// |cos| is clamped to 1 - kCosEps before the arc form takes sqrt(1 - cos^2);
// the derivative is zero where the clamp is active (as torch.clamp's is).
constexpr float kCosEps = 1e-6f;
constexpr float kPi = 3.14159265358979323846f;

template <typename T>
struct Target {
  T logit;        // target logit
  T dlogit_dcos;  // its derivative with respect to cos_y
};

// T is float or double (the accumulation type).
template <typename T>
PYFACE_HD Target<T> target_logit(T c, T m, T s, bool arc) {
  if (!arc) return {s * (c - m), s};
  bool fallback;
  const T sm = sin(m), cm = cos(m);
  if (m >= T(kPi)) {
    fallback = true;
  } else if (m <= T(0)) {
    fallback = false;
  } else {
    fallback = c <= -cm;  // theta + m >= pi  <=>  cos(theta) <= cos(pi - m)
  }
  if (fallback) return {s * (c - m * sm), s};
  const T lo = T(-1) + T(kCosEps), hi = T(1) - T(kCosEps);
  T cc = c < lo ? lo : c;
  cc = cc > hi ? hi : cc;
  const T sn = sqrt(T(1) - cc * cc);
  const T val = cc * cm - sn * sm;
  const T d = (cc == c) ? cm + sm * cc / sn : T(0);
  return {s * val, s * d};
}

// Merge a chunk's (max, sum of exp(v - max)) into a running pair.
template <typename T>
PYFACE_HD void lse_merge(T& run_max, T& run_sum, T chunk_max, T chunk_sum) {
  if (chunk_sum <= T(0)) return;
  if (run_sum <= T(0)) {
    run_max = chunk_max;
    run_sum = chunk_sum;
  } else if (chunk_max > run_max) {
    run_sum = run_sum * exp(run_max - chunk_max) + chunk_sum;
    run_max = chunk_max;
  } else {
    run_sum += chunk_sum * exp(chunk_max - run_max);
  }
}

}  // namespace lpmc
}  // namespace pyface
