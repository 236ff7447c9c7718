// Geometry, work scheduling and pixel blocks shared by the CPU involution kernels.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "lanes.h"

namespace invnas_cpu {

struct Geometry {
  int64_t B, C, H, W, G, HO, WO;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t cg() const { return C / G; }
  int64_t taps() const { return kh * kw; }
  int64_t plane_out() const { return HO * WO; }  // distance between two taps of the weight
  int64_t padded_w() const { return W + 2 * pw; }
  // Plane of the first channel of (batch, group) bg in a (B, C, ...) tensor.
  int64_t group_plane(int64_t bg) const { return (bg / G) * C + (bg % G) * cg(); }
};

// Vectors of Simd<T>::L lanes that hold one group's channels.
template <typename T>
INVNAS_INLINE int64_t group_vectors(const Geometry& g) {
  return (g.cg() + Simd<T>::L - 1) / Simd<T>::L;
}

// Items handed out in chunks to whichever thread asks next: a thread that the OS delays (other
// processes on the cores) just takes fewer chunks instead of holding everyone at the barrier.
class WorkQueue {
 public:
  WorkQueue(int64_t items, int64_t chunk) : items_(items), chunk_(chunk) {}
  // Moves item to the caller's next item, taking a new chunk when [item, end) runs out; start
  // with item = end = 0. False when every item has been handed out.
  bool next(int64_t& item, int64_t& end) {
    if (++item < end) return true;
    item = next_.fetch_add(chunk_, std::memory_order_relaxed);
    end = std::min(item + chunk_, items_);
    return item < items_;
  }
  int64_t chunks() const { return (items_ + chunk_ - 1) / chunk_; }

