// Involution on the CPU: forward, input-gradient and weight-gradient kernels.
//
// Shapes: input (B, C, H, W), weight (B, G, KH*KW, HO, WO), output (B, C, HO, WO); channel c uses
// kernel group c / (C / G). No kernel materialises the unfold tensor.
//
// Work items own rows of their result, so threads never write to the same memory:
//   forward        item (b, g, i): out[b, c, i, :] for every channel c of group g;
//   weight grad    item (b, g, i): grad_weight[b, g, :, i, :], summed over the group's channels;
//   input grad     item (b, g, y): grad_input[b, c, y, :] for every channel c of group g.
// Each item first copies the rows it reads into zero-padded thread-local buffers, so the inner
// loops need no bounds checks; then it sweeps its row in blocks of JB columns, keeping the JB
// accumulators in vector registers across all taps (or channels) and storing each block once.
// The last block of a row is shifted left to end at the row's end: it overlaps its neighbour,
// which is harmless because blocks store their sums instead of adding to memory.
//
// Built with -O3 but without -march=native (the build cache may move to another machine); on
// x86-64 with GCC the kernels are cloned for AVX2/FMA and AVX-512 and picked at load time.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>  // lighter than torch/extension.h: a faster first build

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define INVNAS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define INVNAS_CLONES
#endif
#define INVNAS_INLINE inline __attribute__((always_inline))

struct Geometry {
  int64_t B, C, H, W, G, HO, WO;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t cg() const { return C / G; }
  int64_t taps() const { return kh * kw; }
  int64_t plane_out() const { return HO * WO; }  // distance between two taps of the weight
  // The input row that output row i reads through kernel row u, or -1 if it lies in the padding.
  int64_t input_row(int64_t i, int64_t u) const {
    const int64_t y = i * sh - ph + u * dh;
    return y >= 0 && y < H ? y : -1;
  }
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

// Calls blk.template run<JB>(j0) on blocks covering [0, n); JB is the largest of 16, 8, 4, 1 that
// fits, and the last block may overlap the one before it.
template <int JB, typename Block>
INVNAS_INLINE void sweep_fixed(const Block& blk, int64_t n) {
  int64_t j0 = 0;
  for (; j0 + JB <= n; j0 += JB) blk.template run<JB>(j0);
  if (j0 < n) blk.template run<JB>(n - JB);
}

template <typename Block>
INVNAS_INLINE void sweep(const Block& blk, int64_t n) {
  if (n >= 16) {
    sweep_fixed<16>(blk, n);
  } else if (n >= 8) {
    sweep_fixed<8>(blk, n);
  } else if (n >= 4) {
    sweep_fixed<4>(blk, n);
  } else {
    sweep_fixed<1>(blk, n);
  }
}

// A zero-padded copy of input rows: row r of the buffer holds the input row at columns
// [-pw, len - pw); the padding columns are zeroed once and never written again.
template <typename T>
struct PaddedRows {
  std::vector<T> data;
  int64_t len, lo, hi, pad;  // copied input columns [lo, hi) land at [lo + pad, hi + pad)

  PaddedRows(int64_t rows, int64_t len_, int64_t width, int64_t pad_)
      : data(rows * len_, T(0)), len(len_), lo(0), hi(std::min(width, len_ - pad_)), pad(pad_) {}
  T* row(int64_t r) { return data.data() + r * len; }
  void fill(int64_t r, const T* src) {
    if (hi > lo) std::copy(src + lo, src + hi, row(r) + lo + pad);
  }
};

// Columns [0, (WO - 1) * sw + (kw - 1) * dw + 1) of the padded input: everything any tap reads.
int64_t padded_input_len(const Geometry& g) { return (g.WO - 1) * g.sw + (g.kw - 1) * g.dw + 1; }

// ---------------------------------------------------------------------------------------------
// forward: out[j] = sum over valid u, all v of w[u, v][j] * xpad_u[j * sw + v * dw]

template <typename T, bool UNIT>
struct ForwardBlock {
  const T* w_i;        // weight[b, g, 0, i, :]
  int64_t tap_stride;  // HO * WO
  const T* buf;        // padded input rows, one per kernel row
  int64_t len;
  const int64_t* us;  // kernel rows whose input row exists
  int64_t nu, kw, dw, sw;
  T* out_row;

