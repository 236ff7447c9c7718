// Involution on the CPU: forward, input-gradient and weight-gradient kernels.
//
// Shapes: input (B, C, H, W), weight (B, G, KH*KW, HO, WO), output (B, C, HO, WO); channel c uses
// kernel group c / (C / G). None of the kernels materialises the unfold tensor: each work item
// owns one row of its output (an output row for the forward and the weight gradient, an input row
// for the input gradient), so threads never write to the same memory. The innermost loops run
// along W and are contiguous when the stride is 1, which lets the compiler vectorise them.
//
// Built with -O3 but without -march=native (the build cache may move to another machine); on
// x86-64 with GCC the row kernels are cloned for AVX2/FMA and AVX-512 and picked at load time.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define INVNAS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define INVNAS_CLONES
#endif

struct Geometry {
  int64_t B, C, H, W, G, HO, WO;
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t cg() const { return C / G; }
  int64_t taps() const { return kh * kw; }
};

// Output columns [lo, hi) whose tap v reads an input column inside [0, W).
struct ColumnRange {
  int64_t lo, hi, offset;  // input column = j * sw + offset
};

std::vector<ColumnRange> column_ranges(const Geometry& g) {
  std::vector<ColumnRange> ranges(g.kw);
  for (int64_t v = 0; v < g.kw; ++v) {
    const int64_t offset = v * g.dw - g.pw;
    // smallest j with j * sw + offset >= 0, and one past the largest with j * sw + offset < W
    int64_t lo = offset >= 0 ? 0 : (-offset + g.sw - 1) / g.sw;
    int64_t hi = g.W - 1 - offset < 0 ? 0 : (g.W - 1 - offset) / g.sw + 1;
    lo = std::min(lo, g.WO);
    hi = std::max(lo, std::min(hi, g.WO));
    ranges[v] = {lo, hi, offset};
  }
  return ranges;
}

// The three row kernels. `__restrict__` tells the compiler the rows never alias.
template <typename T>
inline __attribute__((always_inline)) void fma_row(T* __restrict__ acc, const T* __restrict__ a,
                                                   const T* __restrict__ b, int64_t lo, int64_t hi,
                                                   int64_t b_stride, int64_t b_offset) {
  if (b_stride == 1) {
    const T* __restrict__ bs = b + b_offset;
    for (int64_t j = lo; j < hi; ++j) acc[j] += a[j] * bs[j];
  } else {
    for (int64_t j = lo; j < hi; ++j) acc[j] += a[j] * b[j * b_stride + b_offset];
  }
}

template <typename T>
inline __attribute__((always_inline)) void scatter_row(T* __restrict__ acc, const T* __restrict__ a,
                                                       const T* __restrict__ b, int64_t lo,
                                                       int64_t hi, int64_t acc_stride,
                                                       int64_t acc_offset) {
  if (acc_stride == 1) {
    T* __restrict__ as = acc + acc_offset;
    for (int64_t j = lo; j < hi; ++j) as[j] += a[j] * b[j];
  } else {
    for (int64_t j = lo; j < hi; ++j) acc[j * acc_stride + acc_offset] += a[j] * b[j];
  }
}

// out[b, c, i, :] for every c of group g, one item = (b, g, i).
template <typename T>
inline __attribute__((always_inline)) void forward_rows(const T* x, const T* w, T* out,
                                                        const Geometry& g,
                                                        const ColumnRange* cols, int64_t begin,
                                                        int64_t end) {
  const int64_t cg = g.cg(), taps = g.taps();
  for (int64_t item = begin; item < end; ++item) {
    const int64_t i = item % g.HO, bg = item / g.HO, b = bg / g.G, grp = bg % g.G;
    const T* w_bg = w + bg * taps * g.HO * g.WO + i * g.WO;
    for (int64_t c = grp * cg; c < (grp + 1) * cg; ++c) {
      const int64_t plane = b * g.C + c;
      T* out_row = out + (plane * g.HO + i) * g.WO;
      const T* x_plane = x + plane * g.H * g.W;
      for (int64_t u = 0; u < g.kh; ++u) {
        const int64_t y = i * g.sh - g.ph + u * g.dh;
        if (y < 0 || y >= g.H) continue;
        const T* x_row = x_plane + y * g.W;
        for (int64_t v = 0; v < g.kw; ++v) {
          const T* w_row = w_bg + (u * g.kw + v) * g.HO * g.WO;
          fma_row(out_row, w_row, x_row, cols[v].lo, cols[v].hi, g.sw, cols[v].offset);
        }
      }
    }
  }
}

