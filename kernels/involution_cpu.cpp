// Involution on the CPU: forward, input-gradient and weight-gradient kernels, and the average
// pool of the kernel generator.
//
// Shapes: input (B, C, H, W), weight (B, G, KH*KW, HO, WO), output (B, C, HO, WO); channel c uses
// kernel group c / (C / G), and the group's CG = C / G channels share every kernel value.
//
// The kernels vectorise over those shared channels: each work item copies the input (or
// grad_out) of one group into a "lane" buffer where the CG channels of a pixel are contiguous,
// zero-padded to whole SIMD vectors (and, for the input, surrounded by the zero padding of the
// involution); the copies transpose 16 x 16 blocks in registers. A kernel tap is then one vector
// multiply-add per pixel whatever the spatial size, so 2x2 and 4x4 maps run about as fast per
// multiply-add as large ones, and the inner loops need no bounds checks.
//   forward      item (b, g, band of output rows): out = sum over taps of w * x, 8 (or 4)
//                pixels at a time with their accumulators in registers;
//   weight grad  item (b, g, band of output rows): for each tap, 8 pixels' products with
//                grad_out are summed over their lanes together (a transpose-and-add tree) and
//                stored as one vector;
//   input grad   item (b, g): tap by tap (reading the weight in order), every output pixel adds
//                w * grad_out into the lane buffer of the input plane, copied out at the end.
// Items own their outputs, so threads never write to the same memory.
//
// Built with -O3 but without -march=native (the build cache may move to another machine); on
// x86-64 with GCC the kernels are cloned for AVX2/FMA and AVX-512 and picked at load time.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>  // lighter than torch/extension.h: a faster first build

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define INVNAS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define INVNAS_CLONES
#endif
#define INVNAS_INLINE inline __attribute__((always_inline))

// 64-byte vectors (one AVX-512 register, two AVX2 ones) of L floats or doubles.
//
// lo<M>(a, c) and hi<M>(a, c) split both vectors into blocks of 2M lanes and take from each
// block the first (lo) or last (hi) M lanes of a, then those of c. From these:
//   transpose(r)  r[i][j] <- r[j][i] for L vectors: swaps the off-diagonal M x M blocks of every
//                 2M x 2M block, for M = L/2 .. 1;
//   sum8(p)       result[k] = the sum of the lanes of p[k], k < 8: a transpose-and-add tree,
//                 where lo<M>(a, c) + hi<M>(a, c) halves the partial sums of a and c and packs
//                 them into one vector. The inputs enter in the order that leaves the sums in
//                 natural order.
template <typename T>
struct Simd;

template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(64)));
  typedef float V8 __attribute__((vector_size(32)));
  static constexpr int L = 16;

  template <int M>
  static INVNAS_INLINE V lo(V a, V c) {
    if constexpr (M == 8) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    } else if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26,
                                     27);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28,
                                     29);
    } else {
      return __builtin_shufflevector(a, c, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14,
                                     30);
    }
  }
  template <int M>
  static INVNAS_INLINE V hi(V a, V c) {
    if constexpr (M == 8) {
      return __builtin_shufflevector(a, c, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30,
                                     31);
    } else if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30,
                                     31);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30,
                                     31);
    } else {
      return __builtin_shufflevector(a, c, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15,
                                     31);
    }
  }
  template <int M>
  static INVNAS_INLINE V fold(V a, V c) {
    return lo<M>(a, c) + hi<M>(a, c);
  }
  static INVNAS_INLINE V8 sum8(const V* p) {
    const V s = fold<2>(fold<4>(fold<8>(p[0], p[4]), fold<8>(p[2], p[6])),
                        fold<4>(fold<8>(p[1], p[5]), fold<8>(p[3], p[7])));
    return __builtin_shufflevector(s, s, 0, 2, 4, 6, 8, 10, 12, 14) +
           __builtin_shufflevector(s, s, 1, 3, 5, 7, 9, 11, 13, 15);
  }
};

