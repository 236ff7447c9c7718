// Involution forward kernel (see involution_cpu.cpp for the layout and the work items).
#include "geometry.h"

namespace invnas_cpu {

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
  const int64_t cg = g.cg(), nv = group_vectors<T>(g), P = g.plane_out();
  Lanes<T> xl, scratch, outl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const BandItem it(item, band, g);
    const V* xbuf = it.input(x, g, nv, xl, scratch);
    const T* wg = w + it.bg * g.taps() * P;
    const int64_t row0 = it.row0, p0 = it.p0, p1 = it.p1;
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
    from_lanes(ol, nv, cg, p1 - p0, out + it.plane0 * P + p0, P);
  }
}

INVNAS_ENTRY(forward_f32, float, forward_items)
INVNAS_ENTRY(forward_f64, double, forward_items)

}  // namespace invnas_cpu