// grad_weight[b, g, :, i, :], one item = (b, g, i); reduces over the channels of the group.
template <typename T>
inline __attribute__((always_inline)) void weight_grad_rows(const T* x, const T* gout, T* gw,
                                                            const Geometry& g,
                                                            const ColumnRange* cols,
                                                            int64_t begin, int64_t end) {
  const int64_t cg = g.cg(), taps = g.taps();
  for (int64_t item = begin; item < end; ++item) {
    const int64_t i = item % g.HO, bg = item / g.HO, b = bg / g.G, grp = bg % g.G;
    T* gw_bg = gw + bg * taps * g.HO * g.WO + i * g.WO;
    for (int64_t u = 0; u < g.kh; ++u) {
      const int64_t y = i * g.sh - g.ph + u * g.dh;
      if (y < 0 || y >= g.H) continue;
      for (int64_t v = 0; v < g.kw; ++v) {
        T* gw_row = gw_bg + (u * g.kw + v) * g.HO * g.WO;
        for (int64_t c = grp * cg; c < (grp + 1) * cg; ++c) {
          const int64_t plane = b * g.C + c;
          const T* go_row = gout + (plane * g.HO + i) * g.WO;
          const T* x_row = x + (plane * g.H + y) * g.W;
          fma_row(gw_row, go_row, x_row, cols[v].lo, cols[v].hi, g.sw, cols[v].offset);
        }
      }
    }
  }
}

// grad_input[b, c, y, :] for every c of group g, one item = (b, g, y): gathers the output rows
// that read input row y and scatters along the row this item owns.
template <typename T>
inline __attribute__((always_inline)) void input_grad_rows(const T* w, const T* gout, T* gx,
                                                           const Geometry& g,
                                                           const ColumnRange* cols, int64_t begin,
                                                           int64_t end) {
  const int64_t cg = g.cg(), taps = g.taps();
  for (int64_t item = begin; item < end; ++item) {
    const int64_t y = item % g.H, bg = item / g.H, b = bg / g.G, grp = bg % g.G;
    const T* w_bg = w + bg * taps * g.HO * g.WO;
    for (int64_t c = grp * cg; c < (grp + 1) * cg; ++c) {
      const int64_t plane = b * g.C + c;
      T* gx_row = gx + (plane * g.H + y) * g.W;
      for (int64_t u = 0; u < g.kh; ++u) {
        const int64_t num = y + g.ph - u * g.dh;  // = i * sh for the output row i reading y
        if (num < 0 || num % g.sh != 0) continue;
        const int64_t i = num / g.sh;
        if (i >= g.HO) continue;
        const T* go_row = gout + (plane * g.HO + i) * g.WO;
        for (int64_t v = 0; v < g.kw; ++v) {
          const T* w_row = w_bg + ((u * g.kw + v) * g.HO + i) * g.WO;
          scatter_row(gx_row, w_row, go_row, cols[v].lo, cols[v].hi, g.sw, cols[v].offset);
        }
      }
    }
  }
}

// Non-template entry points so that target_clones can make one copy per instruction set.
#define INVNAS_DEFINE_KERNEL(NAME, IMPL, T, A, B_, OUT)                                         \
  INVNAS_CLONES void NAME(const T* A, const T* B_, T* OUT, const Geometry& g,                  \
                          const ColumnRange* cols, int64_t begin, int64_t end) {               \
    IMPL<T>(A, B_, OUT, g, cols, begin, end);                                                  \
  }

INVNAS_DEFINE_KERNEL(forward_f32, forward_rows, float, x, w, out)
INVNAS_DEFINE_KERNEL(forward_f64, forward_rows, double, x, w, out)
INVNAS_DEFINE_KERNEL(weight_grad_f32, weight_grad_rows, float, x, gout, gw)
INVNAS_DEFINE_KERNEL(weight_grad_f64, weight_grad_rows, double, x, gout, gw)
INVNAS_DEFINE_KERNEL(input_grad_f32, input_grad_rows, float, w, gout, gx)
INVNAS_DEFINE_KERNEL(input_grad_f64, input_grad_rows, double, w, gout, gx)