template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(64)));
  typedef double V8 __attribute__((vector_size(64)));
  static constexpr int L = 8;

  template <int M>
  static INVNAS_INLINE V lo(V a, V c) {
    if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 0, 1, 2, 3, 8, 9, 10, 11);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 0, 1, 8, 9, 4, 5, 12, 13);
    } else {
      return __builtin_shufflevector(a, c, 0, 8, 2, 10, 4, 12, 6, 14);
    }
  }
  template <int M>
  static INVNAS_INLINE V hi(V a, V c) {
    if constexpr (M == 4) {
      return __builtin_shufflevector(a, c, 4, 5, 6, 7, 12, 13, 14, 15);
    } else if constexpr (M == 2) {
      return __builtin_shufflevector(a, c, 2, 3, 10, 11, 6, 7, 14, 15);
    } else {
      return __builtin_shufflevector(a, c, 1, 9, 3, 11, 5, 13, 7, 15);
    }
  }
  template <int M>
  static INVNAS_INLINE V fold(V a, V c) {
    return lo<M>(a, c) + hi<M>(a, c);
  }
  static INVNAS_INLINE V8 sum8(const V* p) {  // one level less than for float
    return fold<1>(fold<2>(fold<4>(p[0], p[4]), fold<4>(p[2], p[6])),
                   fold<2>(fold<4>(p[1], p[5]), fold<4>(p[3], p[7])));
  }
};

template <typename T, int M>
INVNAS_INLINE void swap_blocks(typename Simd<T>::V* r) {
  for (int i = 0; i < Simd<T>::L; i += 2 * M) {
    for (int k = i; k < i + M; ++k) {
      const typename Simd<T>::V a = r[k], c = r[k + M];
      r[k] = Simd<T>::template lo<M>(a, c);
      r[k + M] = Simd<T>::template hi<M>(a, c);
    }
  }
}

template <typename T>
INVNAS_INLINE void transpose(typename Simd<T>::V* r) {
  if constexpr (Simd<T>::L == 16) swap_blocks<T, 8>(r);
  swap_blocks<T, 4>(r);
  swap_blocks<T, 2>(r);
  swap_blocks<T, 1>(r);
}

struct Geometry {
  int64_t B, C, H, W, G, HO, WO;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t cg() const { return C / G; }
  int64_t taps() const { return kh * kw; }
  int64_t plane_out() const { return HO * WO; }  // distance between two taps of the weight
  int64_t padded_w() const { return W + 2 * pw; }
};

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

// A 64-byte aligned buffer of vectors (std::vector would not align these vector types).
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
      TORCH_CHECK(data != nullptr, "involution_cpu: out of memory");
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

// Item (b, g, band) -> (bg, first output row, end row).
INVNAS_INLINE void band_of(int64_t item, int64_t band, const Geometry& g, int64_t& bg,
                           int64_t& i0, int64_t& i1) {
  const int64_t bands = (g.HO + band - 1) / band;
  bg = item / bands;
  i0 = (item % bands) * band;
  i1 = std::min(g.HO, i0 + band);
}

// Padded input rows an item reads: [i0 * sh, (i1 - 1) * sh + (kh - 1) * dh].
INVNAS_INLINE int64_t band_input_rows(const Geometry& g, int64_t i0, int64_t i1) {
  return (i1 - 1 - i0) * g.sh + (g.kh - 1) * g.dh + 1;
}

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

// ---------------------------------------------------------------------------------------------
// forward: out[c, p] = sum over taps t of w[t, p] * x[c, pixel read by p through t]
//
// Blocks of JB pixels keep their JB x NV accumulators in registers; pixels of a short block
// (count < JB) repeat the last one. Results go to the lane buffer ol (one entry per position).

