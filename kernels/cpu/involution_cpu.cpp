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
//
// This file holds the ATen side (argument checks, threading, the Python bindings); the kernels
// live in one translation unit each (forward.cpp, weight_grad.cpp, input_grad.cpp,
// stride_pool.cpp), which include no torch header and build in parallel.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/utils/pybind.h>  // lighter than torch/extension.h: a faster first build

#include <algorithm>
#include <cstdint>

#include "geometry.h"

namespace invnas_cpu {

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

// Tuning constants: powers of two set by hand when the kernels were written, on a 2-core
// x86-64 machine and RedNet's shapes (2x2 to 56x56 maps, batch 8); not swept systematically.
// Each puts the overhead it guards against at about an order of magnitude below the work.
//   kSerialWork   multiply-adds below which a launch stays on the calling thread (2^18 take
//                 tens of microseconds, the order of starting a parallel region);
//   kChunkWork    least multiply-adds per chunk taken from the work queue, so the atomic
//                 fetch-add of each chunk costs < 1 % of it;
//   kItemsPerThread  items per thread the row bands aim for (bands of a plane when there are
//                 fewer (b, g) planes), so a thread slowed by other processes holds back < 1/8
//                 of the work;
//   kBandBytes    the most an item's padded input (lane buffer) may take: 256 KiB, a share of
//                 a core's L2 cache (1-2 MiB on current x86-64) beside the weight and output;
//   kPoolGrain    least input elements per thread in the stride pool (a memory-bound copy).
constexpr int64_t kSerialWork = 1 << 18;
constexpr int64_t kChunkWork = 1 << 16;
constexpr int64_t kItemsPerThread = 8;
constexpr int64_t kBandBytes = int64_t(1) << 18;
constexpr int64_t kPoolGrain = 1 << 16;

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

// Output rows per item: whole planes, unless that leaves fewer than kItemsPerThread items per
// thread or the item's padded input (lane buffer) would outgrow kBandBytes.
int64_t band_rows(const Geometry& g, int64_t element_size) {
  int64_t band = g.HO;
  const int64_t want = kItemsPerThread * std::max<int64_t>(1, at::get_num_threads()), planes = g.B * g.G;
  if (planes < want) {
    const int64_t bands = std::min(g.HO, (want + planes - 1) / planes);
    band = (g.HO + bands - 1) / bands;
  }
  const int64_t row_bytes = g.padded_w() * ((g.cg() * element_size + 63) / 64) * 64;
  const int64_t rows = kBandBytes / row_bytes - (g.kh - 1) * g.dh;
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

// Runs fn(first_plane, plane_count) over planes, threaded when there is enough memory traffic.
template <typename Fn>
void over_planes(int64_t planes, int64_t plane_size, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, kPoolGrain / std::max<int64_t>(1, plane_size));
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

}  // namespace invnas_cpu

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "invnas involution CPU kernels";
  m.def("forward", &invnas_cpu::forward, "involution forward");
  m.def("backward_input", &invnas_cpu::backward_input, "involution gradient w.r.t. the input");
  m.def("backward_weight", &invnas_cpu::backward_weight, "involution gradient w.r.t. the weight");
  m.def("stride_pool", &invnas_cpu::stride_pool,
        "average pool by the stride (ceil mode, real pixels)");
  m.def("stride_pool_backward", &invnas_cpu::stride_pool_backward, "gradient of stride_pool");
}
