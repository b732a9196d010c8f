// Shared by the CPU and CUDA backends: the host/device qualifier, scalar-type
// codes and float conversions for the 16-bit storage types.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PYFACE_HD __host__ __device__ __forceinline__
#else
#define PYFACE_HD inline
#endif

namespace pyface {

// Scalar-type codes passed from Python (pyface/ops/_ext.py::DTYPE_CODES).
enum class DType : int { Float32 = 0, Float16 = 1, BFloat16 = 2, Float64 = 3 };

// 16-bit storage on the host; the CUDA backend uses __half / __nv_bfloat16.
struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

inline float to_float(float v) { return v; }
inline float to_float(double v) { return static_cast<float>(v); }
inline float to_float(bf16_t v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float to_float(f16_t v) {
  const uint32_t h = v.bits;
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3ffu;
      u = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Widening loads for accumulation (keeps float64 inputs exact).
inline double to_double(double v) { return v; }
inline double to_double(float v) { return v; }
inline double to_double(bf16_t v) { return to_float(v); }
inline double to_double(f16_t v) { return to_float(v); }

}  // namespace pyface