template <typename T, int NV, int JB>
INVNAS_INLINE void forward_block(const Geometry& g, const T* w, const typename Simd<T>::V* xbuf,
                                 int64_t row0, int64_t n0, int64_t nv, int64_t p0, int64_t count,
                                 int64_t pband, typename Simd<T>::V* ol) {
  using V = typename Simd<T>::V;
  int64_t off[JB];
  const Block blk(g, p0, count, row0, nv, off);
  const int64_t P = g.plane_out();
  V acc[JB][NV];
  for (int jb = 0; jb < JB; ++jb)
    for (int n = 0; n < NV; ++n) acc[jb][n] = V{};
  for (int64_t u = blk.ulo; u < blk.uhi; ++u) {
    for (int64_t v = blk.vlo; v < blk.vhi; ++v) {
      const T* __restrict__ wt = w + (u * g.kw + v) * P + p0;
      const V* __restrict__ xt = xbuf + tap_offset(g, u, v, nv) + n0;
      for (int jb = 0; jb < JB; ++jb) {
        const T s = wt[std::min<int64_t>(jb, count - 1)];
        for (int n = 0; n < NV; ++n) acc[jb][n] += s * xt[off[jb] + n];
      }
    }
  }
  V* __restrict__ o = ol + (p0 - pband) * nv + n0;
  for (int jb = 0; jb < JB; ++jb)
    if (jb < count)
      for (int n = 0; n < NV; ++n) o[jb * nv + n] = acc[jb][n];
}

template <typename T>
INVNAS_INLINE void forward_items(const T* x, const T* w, T* out, const Geometry& g,
                                 int64_t band, WorkQueue& queue) {
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::L;
  const int64_t cg = g.cg(), nv = (cg + L - 1) / L, P = g.plane_out();
  Lanes<T> xl, scratch, outl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    int64_t bg, i0, i1;
    band_of(item, band, g, bg, i0, i1);
    const int64_t plane0 = (bg / g.G) * g.C + (bg % g.G) * cg, row0 = i0 * g.sh;
    const V* xbuf = padded_input(x + plane0 * g.H * g.W, g, row0, band_input_rows(g, i0, i1), nv,
                                 xl, scratch);
    const T* wg = w + bg * g.taps() * P;
    const int64_t p0 = i0 * g.WO, p1 = i1 * g.WO;
    V* ol = outl.get((p1 - p0) * nv, false);
    for (int64_t n0 = 0; n0 < nv;) {  // two vectors of lanes at a time while they last
      if (nv - n0 >= 2) {
#define BLOCK(p, count) forward_block<T, 2, 4>(g, wg, xbuf, row0, n0, nv, p, count, p0, ol)
        INVNAS_SWEEP(4, p0, p1, BLOCK);
#undef BLOCK
        n0 += 2;
      } else if (p1 - p0 >= 8) {
#define BLOCK(p, count) forward_block<T, 1, 8>(g, wg, xbuf, row0, n0, nv, p, count, p0, ol)
        INVNAS_SWEEP(8, p0, p1, BLOCK);
#undef BLOCK
        n0 += 1;
      } else {  // tiny maps: fewer idle pixels in blocks of 4
#define BLOCK(p, count) forward_block<T, 1, 4>(g, wg, xbuf, row0, n0, nv, p, count, p0, ol)
        INVNAS_SWEEP(4, p0, p1, BLOCK);
#undef BLOCK
        n0 += 1;
      }
    }
    from_lanes(ol, nv, cg, p1 - p0, out + plane0 * P + p0, P);
  }
}

// ---------------------------------------------------------------------------------------------
// weight grad: gw[t, p] = sum over the group's channels c of go[c, p] * x[c, pixel read by p
// through t]. Blocks of 8 positions: per tap, the 8 pixels' products are summed over their lanes
// by sum8 and stored together; taps reading only padding for all 8 store 0.

