// Involution weight-gradient kernel (see involution_cpu.cpp for the layout and the work items).
#include "geometry.h"

namespace invnas_cpu {

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
  const int64_t cg = g.cg(), nv = group_vectors<T>(g), P = g.plane_out();
  Lanes<T> xl, scratch, gl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const BandItem it(item, band, g);
    const V* xbuf = it.input(x, g, nv, xl, scratch);
    const int64_t row0 = it.row0, p0 = it.p0, p1 = it.p1;
    V* gol = gl.get((p1 - p0) * nv, false);
    to_lanes(gout + it.plane0 * P + p0, P, cg, p1 - p0, nv, gol);
    T* gwg = gw + it.bg * g.taps() * P;
#define BLOCK(p, count) weight_grad_block<T, NV>(g, xbuf, row0, gol, nv, p0, p, count, gwg)
    INVNAS_SWEEP(8, p0, p1, BLOCK);
#undef BLOCK
  }
}

template <typename T>
INVNAS_INLINE void weight_grad_any(const T* x, const T* gout, T* gw, const Geometry& g,
                                   int64_t band, WorkQueue& queue) {
  const int64_t nv = group_vectors<T>(g);
  if (nv == 1) {
    weight_grad_items_nv<T, 1>(x, gout, gw, g, band, queue);
  } else if (nv == 2) {
    weight_grad_items_nv<T, 2>(x, gout, gw, g, band, queue);
  } else {
    weight_grad_items_nv<T, 0>(x, gout, gw, g, band, queue);
  }
}

INVNAS_ENTRY(weight_grad_f32, float, weight_grad_any)
INVNAS_ENTRY(weight_grad_f64, double, weight_grad_any)

}  // namespace invnas_cpu
