// The lane layout of the CPU involution kernels: a group's channels of a pixel contiguous.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "simd.h"

namespace invnas_cpu {

template <typename T>
struct Lanes {
  using V = typename Simd<T>::V;
  V* data = nullptr;
  int64_t capacity = 0;

  Lanes() = default;
  Lanes(const Lanes&) = delete;
  Lanes& operator=(const Lanes&) = delete;
  ~Lanes() { std::free(data); }

  V* get(int64_t size, bool zero) {
    if (size > capacity) {
      std::free(data);
      data = static_cast<V*>(std::aligned_alloc(64, std::max<int64_t>(1, size) * sizeof(V)));
      if (data == nullptr) throw std::bad_alloc();
      capacity = size;
    }
    if (zero) std::memset(static_cast<void*>(data), 0, size * sizeof(V));
    return data;
  }
};

template <typename T>
INVNAS_INLINE typename Simd<T>::V load(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Lane layout: pixel p's channels c < cg at vector p * nv + c / L, lane c % L; lanes from cg on
// are zero. to_lanes copies npix pixels of the channel planes src + c * stride into dst (every
// lane written), from_lanes copies them back; both transpose L x L blocks in registers.
template <typename T>
INVNAS_INLINE void to_lanes(const T* src, int64_t stride, int64_t cg, int64_t npix, int64_t nv,
                            typename Simd<T>::V* dst) {
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::L;
  for (int64_t n = 0; n < nv; ++n) {
    const int64_t c0 = n * L, cn = std::min<int64_t>(L, cg - c0);
    const T* s0 = src + c0 * stride;
    int64_t p = 0;
    for (; p + L <= npix; p += L) {
      V r[L];
      for (int k = 0; k < L; ++k) r[k] = k < cn ? load(s0 + k * stride + p) : V{};
      transpose<T>(r);
      for (int k = 0; k < L; ++k) dst[(p + k) * nv + n] = r[k];
    }
    for (; p < npix; ++p) {
      V v{};
      for (int64_t k = 0; k < cn; ++k) v[k] = s0[k * stride + p];
      dst[p * nv + n] = v;
    }
  }
}

template <typename T>
INVNAS_INLINE void from_lanes(const typename Simd<T>::V* src, int64_t nv, int64_t cg,
                              int64_t npix, T* dst, int64_t stride) {
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::L;
  for (int64_t n = 0; n < nv; ++n) {
    const int64_t c0 = n * L, cn = std::min<int64_t>(L, cg - c0);
    T* d0 = dst + c0 * stride;
    int64_t p = 0;
    for (; p + L <= npix; p += L) {
      V r[L];
      for (int k = 0; k < L; ++k) r[k] = src[(p + k) * nv + n];
      transpose<T>(r);
      for (int k = 0; k < cn; ++k) std::memcpy(d0 + k * stride + p, &r[k], sizeof(V));
    }
    for (; p < npix; ++p) {
      const V v = src[p * nv + n];
      for (int64_t k = 0; k < cn; ++k) d0[k * stride + p] = v[k];
    }
  }
}

// The input of one group in lane layout with the involution's zero padding: buffer row r holds
// padded input row row0 + r, i.e. image row row0 + r - ph, over the padded width W + 2 pw.

}  // namespace invnas_cpu