template <typename T, int NV>
INVNAS_INLINE void weight_grad_block(const Geometry& g, const typename Simd<T>::V* xbuf,
                                     int64_t row0, const typename Simd<T>::V* gol, int64_t nv_rt,
                                     int64_t pband, int64_t p0, int64_t count, T* gw) {
  using V = typename Simd<T>::V;
  const int64_t nv = NV > 0 ? NV : nv_rt;
  const int64_t P = g.plane_out();
  int64_t off[8], goff[8];
  const Block blk(g, p0, count, row0, nv, off);
  for (int k = 0; k < 8; ++k) goff[k] = (p0 + std::min<int64_t>(k, count - 1) - pband) * nv;
  for (int64_t u = 0; u < g.kh; ++u) {
    for (int64_t v = 0; v < g.kw; ++v) {
      T* __restrict__ dst = gw + (u * g.kw + v) * P + p0;
      if (u < blk.ulo || u >= blk.uhi || v < blk.vlo || v >= blk.vhi) {
        for (int64_t k = 0; k < count; ++k) dst[k] = T(0);
        continue;
      }
      const V* __restrict__ xt = xbuf + tap_offset(g, u, v, nv);
      V prod[8];
      for (int k = 0; k < 8; ++k) {
        V a = gol[goff[k]] * xt[off[k]];
        for (int64_t n = 1; n < nv; ++n) a += gol[goff[k] + n] * xt[off[k] + n];
        prod[k] = a;
      }
      const auto sums = Simd<T>::sum8(prod);
      if (count == 8) {
        std::memcpy(dst, &sums, 8 * sizeof(T));  // one vector store
      } else {
        for (int64_t k = 0; k < count; ++k) dst[k] = sums[k];
      }
    }
  }
}

template <typename T, int NV>
INVNAS_INLINE void weight_grad_items_nv(const T* x, const T* gout, T* gw, const Geometry& g,
                                        int64_t band, WorkQueue& queue) {
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::L;
  const int64_t cg = g.cg(), nv = (cg + L - 1) / L, P = g.plane_out();
  Lanes<T> xl, scratch, gl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    int64_t bg, i0, i1;
    band_of(item, band, g, bg, i0, i1);
    const int64_t plane0 = (bg / g.G) * g.C + (bg % g.G) * cg, row0 = i0 * g.sh;
    const V* xbuf = padded_input(x + plane0 * g.H * g.W, g, row0, band_input_rows(g, i0, i1), nv,
                                 xl, scratch);
    const int64_t p0 = i0 * g.WO, p1 = i1 * g.WO;
    V* gol = gl.get((p1 - p0) * nv, false);
    to_lanes(gout + plane0 * P + p0, P, cg, p1 - p0, nv, gol);
    T* gwg = gw + bg * g.taps() * P;
#define BLOCK(p, count) weight_grad_block<T, NV>(g, xbuf, row0, gol, nv, p0, p, count, gwg)
    INVNAS_SWEEP(8, p0, p1, BLOCK);
#undef BLOCK
  }
}

// ---------------------------------------------------------------------------------------------
// input grad: every tap of every output pixel adds w[t, p] * go[:, p] into the lane buffer of
// the input pixel it reads (taps reading padding are skipped); the buffer is copied out at the
// end. Items are whole planes, since one output row adds into several input rows.

