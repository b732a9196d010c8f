#include <algorithm>
#include <limits>
#include <vector>

#include "ops/lpmc.h"
#include "pyface/fast_math.h"
#include "pyface/lpmc_math.h"
#include "pyface/parallel.h"

PYFACE_CPU_NAMESPACE_BEGIN

namespace {

// Scales a row of raw products to logits in place; returns (max, sum exp(v - max)).
template <typename T>
void fwd_row(T* __restrict row, const T* __restrict iw, int64_t n, T sx, int64_t y, T target, T* out_max, T* out_sum) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) row[j] = sx * row[j] * iw[j];
  if (y >= 0 && y < n) row[y] = target;
  T mx = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < n; ++j) mx = row[j] > mx ? row[j] : mx;
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) sum += vexpf(row[j] - mx);
  *out_max = mx;
  *out_sum = sum;
}

// Turns a row segment of raw products into H = G * sc in place; returns sum G*cos
// and adds G*cos into colsum.
template <typename T>
T bwd_row(T* __restrict row, const T* __restrict iw, T* __restrict colsum, int64_t len, T ix, T g, T s, T l, int64_t y,
          T gt) {
  T rsum = 0;
#pragma omp simd reduction(+ : rsum)
  for (int64_t j = 0; j < len; ++j) {
    const T sc = ix * iw[j];
    const T c = row[j] * sc;
    const T gn = g * s * vexpf(s * c - l);
    const T G = (j == y) ? gt : gn;
    const T gc = G * c;
    rsum += gc;
    colsum[j] += gc;
    row[j] = G * sc;
  }
  return rsum;
}

}  // namespace

template <typename T>
void lpmc_fwd_chunk_cpu(const LpmcArgs<T>& a, T* run_max, T* run_sum, T* tgt) {
  const int64_t n = a.n;
  parallel_for(a.B, 8, [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) {
      const int64_t label = a.labels[i];
      if (label == a.ignore_index) continue;
      T* row = a.buf + i * n;
      const T ix = a.inv_norm_x[i];
      const int64_t y = label - a.c0;
      T target = 0;
      if (y >= 0 && y < n) {
        const T c = row[y] * ix * a.inv_norm_w[y];
        target = lpmc::target_logit<T>(c, a.margins[i], a.scale, a.arc).logit;
        tgt[i] = target;
      }
      T mx, sum;
      fwd_row<T>(row, a.inv_norm_w, n, a.scale * ix, y, target, &mx, &sum);
      lpmc::lse_merge<T>(run_max[i], run_sum[i], mx, sum);
    }
  });
}

template <typename T>
void lpmc_bwd_chunk_cpu(const LpmcArgs<T>& a, const T* lse, const T* grad_rows, T* rx, T* rw) {
  const int64_t B = a.B, n = a.n;
  // Column ranges in parallel: each owns its rw entries; per-row partial sums
  // are reduced afterwards in a fixed order (deterministic for a thread count).
  const int64_t nt = parallel_chunks(n, 256);
  const int64_t step = (n + nt - 1) / nt;
  std::vector<T> partial(static_cast<size_t>(nt * B), T(0));
  parallel_for(nt, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t jb = t * step, je = std::min(n, jb + step);
      if (jb >= je) continue;
      std::vector<T> colsum(static_cast<size_t>(je - jb), T(0));
      const T* iw = a.inv_norm_w;
      const T s = a.scale;
      for (int64_t i = 0; i < B; ++i) {
        T* row = a.buf + i * n;
        const int64_t label = a.labels[i];
        if (label == a.ignore_index) {
          std::fill(row + jb, row + je, T(0));
          continue;
        }
        const T ix = a.inv_norm_x[i];
        const T g = grad_rows[i];
        const T l = lse[i];
        const int64_t y = label - a.c0;
        // The target's coefficient is computed once and blended in the loop.
        T gt = 0;
        if (y >= jb && y < je) {
          const T c = row[y] * ix * iw[y];
          const lpmc::Target<T> tg = lpmc::target_logit<T>(c, a.margins[i], s, a.arc);
          gt = g * tg.dlogit_dcos * (vexpf(tg.logit - l) - T(1));
        }
        partial[t * B + i] = bwd_row<T>(row + jb, iw + jb, colsum.data(), je - jb, ix, g, s, l, y - jb, gt);
      }
      for (int64_t j = jb; j < je; ++j) rw[j] = colsum[j - jb] * iw[j] * iw[j];
    }
  });
  for (int64_t i = 0; i < B; ++i) {
    T acc = 0;
    for (int64_t t = 0; t < nt; ++t) acc += partial[t * B + i];
    rx[i] += acc * a.inv_norm_x[i] * a.inv_norm_x[i];
  }
}

template void lpmc_fwd_chunk_cpu<float>(const LpmcArgs<float>&, float*, float*, float*);
template void lpmc_fwd_chunk_cpu<double>(const LpmcArgs<double>&, double*, double*, double*);
template void lpmc_bwd_chunk_cpu<float>(const LpmcArgs<float>&, const float*, const float*, float*, float*);
template void lpmc_bwd_chunk_cpu<double>(const LpmcArgs<double>&, const double*, const double*, double*, double*);

PYFACE_CPU_NAMESPACE_END
