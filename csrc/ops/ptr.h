// Raw pointers cross the Python boundary as integers (tensor.data_ptr()).
#pragma once
#include <cstdint>

namespace pyface {
template <typename T>
inline T* ptr(uintptr_t p) { return reinterpret_cast<T*>(p); }
inline void* stream_ptr(uintptr_t s) { return reinterpret_cast<void*>(s); }
}  // namespace pyface