template <typename T, int NV>
INVNAS_INLINE void input_grad_items_nv(const T* w, const T* gout, T* gx, const Geometry& g,
                                       WorkQueue& queue) {
  using V = typename Simd<T>::V;
  constexpr int L = Simd<T>::L;
  const int64_t cg = g.cg(), nv_rt = (cg + L - 1) / L;
  const int64_t nv = NV > 0 ? NV : nv_rt;
  const int64_t P = g.plane_out();
  std::vector<int64_t> jlo(g.kw), jhi(g.kw);
  for (int64_t v = 0; v < g.kw; ++v) {  // output columns whose tap v reads inside [0, W)
    tap_range(v, v, g.dw, g.pw, g.sw, g.W, g.WO, jlo[v], jhi[v]);
  }
  Lanes<T> xl, gl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t bg = item, plane0 = (bg / g.G) * g.C + (bg % g.G) * cg;
    V* __restrict__ xb = xl.get(g.H * g.W * nv, true);
    V* gb = gl.get(P * nv, false);
    to_lanes(gout + plane0 * P, P, cg, P, nv, gb);
    const T* wg = w + bg * g.taps() * P;
    // Tap-major order reads the weight sequentially (it is usually cold by the backward pass).
    for (int64_t u = 0; u < g.kh; ++u) {
      for (int64_t v = 0; v < g.kw; ++v) {
        const T* __restrict__ wt = wg + (u * g.kw + v) * P;
        const int64_t shift = v * g.dw - g.pw;
        for (int64_t i = 0; i < g.HO; ++i) {
          const int64_t y = i * g.sh - g.ph + u * g.dh;
          if (y < 0 || y >= g.H) continue;
          const T* __restrict__ wr = wt + i * g.WO;
          const V* __restrict__ src = gb + i * g.WO * nv;
          for (int64_t j = jlo[v]; j < jhi[v]; ++j) {
            const T s = wr[j];
            V* d = xb + (y * g.W + j * g.sw + shift) * nv;
            const V* o = src + j * nv;
            for (int64_t n = 0; n < nv; ++n) d[n] += s * o[n];
          }
        }
      }
    }
    from_lanes(xb, nv, cg, g.H * g.W, gx + plane0 * g.H * g.W, g.H * g.W);
  }
}

// ---------------------------------------------------------------------------------------------
// Non-template entry points, so that target_clones can make one copy per instruction set.

template <typename T>
INVNAS_INLINE void weight_grad_any(const T* x, const T* gout, T* gw, const Geometry& g,
                                   int64_t band, WorkQueue& queue) {
  const int64_t nv = (g.cg() + Simd<T>::L - 1) / Simd<T>::L;
  if (nv == 1) {
    weight_grad_items_nv<T, 1>(x, gout, gw, g, band, queue);
  } else if (nv == 2) {
    weight_grad_items_nv<T, 2>(x, gout, gw, g, band, queue);
  } else {
    weight_grad_items_nv<T, 0>(x, gout, gw, g, band, queue);
  }
}

template <typename T>
INVNAS_INLINE void input_grad_any(const T* w, const T* gout, T* gx, const Geometry& g,
                                  int64_t, WorkQueue& queue) {
  const int64_t nv = (g.cg() + Simd<T>::L - 1) / Simd<T>::L;
  if (nv == 1) {
    input_grad_items_nv<T, 1>(w, gout, gx, g, queue);
  } else if (nv == 2) {
    input_grad_items_nv<T, 2>(w, gout, gx, g, queue);
  } else {
    input_grad_items_nv<T, 0>(w, gout, gx, g, queue);
  }
}

#define INVNAS_ENTRY(NAME, T, IMPL)                                                     \
  INVNAS_CLONES void NAME(const T* a, const T* b, T* out, const Geometry& g, int64_t band, \
                          WorkQueue& queue) {                                           \
    IMPL<T>(a, b, out, g, band, queue);                                                 \
  }
