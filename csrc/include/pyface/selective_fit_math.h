// Selective fitting (Algorithm 1, lines 17-33 of Lee et al. 2024) arithmetic
// shared by the CPU and CUDA backends.
//
// Per image: S = the valid samples whose landmarks and pose are all finite. The
// distance of a sample to a mean shape is the mean over the P points of the
// Euclidean point distance, divided by the face size. While |S| > keep, the
// sample farthest from the mean of S leaves S (ties: the lowest sample index).
// The result is the mean of S; it is accepted when |S| >= min_samples and every
// sample of S is within `threshold` of that mean.
#pragma once
#include <cmath>

#include "pyface/common.h"

namespace pyface {
namespace selfit {

#if !defined(__CUDA_ARCH__)
using std::sqrt;
#endif

// True for finite v (NaN and +-inf give NaN - NaN); needs no libm on either side.
template <typename T>
PYFACE_HD bool finite(T v) {
  return (v - v) == T(0);
}

// Euclidean distance of one landmark to its mean position.
template <typename T>
PYFACE_HD T point_dist(T x, T y, T mx, T my) {
  const T dx = x - mx, dy = y - my;
  return sqrt(dx * dx + dy * dy);
}

// Normalised distance from the sum of the P point distances.
template <typename T>
PYFACE_HD T sample_dist(T sum_point_dist, int64_t P, T face_size) {
  return sum_point_dist / T(P) / face_size;
}

// Samples are visited in ascending index order: a later sample replaces the
// current farthest only when strictly farther, so ties keep the lowest index.
template <typename T>
PYFACE_HD bool farther(T d, T best) {
  return d > best;
}

PYFACE_HD bool accept(int64_t n, int64_t min_samples, bool all_within) { return n >= min_samples && all_within; }

template <typename T>
PYFACE_HD bool within(T d, T threshold) {
  return d <= threshold;
}

}  // namespace selfit
}  // namespace pyface
