// Cosine duplicate search (Algorithm 2 of Lee et al. 2024) arithmetic shared by
// the CPU and CUDA backends: cos(a_i, b_j) = raw_ij * inv_norm_a_i * inv_norm_b_j
// with raw = a @ b^T; a pair is a hit when cos >= threshold (and, in self-search,
// j > i).
#pragma once
#include "pyface/common.h"

namespace pyface {
namespace dups {

PYFACE_HD float cosine(float raw, float inv_a, float inv_b) { return raw * inv_a * inv_b; }

PYFACE_HD bool hit(float cos, float threshold) { return cos >= threshold; }

// First column (tile-local) a row may pair with: in self-search only j > i.
PYFACE_HD int64_t first_col(int64_t i, int64_t j0, bool self) {
  if (!self) return 0;
  const int64_t c = i + 1 - j0;
  return c > 0 ? c : 0;
}

}  // namespace dups
}  // namespace pyface