#define INVNAS_ENTRIES(T, SUFFIX)                        \
  INVNAS_ENTRY(forward_##SUFFIX, T, forward_items)       \
  INVNAS_ENTRY(weight_grad_##SUFFIX, T, weight_grad_any) \
  INVNAS_ENTRY(input_grad_##SUFFIX, T, input_grad_any)

INVNAS_ENTRIES(float, f32)
INVNAS_ENTRIES(double, f64)

template <typename T>
using Kernel = void (*)(const T*, const T*, T*, const Geometry&, int64_t, WorkQueue&);

struct KernelPair {
  Kernel<float> f32;
  Kernel<double> f64;
};

Geometry make_geometry(const at::Tensor& input, const at::Tensor& weight, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 5, "involution_cpu: bad ranks");
  TORCH_CHECK(input.is_contiguous() && weight.is_contiguous(), "involution_cpu: not contiguous");
  TORCH_CHECK(input.device().is_cpu() && weight.device().is_cpu(), "involution_cpu: CPU only");
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), "involution_cpu: dtype mismatch");
  TORCH_CHECK(kh > 0 && kw > 0 && sh > 0 && sw > 0 && dh > 0 && dw > 0 && ph >= 0 && pw >= 0,
              "involution_cpu: bad geometry");
  Geometry g{input.size(0), input.size(1), input.size(2), input.size(3), weight.size(1),
             weight.size(3), weight.size(4), kh, kw, sh, sw, ph, pw, dh, dw};
  TORCH_CHECK(g.G > 0 && g.C % g.G == 0, "involution_cpu: groups must divide channels");
  TORCH_CHECK(weight.size(0) == g.B && weight.size(2) == kh * kw, "involution_cpu: bad weight");
  TORCH_CHECK(g.HO == (g.H + 2 * ph - dh * (kh - 1) - 1) / sh + 1 &&
                  g.WO == (g.W + 2 * pw - dw * (kw - 1) - 1) / sw + 1 && g.HO > 0 && g.WO > 0,
              "involution_cpu: weight does not match the output size");
  return g;
}

void check_grad_out(const at::Tensor& grad_out, const Geometry& g, const at::Tensor& input) {
  TORCH_CHECK(grad_out.is_contiguous() && grad_out.scalar_type() == input.scalar_type() &&
                  grad_out.sizes() == at::IntArrayRef({g.B, g.C, g.HO, g.WO}),
              "involution_cpu: grad_out must be a contiguous (B, C, HO, WO) tensor");
}

// Multiply-adds below which a launch stays on the calling thread, and the least work per chunk.
constexpr int64_t kSerialWork = 1 << 18;
constexpr int64_t kChunkWork = 1 << 16;

// Runs kernel over items [0, items) on torch's intra-op threads.
void launch(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, const Geometry& g,
            int64_t items, int64_t work_per_item, int64_t band, KernelPair kernel) {
  WorkQueue queue(items, std::max<int64_t>(1, kChunkWork / std::max<int64_t>(1, work_per_item)));
  const int64_t threads = items * work_per_item < kSerialWork ? 1 : at::get_num_threads();
  const int64_t workers = std::min<int64_t>(threads, queue.chunks());
  auto run = [&](auto fn, auto* pa, auto* pb, auto* po) {
    if (workers <= 1) {
      fn(pa, pb, po, g, band, queue);
    } else {
      at::parallel_for(0, workers, 1, [&](int64_t, int64_t) { fn(pa, pb, po, g, band, queue); });
    }
  };
  if (out.scalar_type() == at::kFloat) {
    run(kernel.f32, a.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>());
  } else if (out.scalar_type() == at::kDouble) {
    run(kernel.f64, a.data_ptr<double>(), b.data_ptr<double>(), out.data_ptr<double>());
  } else {
    TORCH_CHECK(false, "involution_cpu: float32 or float64 only, got ", out.scalar_type());
  }
}

// Output rows per item: whole planes, unless that leaves too few items for the threads or the
// item's padded input (lane buffer) would outgrow ~256 KiB, a share of a core's L2 cache.
int64_t band_rows(const Geometry& g, int64_t element_size) {
  int64_t band = g.HO;
  const int64_t want = 8 * std::max<int64_t>(1, at::get_num_threads()), planes = g.B * g.G;
  if (planes < want) {
    const int64_t bands = std::min(g.HO, (want + planes - 1) / planes);
    band = (g.HO + bands - 1) / bands;
  }
  const int64_t row_bytes = g.padded_w() * ((g.cg() * element_size + 63) / 64) * 64;
  const int64_t rows = (int64_t(1) << 18) / row_bytes - (g.kh - 1) * g.dh;
  return std::max<int64_t>(1, std::min(band, rows / g.sh));
}