 private:
  std::atomic<int64_t> next_{0};
  const int64_t items_, chunk_;
};

// Range [lo, hi) of kernel taps along one axis that read inside [0, size) for some output
// index in [first, last], where output index o and tap k read o * stride - pad + k * dil.
INVNAS_INLINE void tap_range(int64_t first, int64_t last, int64_t stride, int64_t pad,
                             int64_t dil, int64_t size, int64_t taps, int64_t& lo, int64_t& hi) {
  const int64_t need_lo = pad - last * stride;  // k * dil >= need_lo for the last index
  lo = need_lo <= 0 ? 0 : (need_lo + dil - 1) / dil;
  const int64_t room = size - 1 + pad - first * stride;  // k * dil <= room for the first index
  hi = room < 0 ? 0 : std::min(taps, room / dil + 1);
  lo = std::min(lo, hi);
}


// Returns the buffer; scratch holds the unpadded rows on the way.
template <typename T>
INVNAS_INLINE typename Simd<T>::V* padded_input(const T* x_group, const Geometry& g,
                                                int64_t row0, int64_t rows, int64_t nv,
                                                Lanes<T>& buffer, Lanes<T>& scratch) {
  using V = typename Simd<T>::V;
  const int64_t cols = g.padded_w();
  V* buf = buffer.get(rows * cols * nv, true);
  const int64_t y0 = std::max<int64_t>(0, row0 - g.ph);
  const int64_t y1 = std::min(g.H, row0 - g.ph + rows);
  if (y1 <= y0) return buf;
  V* flat = scratch.get((y1 - y0) * g.W * nv, false);
  to_lanes(x_group + y0 * g.W, g.H * g.W, g.cg(), (y1 - y0) * g.W, nv, flat);
  for (int64_t y = y0; y < y1; ++y)
    std::memcpy(static_cast<void*>(buf + ((y + g.ph - row0) * cols + g.pw) * nv),
                static_cast<const void*>(flat + (y - y0) * g.W * nv), g.W * nv * sizeof(V));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// An item's output rows [i0, i1) are flattened positions [i0 * WO, i1 * WO); blocks of pixels
// at consecutive positions may span rows. For each pixel of a block, off is the vector offset of
// what its tap (0, 0) reads in the padded input buffer (rows from row0); a tap (u, v) adds
// (u * dh * cols + v * dw) * nv to it. [ulo, uhi) x [vlo, vhi) holds every tap that reads inside
// the image for some pixel of the block.
struct Block {
  int64_t ulo, uhi, vlo, vhi;

  template <int N>
  INVNAS_INLINE Block(const Geometry& g, int64_t p0, int64_t count, int64_t row0, int64_t nv,
                      int64_t (&off)[N]) {
    int64_t i_first = 0, i_last = 0, j_first = g.WO, j_last = -1;
    for (int k = 0; k < N; ++k) {
      const int64_t p = p0 + std::min<int64_t>(k, count - 1), i = p / g.WO, j = p % g.WO;
      off[k] = ((i * g.sh - row0) * g.padded_w() + j * g.sw) * nv;
      if (k == 0) i_first = i;
      i_last = i;
      j_first = std::min(j_first, j);
      j_last = std::max(j_last, j);
    }
    tap_range(i_first, i_last, g.sh, g.ph, g.dh, g.H, g.kh, ulo, uhi);
    tap_range(j_first, j_last, g.sw, g.pw, g.dw, g.W, g.kw, vlo, vhi);
  }
};

INVNAS_INLINE int64_t tap_offset(const Geometry& g, int64_t u, int64_t v, int64_t nv) {
  return (u * g.dh * g.padded_w() + v * g.dw) * nv;
}

// Work item (b, g, band) of the kernels that split planes into bands of output rows: (batch,
// group) bg, its first channel plane, output rows [i0, i1) as positions [p0, p1), and row0, the
// first padded input row it reads.
struct BandItem {
  int64_t bg, plane0, i0, i1, p0, p1, row0;

  INVNAS_INLINE BandItem(int64_t item, int64_t band, const Geometry& g) {
    const int64_t bands = (g.HO + band - 1) / band;
    bg = item / bands;
    plane0 = g.group_plane(bg);
    i0 = (item % bands) * band;
    i1 = std::min(g.HO, i0 + band);
    p0 = i0 * g.WO;
    p1 = i1 * g.WO;
    row0 = i0 * g.sh;
  }

  // The padded input rows the item reads, [i0 * sh, (i1 - 1) * sh + (kh - 1) * dh], in lanes.
  template <typename T>
  INVNAS_INLINE typename Simd<T>::V* input(const T* x, const Geometry& g, int64_t nv,
                                           Lanes<T>& buffer, Lanes<T>& scratch) const {
    const int64_t rows = (i1 - 1 - i0) * g.sh + (g.kh - 1) * g.dh + 1;
    return padded_input(x + plane0 * g.H * g.W, g, row0, rows, nv, buffer, scratch);
  }
};

// Calls BLOCK(p, count) on blocks of N positions covering [p0, p1). The last block is shifted
// back to end at p1 (it overlaps its neighbour, harmless because blocks store their results);
// with fewer than N positions in all there is one short block. A macro rather than a function
// taking a lambda: GCC might not inline the lambda, which would then miss the target_clones
// instruction sets; and the literal count N lets the compiler specialise the full blocks.
#define INVNAS_SWEEP(N, p0, p1, BLOCK)                  \
  do {                                                  \
    if ((p1) - (p0) < (N)) {                            \
      BLOCK((p0), (p1) - (p0));                         \
    } else {                                            \
      int64_t p_ = (p0);                                \
      for (; p_ + (N) <= (p1); p_ += (N)) BLOCK(p_, N); \
      if (p_ < (p1)) BLOCK((p1) - (N), N);              \
    }                                                   \
  } while (0)

// Non-template entry points, one per kernel and dtype, so that target_clones can make one copy
// per instruction set; each is defined in its kernel's translation unit.
template <typename T>
using Kernel = void (*)(const T*, const T*, T*, const Geometry&, int64_t, WorkQueue&);

#define INVNAS_ENTRY(NAME, T, IMPL)                                                     \
  INVNAS_CLONES void NAME(const T* a, const T* b, T* out, const Geometry& g, int64_t band, \
                          WorkQueue& queue) {                                           \
    IMPL<T>(a, b, out, g, band, queue);                                                 \
  }
#define INVNAS_DECLARE(NAME)                                                                   \
  void NAME##_f32(const float*, const float*, float*, const Geometry&, int64_t, WorkQueue&); \
  void NAME##_f64(const double*, const double*, double*, const Geometry&, int64_t, WorkQueue&);

INVNAS_DECLARE(forward)
INVNAS_DECLARE(weight_grad)
INVNAS_DECLARE(input_grad)
#undef INVNAS_DECLARE

// The kernel generator's average pool (stride_pool.cpp), planes of H x W pixels.
#define INVNAS_DECLARE_POOL(T)                                                               \
  void stride_pool_any(const T* x, T* out, int64_t planes, int64_t H, int64_t W, int64_t sh, \
                       int64_t sw);                                                          \
  void stride_pool_grad_any(const T* g, T* gx, int64_t planes, int64_t H, int64_t W,         \
                            int64_t sh, int64_t sw);
INVNAS_DECLARE_POOL(float)
INVNAS_DECLARE_POOL(double)
#undef INVNAS_DECLARE_POOL

}  // namespace invnas_cpu