  template <int JB>
  INVNAS_INLINE void run(int64_t j0) const {
    T acc[JB];
    for (int jj = 0; jj < JB; ++jj) acc[jj] = T(0);
    for (int64_t k = 0; k < nu; ++k) {
      const int64_t u = us[k];
      const T* x0 = buf + u * len + j0 * sw;
      for (int64_t v = 0; v < kw; ++v) {
        const T* __restrict__ wr = w_i + (u * kw + v) * tap_stride + j0;
        const T* __restrict__ xr = x0 + v * dw;
        for (int jj = 0; jj < JB; ++jj) acc[jj] += wr[jj] * xr[UNIT ? jj : jj * sw];
      }
    }
    for (int jj = 0; jj < JB; ++jj) out_row[j0 + jj] = acc[jj];
  }
};

template <typename T, bool UNIT>
INVNAS_INLINE void forward_items(const T* x, const T* w, T* out, const Geometry& g,
                                 WorkQueue& queue) {
  const int64_t cg = g.cg();
  PaddedRows<T> rows(g.kh, padded_input_len(g), g.W, g.pw);
  std::vector<int64_t> us(g.kh);
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t i = item % g.HO, bg = item / g.HO, b = bg / g.G, grp = bg % g.G;
    int64_t nu = 0;
    for (int64_t u = 0; u < g.kh; ++u)
      if (g.input_row(i, u) >= 0) us[nu++] = u;
    for (int64_t c = grp * cg; c < (grp + 1) * cg; ++c) {
      const int64_t plane = b * g.C + c;
      for (int64_t k = 0; k < nu; ++k)
        rows.fill(us[k], x + (plane * g.H + g.input_row(i, us[k])) * g.W);
      const ForwardBlock<T, UNIT> blk{w + bg * g.taps() * g.plane_out() + i * g.WO, g.plane_out(),
                                      rows.data.data(), rows.len, us.data(), nu, g.kw, g.dw, g.sw,
                                      out + (plane * g.HO + i) * g.WO};
      sweep(blk, g.WO);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// weight grad: gw[u, v][j] = sum over the group's channels c of go_c[j] * xpad_{c,u}[j*sw + v*dw]

template <typename T, bool UNIT>
struct WeightGradBlock {
  const T* go_i;          // grad_out[b, first channel of g, i, :]
  int64_t go_stride;      // HO * WO, between channels
  const T* buf;           // padded input rows, row (c * kh + u)
  int64_t len, kh, cg, u, shift, sw;  // shift = v * dw
  T* gw_row;

  template <int JB>
  INVNAS_INLINE void run(int64_t j0) const {
    T acc[JB];
    for (int jj = 0; jj < JB; ++jj) acc[jj] = T(0);
    for (int64_t c = 0; c < cg; ++c) {
      const T* __restrict__ gr = go_i + c * go_stride + j0;
      const T* __restrict__ xr = buf + (c * kh + u) * len + j0 * sw + shift;
      for (int jj = 0; jj < JB; ++jj) acc[jj] += gr[jj] * xr[UNIT ? jj : jj * sw];
    }
    for (int jj = 0; jj < JB; ++jj) gw_row[j0 + jj] = acc[jj];
  }
};

template <typename T, bool UNIT>
INVNAS_INLINE void weight_grad_items(const T* x, const T* gout, T* gw, const Geometry& g,
                                     WorkQueue& queue) {
  const int64_t cg = g.cg();
  PaddedRows<T> rows(cg * g.kh, padded_input_len(g), g.W, g.pw);
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t i = item % g.HO, bg = item / g.HO, b = bg / g.G, grp = bg % g.G;
    const int64_t plane0 = b * g.C + grp * cg;
    for (int64_t u = 0; u < g.kh; ++u) {
      const int64_t y = g.input_row(i, u);
      if (y < 0) {  // this kernel row reads only padding: its gradient is zero
        for (int64_t v = 0; v < g.kw; ++v) {
          T* row = gw + (bg * g.taps() + u * g.kw + v) * g.plane_out() + i * g.WO;
          std::fill(row, row + g.WO, T(0));
        }
        continue;
      }
      for (int64_t c = 0; c < cg; ++c) rows.fill(c * g.kh + u, x + ((plane0 + c) * g.H + y) * g.W);
      for (int64_t v = 0; v < g.kw; ++v) {
        const WeightGradBlock<T, UNIT> blk{
            gout + plane0 * g.plane_out() + i * g.WO, g.plane_out(), rows.data.data(), rows.len,
            g.kh, cg, u, v * g.dw, g.sw,
            gw + (bg * g.taps() + u * g.kw + v) * g.plane_out() + i * g.WO};
        sweep(blk, g.WO);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// input grad, stride 1 in W: gather. gx[x] = sum over u, v of w[u, v][j] * go[j] at
// j = x + pw - v * dw, read from zero-padded copies of the weight and grad_out rows.

template <typename T>
struct InputGradBlock {
  const T* wbuf;   // padded weight rows, row (u * kw + v)
  const T* gobuf;  // padded grad_out rows of this channel, row u
  int64_t len, front;  // column j of a row sits at j + front
  const int64_t* us;
  int64_t nu, kw, dw, pw;
  T* gx_row;

  template <int JB>
  INVNAS_INLINE void run(int64_t x0) const {
    T acc[JB];
    for (int jj = 0; jj < JB; ++jj) acc[jj] = T(0);
    for (int64_t k = 0; k < nu; ++k) {
      const int64_t u = us[k];
      for (int64_t v = 0; v < kw; ++v) {
        const int64_t q = x0 + pw - v * dw + front;
        const T* __restrict__ wr = wbuf + (u * kw + v) * len + q;
        const T* __restrict__ gr = gobuf + u * len + q;
        for (int jj = 0; jj < JB; ++jj) acc[jj] += wr[jj] * gr[jj];
      }
    }
    for (int jj = 0; jj < JB; ++jj) gx_row[x0 + jj] = acc[jj];
  }
};

template <typename T>
INVNAS_INLINE void input_grad_gather_items(const T* w, const T* gout, T* gx, const Geometry& g,
                                           WorkQueue& queue) {
  const int64_t cg = g.cg();
  const int64_t front = std::max<int64_t>(0, (g.kw - 1) * g.dw - g.pw);
  const int64_t len = std::max(g.W + g.pw, g.WO) + front;
  PaddedRows<T> wrows(g.kh * g.kw, len, g.WO, front);
  PaddedRows<T> gorows(cg * g.kh, len, g.WO, front);
  std::vector<int64_t> us(g.kh), is(g.kh);
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t y = item % g.H, bg = item / g.H, b = bg / g.G, grp = bg % g.G;
    int64_t nu = 0;
    for (int64_t u = 0; u < g.kh; ++u) {
      const int64_t num = y + g.ph - u * g.dh;  // = i * sh for the output row i that reads y
      if (num < 0 || num % g.sh != 0 || num / g.sh >= g.HO) continue;
      us[nu] = u;
      is[nu++] = num / g.sh;
    }
    for (int64_t k = 0; k < nu; ++k)
      for (int64_t v = 0; v < g.kw; ++v)
        wrows.fill(us[k] * g.kw + v,
                   w + (bg * g.taps() + us[k] * g.kw + v) * g.plane_out() + is[k] * g.WO);
    for (int64_t c = 0; c < cg; ++c) {
      const int64_t plane = b * g.C + grp * cg + c;
      for (int64_t k = 0; k < nu; ++k)
        gorows.fill(c * g.kh + us[k], gout + plane * g.plane_out() + is[k] * g.WO);
      const InputGradBlock<T> blk{wrows.data.data(), gorows.row(c * g.kh), len, front, us.data(),
                                  nu, g.kw, g.dw, g.pw, gx + (plane * g.H + y) * g.W};
      sweep(blk, g.W);
    }
  }
}

// input grad, stride > 1 in W: each item scatters into the input row it owns.
template <typename T>
INVNAS_INLINE void input_grad_scatter_items(const T* w, const T* gout, T* gx, const Geometry& g,
                                            WorkQueue& queue) {
  const int64_t cg = g.cg();
  std::vector<int64_t> lo(g.kw), hi(g.kw);
  for (int64_t v = 0; v < g.kw; ++v) {  // output columns whose tap v reads inside [0, W)
    const int64_t offset = v * g.dw - g.pw;
    const int64_t l = offset >= 0 ? 0 : (-offset + g.sw - 1) / g.sw;
    const int64_t h = g.W - 1 - offset < 0 ? 0 : (g.W - 1 - offset) / g.sw + 1;
    lo[v] = std::min(l, g.WO);
    hi[v] = std::max(lo[v], std::min(h, g.WO));
  }
  for (int64_t item = 0, last = 0; queue.next(item, last);) {
    const int64_t y = item % g.H, bg = item / g.H, b = bg / g.G, grp = bg % g.G;
    for (int64_t c = grp * cg; c < (grp + 1) * cg; ++c) {
      const int64_t plane = b * g.C + c;
      T* __restrict__ gx_row = gx + (plane * g.H + y) * g.W;
      for (int64_t u = 0; u < g.kh; ++u) {
        const int64_t num = y + g.ph - u * g.dh;
        if (num < 0 || num % g.sh != 0 || num / g.sh >= g.HO) continue;
        const int64_t i = num / g.sh;
        const T* __restrict__ go_row = gout + plane * g.plane_out() + i * g.WO;
        for (int64_t v = 0; v < g.kw; ++v) {
          const T* __restrict__ w_row =
              w + (bg * g.taps() + u * g.kw + v) * g.plane_out() + i * g.WO;
          const int64_t offset = v * g.dw - g.pw;
          for (int64_t j = lo[v]; j < hi[v]; ++j) gx_row[j * g.sw + offset] += w_row[j] * go_row[j];
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Non-template entry points, so that target_clones can make one copy per instruction set.

template <typename T>
INVNAS_INLINE void forward_any(const T* x, const T* w, T* out, const Geometry& g,
                               WorkQueue& queue) {
  if (g.sw == 1) {
    forward_items<T, true>(x, w, out, g, queue);
  } else {
    forward_items<T, false>(x, w, out, g, queue);
  }
}

template <typename T>
INVNAS_INLINE void weight_grad_any(const T* x, const T* gout, T* gw, const Geometry& g,
                                   WorkQueue& queue) {
  if (g.sw == 1) {
    weight_grad_items<T, true>(x, gout, gw, g, queue);
  } else {
    weight_grad_items<T, false>(x, gout, gw, g, queue);
  }
}

template <typename T>
INVNAS_INLINE void input_grad_any(const T* w, const T* gout, T* gx, const Geometry& g,
                                  WorkQueue& queue) {
  if (g.sw == 1) {
    input_grad_gather_items<T>(w, gout, gx, g, queue);
  } else {
    input_grad_scatter_items<T>(w, gout, gx, g, queue);
  }
}

#define INVNAS_ENTRY(NAME, T, IMPL)                                                            \
  INVNAS_CLONES void NAME(const T* a, const T* b, T* out, const Geometry& g, WorkQueue& queue) { \
    IMPL<T>(a, b, out, g, queue);                                                              \
  }
#define INVNAS_ENTRIES(T, SUFFIX)                                                              \
  INVNAS_ENTRY(forward_##SUFFIX, T, forward_any)                                               \
  INVNAS_ENTRY(weight_grad_##SUFFIX, T, weight_grad_any)                                       \
  INVNAS_ENTRY(input_grad_##SUFFIX, T, input_grad_any)

INVNAS_ENTRIES(float, f32)
INVNAS_ENTRIES(double, f64)

template <typename T>
using Kernel = void (*)(const T*, const T*, T*, const Geometry&, WorkQueue&);

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

// Runs kernel over items [0, items) on torch's intra-op threads; a chunk is at least ~32k
// multiply-adds, and small problems stay on the calling thread.
void launch(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, const Geometry& g,
            int64_t items, int64_t work_per_item, KernelPair kernel) {
  WorkQueue queue(items, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, work_per_item)));
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), queue.chunks());
  auto run = [&](auto fn, auto* pa, auto* pb, auto* po) {
    if (workers <= 1) {
      fn(pa, pb, po, g, queue);
    } else {
      at::parallel_for(0, workers, 1, [&](int64_t, int64_t) { fn(pa, pb, po, g, queue); });
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

at::Tensor forward(const at::Tensor& input, const at::Tensor& weight, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  at::Tensor out = at::empty({g.B, g.C, g.HO, g.WO}, input.options());  // every element stored
  launch(input, weight, out, g, g.B * g.G * g.HO, g.cg() * g.taps() * g.WO,
         {forward_f32, forward_f64});
  return out;
}

at::Tensor backward_input(const at::Tensor& grad_out, const at::Tensor& input,
                          const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  check_grad_out(grad_out, g, input);
  // The gather kernel stores every element; the scatter kernel adds, so it needs zeros.
  at::Tensor grad_input = sw == 1 ? at::empty_like(input) : at::zeros_like(input);
  launch(weight, grad_out, grad_input, g, g.B * g.G * g.H, g.cg() * g.taps() * g.WO / g.sh,
         {input_grad_f32, input_grad_f64});
  return grad_input;
}

at::Tensor backward_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  check_grad_out(grad_out, g, input);
  at::Tensor grad_weight = at::empty_like(weight);  // every element stored
  launch(input, grad_out, grad_weight, g, g.B * g.G * g.HO, g.cg() * g.taps() * g.WO,
         {weight_grad_f32, weight_grad_f64});
  return grad_weight;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "invnas involution CPU kernels";
  m.def("forward", &forward, "involution forward");
  m.def("backward_input", &backward_input, "involution gradient w.r.t. the input");
  m.def("backward_weight", &backward_weight, "involution gradient w.r.t. the weight");
}