at::Tensor forward(const at::Tensor& input, const at::Tensor& weight, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  at::Tensor out = at::empty({g.B, g.C, g.HO, g.WO}, input.options());  // every element stored
  const int64_t band = band_rows(g, input.element_size());
  launch(input, weight, out, g, g.B * g.G * ((g.HO + band - 1) / band),
         g.cg() * g.taps() * band * g.WO, band, {forward_f32, forward_f64});
  return out;
}

at::Tensor backward_input(const at::Tensor& grad_out, const at::Tensor& input,
                          const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  check_grad_out(grad_out, g, input);
  at::Tensor grad_input = at::empty_like(input);  // every element stored
  launch(weight, grad_out, grad_input, g, g.B * g.G, g.cg() * g.taps() * g.plane_out(), 0,
         {input_grad_f32, input_grad_f64});
  return grad_input;
}

at::Tensor backward_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  check_grad_out(grad_out, g, input);
  at::Tensor grad_weight = at::empty_like(weight);  // every element stored
  const int64_t band = band_rows(g, input.element_size());
  launch(input, grad_out, grad_weight, g, g.B * g.G * ((g.HO + band - 1) / band),
         g.cg() * g.taps() * band * g.WO, band, {weight_grad_f32, weight_grad_f64});
  return grad_weight;
}

// ---------------------------------------------------------------------------------------------
// The kernel generator's average pool: windows of stride x stride, the last one cut at the border
// (ceil mode), averaged over the pixels they hold. Same arithmetic as torch's avg_pool2d with
// kernel = stride, ceil_mode=True, count_include_pad=False: the window summed row by row, then
// divided by its pixel count; so the results are bit-identical.

// One output row: windows [j * sw, j * sw + sw) of input rows [y0, y1), the last cut at W.
// Full 2x2 windows (RedNet's stride) get a loop the compiler vectorises.
template <typename T>
INVNAS_INLINE void stride_pool_row(const T* src, T* dst, int64_t W, int64_t WO, int64_t y0,
                                   int64_t y1, int64_t sw) {
  int64_t j = 0;
  if (sw == 2 && y1 - y0 == 2) {
    const T* r0 = src + y0 * W;
    const T* r1 = r0 + W;
    for (; j < W / 2; ++j) {
      T sum = 0;
      sum += r0[2 * j];
      sum += r0[2 * j + 1];
      sum += r1[2 * j];
      sum += r1[2 * j + 1];
      dst[j] = sum / T(4);
    }
  }
  for (; j < WO; ++j) {
    const int64_t x0 = j * sw, x1 = std::min(W, x0 + sw);
    T sum = 0;
    for (int64_t y = y0; y < y1; ++y)
      for (int64_t c = x0; c < x1; ++c) sum += src[y * W + c];
    dst[j] = sum / static_cast<T>((y1 - y0) * (x1 - x0));
  }
}

template <typename T>
INVNAS_INLINE void stride_pool_planes(const T* x, T* out, int64_t planes, int64_t H, int64_t W,
                                        int64_t sh, int64_t sw) {
  const int64_t HO = (H + sh - 1) / sh, WO = (W + sw - 1) / sw;
  for (int64_t plane = 0; plane < planes; ++plane)
    for (int64_t i = 0; i < HO; ++i)
      stride_pool_row(x + plane * H * W, out + (plane * HO + i) * WO, W, WO, i * sh,
                      std::min(H, i * sh + sh), sw);
}

// Every input pixel gets its window's gradient divided by the window's pixel count.
template <typename T>
INVNAS_INLINE void stride_pool_grad_planes(const T* gout, T* gx, int64_t planes, int64_t H,
                                             int64_t W, int64_t sh, int64_t sw) {
  const int64_t HO = (H + sh - 1) / sh, WO = (W + sw - 1) / sw;
  for (int64_t plane = 0; plane < planes; ++plane) {
    for (int64_t y = 0; y < H; ++y) {
      const int64_t i = y / sh, rows = std::min(H, i * sh + sh) - i * sh;
      const T* src = gout + (plane * HO + i) * WO;
      T* dst = gx + (plane * H + y) * W;
      int64_t j = 0;
      if (sw == 2 && rows == 2) {
        for (; j < W / 2; ++j) {
          const T value = src[j] / T(4);
          dst[2 * j] = value;
          dst[2 * j + 1] = value;
        }
      }
      for (; j < WO; ++j) {
        const int64_t x0 = j * sw, x1 = std::min(W, x0 + sw);
        const T value = src[j] / static_cast<T>(rows * (x1 - x0));
        for (int64_t c = x0; c < x1; ++c) dst[c] = value;
      }
    }
  }
}

