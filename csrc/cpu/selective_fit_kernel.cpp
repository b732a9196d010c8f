#include <algorithm>
#include <limits>
#include <vector>

#include "ops/selective_fit.h"
#include "pyface/parallel.h"
#include "pyface/selective_fit_math.h"

PYFACE_CPU_NAMESPACE_BEGIN

namespace {

template <typename T>
void add_row(T* __restrict acc, const T* __restrict row, int64_t P2) {
#pragma omp simd
  for (int64_t q = 0; q < P2; ++q) acc[q] += row[q];
}

// mean[0, 2P) = mean of the samples idx[0, n) of x [N, 2P] (summed in index order).
template <typename T>
void mean_shape(const T* x, const int* idx, int n, int64_t P2, T* mean) {
  std::fill(mean, mean + P2, T(0));
  for (int k = 0; k < n; ++k) add_row(mean, x + idx[k] * P2, P2);
  const T cnt = T(n);
  for (int64_t q = 0; q < P2; ++q) mean[q] /= cnt;
}

// Sum over the P points of |x_p - mean_p|.
template <typename T>
T sum_point_dist(const T* __restrict row, const T* __restrict mean, int64_t P) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t p = 0; p < P; ++p) acc += selfit::point_dist(row[2 * p], row[2 * p + 1], mean[2 * p], mean[2 * p + 1]);
  return acc;
}

template <typename T>
bool sample_finite(const T* row, int64_t P2, const T* pose) {
  bool ok = selfit::finite(pose[0]) && selfit::finite(pose[1]) && selfit::finite(pose[2]);
  for (int64_t q = 0; q < P2; ++q) ok &= selfit::finite(row[q]);
  return ok;
}

}  // namespace

template <typename T>
void selective_fit_cpu(const SelFitArgs<T>& a) {
  const int64_t N = a.N, P = a.P, P2 = 2 * a.P;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  parallel_for(a.B, 16, [&](int64_t b0, int64_t b1) {
    std::vector<T> mean(static_cast<size_t>(P2));
    std::vector<int> idx(static_cast<size_t>(N));
    for (int64_t b = b0; b < b1; ++b) {
      const T* x = a.samples + b * N * P2;
      const T* pz = a.poses + b * N * 3;
      const uint8_t* valid = a.valid + b * N;
      const T fs = a.face_size[b];
      int n = 0;
      for (int64_t s = 0; s < N; ++s) {
        if (valid[s] && sample_finite(x + s * P2, P2, pz + s * 3)) idx[n++] = static_cast<int>(s);
      }
      while (n > a.keep) {
        mean_shape(x, idx.data(), n, P2, mean.data());
        int far = 0;
        T best = -std::numeric_limits<T>::infinity();
        for (int k = 0; k < n; ++k) {
          const T d = selfit::sample_dist(sum_point_dist(x + idx[k] * P2, mean.data(), P), P, fs);
          if (selfit::farther(d, best) || k == 0) {
            best = d;
            far = k;
          }
        }
        std::copy(idx.begin() + far + 1, idx.begin() + n, idx.begin() + far);
        --n;
      }
      T* lm = a.landmarks + b * P2;
      T* po = a.pose + b * 3;
      uint8_t* kept = a.kept + b * N;
      std::fill(kept, kept + N, uint8_t(0));
      if (n == 0) {
        std::fill(lm, lm + P2, nan);
        std::fill(po, po + 3, nan);
        a.accepted[b] = 0;
        continue;
      }
      mean_shape(x, idx.data(), n, P2, lm);
      bool all_within = true;
      T ps[3] = {0, 0, 0};
      for (int k = 0; k < n; ++k) {
        const T d = selfit::sample_dist(sum_point_dist(x + idx[k] * P2, lm, P), P, fs);
        all_within = all_within && selfit::within(d, a.threshold);
        for (int c = 0; c < 3; ++c) ps[c] += pz[idx[k] * 3 + c];
        kept[idx[k]] = 1;
      }
      for (int c = 0; c < 3; ++c) po[c] = ps[c] / T(n);
      a.accepted[b] = selfit::accept(n, a.min_samples, all_within) ? 1 : 0;
    }
  });
}

template void selective_fit_cpu<float>(const SelFitArgs<float>&);
template void selective_fit_cpu<double>(const SelFitArgs<double>&);

PYFACE_CPU_NAMESPACE_END
