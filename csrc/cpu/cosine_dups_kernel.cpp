#include <algorithm>
#include <vector>

#include "ops/cosine_dups.h"
#include "pyface/cosine_dups_math.h"
#include "pyface/parallel.h"

PYFACE_CPU_NAMESPACE_BEGIN

namespace {

constexpr int64_t kBlock = 32;

struct Hits {
  std::vector<int64_t> ij;
  std::vector<float> sim;
};

// Largest cosine of row[j] for j in [0, len): lets the scan skip blocks without hits.
float block_max(const float* __restrict row, const float* __restrict ib, float ia, int64_t len) {
  float m = -3.0f;
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < len; ++j) {
    const float c = dups::cosine(row[j], ia, ib[j]);
    m = c > m ? c : m;
  }
  return m;
}

void scan_row(const DupTileArgs& a, int64_t r, Hits& h) {
  const int64_t i = a.i0 + r;
  const float* row = a.buf + r * a.tb;
  const float ia = a.inv_a[r];
  for (int64_t jb = dups::first_col(i, a.j0, a.self); jb < a.tb; jb += kBlock) {
    const int64_t len = std::min(kBlock, a.tb - jb);
    if (!dups::hit(block_max(row + jb, a.inv_b + jb, ia, len), a.threshold)) continue;
    for (int64_t j = jb; j < jb + len; ++j) {
      const float c = dups::cosine(row[j], ia, a.inv_b[j]);
      if (dups::hit(c, a.threshold)) {
        h.ij.push_back(i);
        h.ij.push_back(a.j0 + j);
        h.sim.push_back(c);
      }
    }
  }
}

}  // namespace

void dup_tile_cpu(const DupTileArgs& a) {
  if (a.ta <= 0 || a.tb <= 0) return;
  const int64_t nt = parallel_chunks(a.ta, 16);
  const int64_t step = (a.ta + nt - 1) / nt;
  std::vector<Hits> hits(static_cast<size_t>(nt));
  parallel_for(nt, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t rb = t * step, re = std::min(a.ta, rb + step);
      for (int64_t r = rb; r < re; ++r) scan_row(a, r, hits[t]);
    }
  });
  int64_t total = 0;
  for (const Hits& h : hits) total += static_cast<int64_t>(h.sim.size());
  const int64_t start = *a.counter;
  *a.counter = start + total;
  if (start + total > a.capacity) return;  // caller grows the output and reruns
  int64_t k = start;
  for (const Hits& h : hits) {
    std::copy(h.ij.begin(), h.ij.end(), a.pairs + 2 * k);
    std::copy(h.sim.begin(), h.sim.end(), a.sim + k);
    k += static_cast<int64_t>(h.sim.size());
  }
}

void dup_second_cpu(const DupSecondArgs& a) {
  parallel_for(a.end - a.begin, 4096, [&](int64_t b, int64_t e) {
    for (int64_t k = a.begin + b; k < a.begin + e; ++k) {
      const int64_t r = a.pairs[2 * k] - a.i0, c = a.pairs[2 * k + 1] - a.j0;
      const float s = dups::cosine(a.buf2[r * a.tb + c], a.inv_a2[r], a.inv_b2[c]);
      a.sim2[k] = s;
      a.keep[k] = dups::hit(s, a.threshold2) ? 1 : 0;
    }
  });
}

PYFACE_CPU_NAMESPACE_END
