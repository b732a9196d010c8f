// LPMC margin-softmax chunk epilogues. The caller computes raw = x @ w_c^T for
// a class chunk [c0, c0 + n) into a buffer buf [B, n] (row-major, accumulation
// type T = float, or double for float64 inputs) and calls these on it; see
// pyface/ops/lpmc.py for the loop around them.
#pragma once
#include <cstdint>

#include "pyface/cpu_isa.h"

namespace pyface {

template <typename T>
struct LpmcArgs {
  T* buf;  // [B, n] raw dot products in; logits / H out
  int64_t B, n, c0;
  const T* inv_norm_x;    // [B]
  const T* inv_norm_w;    // [n] (already offset to the chunk)
  const int64_t* labels;  // [B]
  const T* margins;       // [B]
  T scale;
  bool arc;
  int64_t ignore_index;
};

PYFACE_CPU_KERNELS(
// Forward: fold the chunk into the running log-sum-exp (run_max, run_sum [B])
// and write the target logit tgt[B] for rows whose label is in the chunk.
template <typename T>
void lpmc_fwd_chunk_cpu(const LpmcArgs<T>& a, T* run_max, T* run_sum, T* tgt);
// Backward: with G_ij = dL_i/dcos_ij * grad_rows_i, overwrite buf with
// H_ij = G_ij * inv_norm_x_i * inv_norm_w_j, add inv_norm_x_i^2 * sum_j G_ij cos_ij
// into rx[B] and write rw[j] = inv_norm_w_j^2 * sum_i G_ij cos_ij ([n]).
template <typename T>
void lpmc_bwd_chunk_cpu(const LpmcArgs<T>& a, const T* lse, const T* grad_rows, T* rx, T* rw);
)

#ifdef PYFACE_WITH_CUDA
template <typename T>
void lpmc_fwd_chunk_cuda(const LpmcArgs<T>& a, T* run_max, T* run_sum, T* tgt, void* stream);
// scratch: T [B * ceil(n / 32)] for deterministic per-row partial sums.
template <typename T>
void lpmc_bwd_chunk_cuda(const LpmcArgs<T>& a, const T* lse, const T* grad_rows, T* rx, T* rw, T* scratch,
                         void* stream);
#endif

}  // namespace pyface
