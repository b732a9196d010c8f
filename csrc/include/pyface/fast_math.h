// exp() that the host compiler can vectorise (no libm call in the loop); the
// device uses expf. Relative error about 2e-7 on the range the kernels use.
#pragma once
#include <cmath>

#include "pyface/common.h"

namespace pyface {

PYFACE_HD float vexpf(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float t = x * 1.44269504088896341f;
  // Round to nearest with the 1.5*2^23 trick: vectorises without SSE4.1.
  const float k = (t + 12582912.0f) - 12582912.0f;
  const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
#endif
}

PYFACE_HD double vexpf(double x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

}  // namespace pyface

namespace pyface {

// log1p() for x >= 0 that the host compiler can vectorise (Cephes logf polynomial,
// log1p(x) = log(u) * x / (u - 1) with u = 1 + x to keep small x accurate); the
// device uses log1pf. Relative error about 2e-7.
PYFACE_HD float vlog1pf(float x) {
#if defined(__CUDA_ARCH__)
  return log1pf(x);
#else
  const float u = 1.0f + x;
  int32_t bits;
  std::memcpy(&bits, &u, 4);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
  bits = (bits & 0x807fffff) | 0x3f000000;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &bits, 4);
  const bool lo = m < 0.707106781186547524f;
  e = lo ? e - 1.0f : e;
  m = lo ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  const float lg = m + y + 0.693359375f * e;
  const float den = u - 1.0f;
  return den == 0.0f ? x : lg * (x / den);
#endif
}

PYFACE_HD double vlog1pf(double x) {
#if defined(__CUDA_ARCH__)
  return log1p(x);
#else
  return std::log1p(x);
#endif
}

}  // namespace pyface
