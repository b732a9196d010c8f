// Head-pose rotation shared by the CPU and CUDA backends; the Python twin is
// pyface/geometry.py::euler_to_matrix (same expressions, cross-checked by tests).
//
// Image axes: x right, y down, z into the screen. Pose (yaw, pitch, roll) in
// degrees; R = Rx(-pitch) Ry(yaw) Rz(roll) with right-handed elementary
// rotations, the 300W-LP / AFLW2000-3D label convention (see geometry.py).
#pragma once
#include <cmath>

#include "pyface/common.h"

namespace pyface {
namespace geometry {

#if !defined(__CUDA_ARCH__)
using std::cos;
using std::sin;
#endif

constexpr double kDegToRad = 0.017453292519943295769;

// R: row-major 3x3 output. T is float or double.
template <typename T>
PYFACE_HD void euler_to_matrix(T yaw_deg, T pitch_deg, T roll_deg, T* R) {
  const T k = static_cast<T>(kDegToRad);
  const T y = yaw_deg * k, p = pitch_deg * k, r = roll_deg * k;
  const T sy = sin(y), cy = cos(y);
  const T sp = sin(p), cp = cos(p);
  const T sr = sin(r), cr = cos(r);
  R[0] = cy * cr;
  R[1] = -cy * sr;
  R[2] = sy;
  R[3] = cp * sr - sp * sy * cr;
  R[4] = cp * cr + sp * sy * sr;
  R[5] = sp * cy;
  R[6] = -sp * sr - cp * sy * cr;
  R[7] = -sp * cr + cp * sy * sr;
  R[8] = cp * cy;
}

// Orthographic projection of one 3D point X[3]: (u, v) = rows 0-1 of R @ X.
template <typename T>
PYFACE_HD void project_point(const T* R, const T* X, T& u, T& v) {
  u = R[0] * X[0] + R[1] * X[1] + R[2] * X[2];
  v = R[3] * X[0] + R[4] * X[1] + R[5] * X[2];
}

}  // namespace geometry
}  // namespace pyface