using KernelF32 = void (*)(const float*, const float*, float*, const Geometry&,
                           const ColumnRange*, int64_t, int64_t);
using KernelF64 = void (*)(const double*, const double*, double*, const Geometry&,
                           const ColumnRange*, int64_t, int64_t);

Geometry make_geometry(const at::Tensor& input, const at::Tensor& weight, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 5, "involution_cpu: bad ranks");
  TORCH_CHECK(input.is_contiguous() && weight.is_contiguous(), "involution_cpu: not contiguous");
  TORCH_CHECK(input.device().is_cpu() && weight.device().is_cpu(), "involution_cpu: CPU only");
  TORCH_CHECK(input.scalar_type() == weight.scalar_type(), "involution_cpu: dtype mismatch");
  Geometry g{input.size(0), input.size(1), input.size(2), input.size(3), weight.size(1),
             weight.size(3), weight.size(4), kh, kw, sh, sw, ph, pw, dh, dw};
  TORCH_CHECK(g.G > 0 && g.C % g.G == 0, "involution_cpu: groups must divide channels");
  TORCH_CHECK(weight.size(0) == g.B && weight.size(2) == kh * kw, "involution_cpu: bad weight");
  return g;
}

// Items per task: enough work per task to amortise the thread hand-off on tiny problems.
int64_t grain(int64_t work_per_item) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, work_per_item)); }

template <typename KF, typename KD>
void launch(const at::Tensor& a, const at::Tensor& b, at::Tensor& out, const Geometry& g,
            int64_t items, int64_t work_per_item, KF kf, KD kd) {
  const std::vector<ColumnRange> cols = column_ranges(g);
  const ColumnRange* c = cols.data();
  if (out.scalar_type() == at::kFloat) {
    const float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
    float* po = out.data_ptr<float>();
    at::parallel_for(0, items, grain(work_per_item),
                     [&](int64_t begin, int64_t end) { kf(pa, pb, po, g, c, begin, end); });
  } else if (out.scalar_type() == at::kDouble) {
    const double *pa = a.data_ptr<double>(), *pb = b.data_ptr<double>();
    double* po = out.data_ptr<double>();
    at::parallel_for(0, items, grain(work_per_item),
                     [&](int64_t begin, int64_t end) { kd(pa, pb, po, g, c, begin, end); });
  } else {
    TORCH_CHECK(false, "involution_cpu: float32 or float64 only, got ", out.scalar_type());
  }
}

at::Tensor forward(const at::Tensor& input, const at::Tensor& weight, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  at::Tensor out = at::zeros({g.B, g.C, g.HO, g.WO}, input.options());
  launch(input, weight, out, g, g.B * g.G * g.HO, g.cg() * g.taps() * g.WO,
         static_cast<KernelF32>(forward_f32), static_cast<KernelF64>(forward_f64));
  return out;
}

at::Tensor backward_input(const at::Tensor& grad_out, const at::Tensor& input,
                          const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  TORCH_CHECK(grad_out.is_contiguous(), "involution_cpu: grad_out not contiguous");
  at::Tensor grad_input = at::zeros_like(input);
  launch(weight, grad_out, grad_input, g, g.B * g.G * g.H, g.cg() * g.taps() * g.WO / g.sh,
         static_cast<KernelF32>(input_grad_f32), static_cast<KernelF64>(input_grad_f64));
  return grad_input;
}

at::Tensor backward_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           const at::Tensor& weight, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  const Geometry g = make_geometry(input, weight, kh, kw, sh, sw, ph, pw, dh, dw);
  TORCH_CHECK(grad_out.is_contiguous(), "involution_cpu: grad_out not contiguous");
  at::Tensor grad_weight = at::zeros_like(weight);
  launch(input, grad_out, grad_weight, g, g.B * g.G * g.HO, g.cg() * g.taps() * g.WO,
         static_cast<KernelF32>(weight_grad_f32), static_cast<KernelF64>(weight_grad_f64));
  return grad_weight;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "invnas involution CPU kernels";
  m.def("forward", &forward, "involution forward");
  m.def("backward_input", &backward_input, "involution gradient w.r.t. the input");
  m.def("backward_weight", &backward_weight, "involution gradient w.r.t. the weight");
}
