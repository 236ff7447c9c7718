// Involution input-gradient kernel (see involution_cpu.cpp for the layout and the work items).
#include <vector>

#include "geometry.h"

namespace invnas_cpu {

// ---------------------------------------------------------------------------------------------
// input grad: every tap of every output pixel adds w[t, p] * go[:, p] into the lane buffer of
// the input pixel it reads (taps reading padding are skipped); the buffer is copied out at the
// end. Items are whole planes, since one output row adds into several input rows.

template <typename T, int NV>
INVNAS_INLINE void input_grad_items_nv(const T* w, const T* gout, T* gx, const Geometry& g,
                                       WorkQueue& queue) {
  using V = typename Simd<T>::V;
  const int64_t cg = g.cg();
  const int64_t nv = NV > 0 ? NV : group_vectors<T>(g);
  const int64_t P = g.plane_out();
  std::vector<int64_t> jlo(g.kw), jhi(g.kw);
  for (int64_t v = 0; v < g.kw; ++v) {  // output columns whose tap v reads inside [0, W)
    tap_range(v, v, g.dw, g.pw, g.sw, g.W, g.WO, jlo[v], jhi[v]);
  }
  Lanes<T> xl, gl;
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t bg = item, plane0 = g.group_plane(bg);
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

template <typename T>
INVNAS_INLINE void input_grad_any(const T* w, const T* gout, T* gx, const Geometry& g,
                                  int64_t, WorkQueue& queue) {
  const int64_t nv = group_vectors<T>(g);
  if (nv == 1) {
    input_grad_items_nv<T, 1>(w, gout, gx, g, queue);
  } else if (nv == 2) {
    input_grad_items_nv<T, 2>(w, gout, gx, g, queue);
  } else {
    input_grad_items_nv<T, 0>(w, gout, gx, g, queue);
  }
}

INVNAS_ENTRY(input_grad_f32, float, input_grad_any)
INVNAS_ENTRY(input_grad_f64, double, input_grad_any)

}  // namespace invnas_cpu