#define INVNAS_POOL_ENTRIES(T)                                                                 \
  INVNAS_CLONES void stride_pool_any(const T* x, T* out, int64_t planes, int64_t H, int64_t W,   \
                                     int64_t sh, int64_t sw) {                                  \
    stride_pool_planes<T>(x, out, planes, H, W, sh, sw);                                        \
  }                                                                                             \
  INVNAS_CLONES void stride_pool_grad_any(const T* g, T* gx, int64_t planes, int64_t H,          \
                                          int64_t W, int64_t sh, int64_t sw) {                  \
    stride_pool_grad_planes<T>(g, gx, planes, H, W, sh, sw);                                    \
  }
INVNAS_POOL_ENTRIES(float)
INVNAS_POOL_ENTRIES(double)

// Runs fn(first_plane, plane_count) over planes, threaded when there is enough memory traffic.
template <typename Fn>
void over_planes(int64_t planes, int64_t plane_size, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, plane_size));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) { fn(begin, end - begin); });
}

void check_pool_input(const at::Tensor& t, int64_t sh, int64_t sw) {
  TORCH_CHECK(t.dim() == 4 && t.is_contiguous() && t.device().is_cpu(),
              "stride_pool: expected a contiguous 4-D CPU tensor");
  TORCH_CHECK(sh > 0 && sw > 0, "stride_pool: bad stride");
}

at::Tensor stride_pool(const at::Tensor& input, int64_t sh, int64_t sw) {
  check_pool_input(input, sh, sw);
  const int64_t B = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  at::Tensor out = at::empty({B, C, (H + sh - 1) / sh, (W + sw - 1) / sw}, input.options());
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "stride_pool", [&] {
    const scalar_t* x = input.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    over_planes(B * C, H * W, [&](int64_t first, int64_t count) {
      stride_pool_any(x + first * H * W, o + first * out.size(2) * out.size(3), count, H, W,
                         sh, sw);
    });
  });
  return out;
}

at::Tensor stride_pool_backward(const at::Tensor& grad_out, int64_t H, int64_t W, int64_t sh,
                                int64_t sw) {
  check_pool_input(grad_out, sh, sw);
  const int64_t B = grad_out.size(0), C = grad_out.size(1);
  TORCH_CHECK(grad_out.size(2) == (H + sh - 1) / sh && grad_out.size(3) == (W + sw - 1) / sw,
              "stride_pool_backward: grad_out does not match the input size");
  at::Tensor grad_input = at::empty({B, C, H, W}, grad_out.options());  // every element stored
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "stride_pool_backward", [&] {
    const scalar_t* g = grad_out.data_ptr<scalar_t>();
    scalar_t* gx = grad_input.data_ptr<scalar_t>();
    const int64_t plane_out = grad_out.size(2) * grad_out.size(3);
    over_planes(B * C, H * W, [&](int64_t first, int64_t count) {
      stride_pool_grad_any(g + first * plane_out, gx + first * H * W, count, H, W, sh, sw);
    });
  });
  return grad_input;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "invnas involution CPU kernels";
  m.def("forward", &forward, "involution forward");
  m.def("backward_input", &backward_input, "involution gradient w.r.t. the input");
  m.def("backward_weight", &backward_weight, "involution gradient w.r.t. the weight");
  m.def("stride_pool", &stride_pool, "average pool by the stride (ceil mode, real pixels)");
  m.def("stride_pool_backward", &stride_pool_backward, "gradient of stride_pool");
}
