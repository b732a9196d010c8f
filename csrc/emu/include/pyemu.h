// pyemu: run CUDA C++ kernels on the CPU for tests. Each block runs its threads as
// fibers on one OS thread; __syncthreads and warp collectives are real
// rendezvous points (warp = 32 consecutive linear thread ids), so code that
// relies on them gets CUDA's semantics, and divergent collectives are reported.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#undef __forceinline__
#define __forceinline__ inline
#undef __align__
#define __align__(n) alignas(n)

namespace pyemu {
extern thread_local uint3 t_threadIdx, t_blockIdx;
extern thread_local dim3 t_blockDim, t_gridDim;

enum Op : int { kShflIdx, kShflXor, kShflDown, kShflUp, kBallot, kAll, kAny, kSyncwarp };
// All warp collectives go through here: value bits in, result bits out.
uint64_t warp_collective(Op op, unsigned mask, uint64_t bits, int arg, int width);
void syncthreads();
void* block_shared(const void* site, size_t bytes, size_t align);
void* dynamic_shared();
void fail(const char* fmt, ...);

using Body = void (*)(void*);
// name: the kernel expression as written at the launch; sig: its parameter types.
cudaError_t launch_raw(const char* name, const char* sig, dim3 grid, dim3 block, size_t smem, void* stream, Body body,
                       void* ctx);
const char* demangle_type(const char* mangled);  // result lives as long as the process

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type over 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <class... P, class... A>
cudaError_t launch(const char* name, void (*k)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, A&&... a) {
  static const char* const sig = demangle_type(typeid(void (*)(P...)).name());
  // Like a real launch: arguments converted to the parameter types and copied once.
  struct Ctx {
    void (*k)(P...);
    std::tuple<std::decay_t<P>...> args;
  } ctx{k, std::tuple<std::decay_t<P>...>(std::forward<A>(a)...)};
  Body body = [](void* c) {
    Ctx* x = static_cast<Ctx*>(c);
    std::apply([&](auto... v) { x->k(v...); }, x->args);  // each thread gets its own copies
  };
  return launch_raw(name, sig, grid, block, smem, st, body, &ctx);
}
}  // namespace pyemu

// Built-in variables (per fiber; the scheduler sets them on every switch).
#define threadIdx (::pyemu::t_threadIdx)
#define blockIdx (::pyemu::t_blockIdx)
#define blockDim (::pyemu::t_blockDim)
#define gridDim (::pyemu::t_gridDim)
constexpr int warpSize = 32;

#define PYEMU_LAUNCH(kern, grid, block, smem, stream, ...) \
  ::pyemu::launch(#kern, kern, dim3(grid), dim3(block), static_cast<size_t>(smem), stream, ##__VA_ARGS__)
// __shared__ T name dims;  ->  one array per block, poisoned (0xff bytes) at block start
#define PYEMU_SHARED(T, name, dims)                                   \
  using pyemu_shared_t_##name = T dims;                               \
  static const char pyemu_site_##name = 0;                            \
  pyemu_shared_t_##name& name = *static_cast<pyemu_shared_t_##name*>( \
      ::pyemu::block_shared(&pyemu_site_##name, sizeof(pyemu_shared_t_##name), alignof(pyemu_shared_t_##name)))
#define PYEMU_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::pyemu::dynamic_shared());

inline void __syncthreads() { ::pyemu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::pyemu::warp_collective(::pyemu::kSyncwarp, mask, 0, 0, 32); }
template <class T>
inline T __shfl_sync(unsigned m, T v, int src, int w = 32) {
  return ::pyemu::from_bits<T>(::pyemu::warp_collective(::pyemu::kShflIdx, m, ::pyemu::to_bits(v), src, w));
}
template <class T>
inline T __shfl_xor_sync(unsigned m, T v, int lm, int w = 32) {
  return ::pyemu::from_bits<T>(::pyemu::warp_collective(::pyemu::kShflXor, m, ::pyemu::to_bits(v), lm, w));
}
template <class T>
inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) {
  return ::pyemu::from_bits<T>(::pyemu::warp_collective(::pyemu::kShflDown, m, ::pyemu::to_bits(v), int(d), w));
}
template <class T>
inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) {
  return ::pyemu::from_bits<T>(::pyemu::warp_collective(::pyemu::kShflUp, m, ::pyemu::to_bits(v), int(d), w));
}
inline unsigned __ballot_sync(unsigned m, int p) {
  return unsigned(::pyemu::warp_collective(::pyemu::kBallot, m, p != 0, 0, 32));
}
inline int __all_sync(unsigned m, int p) { return int(::pyemu::warp_collective(::pyemu::kAll, m, p != 0, 0, 32)); }
inline int __any_sync(unsigned m, int p) { return int(::pyemu::warp_collective(::pyemu::kAny, m, p != 0, 0, 32)); }
inline unsigned __activemask() { return 0xffffffffu; }

// Bit and reinterpretation intrinsics.
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline float __int_as_float(int x) { return ::pyemu::from_bits<float>(uint32_t(x)); }
inline int __float_as_int(float x) { return int(uint32_t(::pyemu::to_bits(x))); }
inline float __uint_as_float(unsigned x) { return ::pyemu::from_bits<float>(x); }
inline unsigned __float_as_uint(float x) { return uint32_t(::pyemu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return ::pyemu::from_bits<double>(uint64_t(x)); }
inline long long __double_as_longlong(double x) { return (long long)::pyemu::to_bits(x); }

// Atomics (real atomic builtins: blocks may run on several OS threads).
inline float atomicAdd(float* p, float v) {
  float old = *p;
  float nv;
  do {
    nv = old + v;
  } while (!__atomic_compare_exchange(p, &old, &nv, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  return old;
}
inline double atomicAdd(double* p, double v) {
  double old = *p;
  double nv;
  do {
    nv = old + v;
  } while (!__atomic_compare_exchange(p, &old, &nv, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
  return old;
}
#define PYEMU_INT_ATOMICS(T)                                                                             \
  inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }                   \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }                   \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }                     \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }                   \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }                   \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }                 \
  inline T atomicMax(T* p, T v) {                                                                        \
    T o = *p;                                                                                            \
    while (o < v && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                    \
    return o;                                                                                            \
  }                                                                                                      \
  inline T atomicMin(T* p, T v) {                                                                        \
    T o = *p;                                                                                            \
    while (v < o && !__atomic_compare_exchange_n(p, &o, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                    \
    return o;                                                                                            \
  }                                                                                                      \
  inline T atomicCAS(T* p, T cmp, T v) {                                                                 \
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);                  \
    return cmp;                                                                                          \
  }
PYEMU_INT_ATOMICS(int)
PYEMU_INT_ATOMICS(unsigned)
PYEMU_INT_ATOMICS(unsigned long long)
#undef PYEMU_INT_ATOMICS
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Device math: CUDA gives float overloads of the C names in the global namespace.
using std::atan2;
using std::ceil;
using std::cos;
using std::exp;
using std::expm1;
using std::fabs;
using std::floor;
using std::fmax;
using std::fmin;
using std::isfinite;
using std::isinf;
using std::isnan;
using std::log;
using std::log1p;
using std::pow;
using std::sin;
using std::sqrt;
using std::tanh;
