// CPU kernels of vocoder_ext::conv1d_lrelu (the discriminators' strided, grouped convs with a leaky-ReLU
// epilogue) and its backward, on the tiled conv1d kernel of conv1d_kernel.h.
//
// Groups: x [B, C, T] is [B * g, C / g, T] with group b % g's weights (the kernel's `groups`), so one
// launch serves every group. Stride s: the input is split into its s phases x_r[j] = x[j * s + r] once;
// each phase is a stride-1 conv with the taps k = P + r (mod s), the phases accumulating into y (the
// kernel's residual), the last one applying the epilogue leaky-ReLU. Columns ([B, C, T, W], the MPD):
// (time, column) flattened, a time step is a dilation of W, so short time axes still fill the vectors.
// Backward: grad_x is the transposed conv of grad_out * leaky'(out), polyphase over x's phases
// (csrc/polyphase.h); grad_w one matrix product per tap over (batch, time, column).
//
// Per part (forward, grad_x, grad_w), ours or oneDNN (ATen's conv), whichever measured faster at the
// discriminators' shapes (the *_pays rules below), with the same epilogue and leaky'. bf16 inputs (--amp) on an
// AVX512_BF16 CPU run our kernels with bf16 products and fp32 sums and the weight gradient as bf16 matmuls;
// elsewhere they go to oneDNN's bf16 convs whole.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../checks.h"
#include "../polyphase.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "conv1d_runner.h"
#include "isa.h"

namespace vocoder_ext::cpu {
namespace {

at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

bool is_bf16(const at::Tensor& x) { return x.scalar_type() == at::kBFloat16; }

// The dtype oneDNN's convs and the weight-gradient matmuls take: bf16 for bf16 tensors, else the compute dtype.
at::ScalarType matmul_dtype(const at::Tensor& x) {
  return is_bf16(x) ? at::kBFloat16 : compute_dtype(x.scalar_type());
}

// Whether our kernels compute with bf16 products: bf16 inputs (the recipe's --amp on CPU) or PyTorch's switch
// for fp32 convs (bf16_compute), on a CPU with AVX512_BF16. bf16 inputs elsewhere go to oneDNN's bf16 convs
// whole (no warning: they compute in bf16 as asked).
bool bf16_kernels(const at::Tensor& x) {
  if (is_bf16(x)) return selected_isa() == Isa::kAvx512Bf16;
  return bf16_compute(x);
}

// VOCODER_EXT_DISC_KERNELS=own|onednn puts every part of every call on one side (the tests run both sides on
// every shape; the benchmarks compare them); unset or "auto": the measured choice below. Read at each call.
enum class Side { kAuto, kOwn, kOneDnn };
Side forced_side() {
  const char* e = std::getenv("VOCODER_EXT_DISC_KERNELS");
  if (e == nullptr || *e == 0 || std::string(e) == "auto") return Side::kAuto;
  if (std::string(e) == "own") return Side::kOwn;
  TORCH_CHECK(std::string(e) == "onednn", "VOCODER_EXT_DISC_KERNELS must be own, onednn or auto; got '", e, "'");
  return Side::kOneDnn;
}

// Phase r of x4 [B, C, T, W] (x4[:, :, r::s]) copied into dst [B, C, steps, W] (any strides, any dtype: converted
// as it is copied) from step `offset` on; -> the steps it filled. The caller zeroes the others.
int64_t copy_phase(const at::Tensor& dst, const at::Tensor& x4, int64_t r, int64_t s, int64_t offset) {
  const int64_t t = x4.size(2), tr = r < t ? (t - r + s - 1) / s : 0;
  if (tr > 0) dst.narrow(2, offset, tr).copy_(x4.slice(2, r, t, s));
  return tr;
}

// x [B, C, T] or [B, C, T, W], any dtype and layout -> [s, B, C, ceil(T / s) * W] in `dt` with phase r holding
// x[:, :, r::s] (zeros past T), columns innermost, contiguous: one copy (none for stride 1 in `dt` already).
at::Tensor phases(const at::Tensor& x, int64_t s, at::ScalarType dt) {
  const at::Tensor x4 = x.dim() == 3 ? x.unsqueeze(3) : x;
  const int64_t batch = x4.size(0), c = x4.size(1), t = x4.size(2), w = x4.size(3), tq = (t + s - 1) / s;
  if (s == 1) return x4.to(dt).contiguous().view({1, batch, c, t * w});
  at::Tensor out = at::empty({s, batch, c, tq, w}, x.options().dtype(dt));
  for (int64_t r = 0; r < s; ++r) {
    if (const int64_t tr = copy_phase(out[r], x4, r, s, 0); tr < tq) out[r].narrow(2, tr, tq - tr).zero_();
  }
  return out.view({s, batch, c, tq * w});
}

// Taps k with (k - padding) = r (mod s): the first one, how many, and where it reads phase r: x_r[j + q0 + u]
// for tap k0 + u * s.
struct PhaseTaps {
  int64_t k0, taps, q0;
};

PhaseTaps phase_taps(int64_t r, int64_t s, int64_t padding, int64_t k) {
  const int64_t k0 = (padding + r) % s;
  return {k0, k0 < k ? (k - k0 + s - 1) / s : 0, (k0 - padding - r) / s};
}

// The kernel's input rows: a bf16 tensor as its bits (only the bf16 kernel reads them), else in the compute dtype.
template <typename scalar_t>
void set_input(Conv1dParamsT<scalar_t>& p, const at::Tensor& rows) {
  if (is_bf16(rows)) p.x_bf16 = reinterpret_cast<const uint16_t*>(rows.const_data_ptr<at::BFloat16>());
  else p.x = rows.const_data_ptr<scalar_t>();
}

int64_t columns(const at::Tensor& x) { return x.dim() == 4 ? x.size(3) : 1; }

// Which side computes each part, from the per-layer timings of both sides at the discriminators' shapes
// (MPD + MSD at batch 4 x 8192 samples, 2-core AVX-512 EPYC, 2026-11-26; `bench --disc-only` prints them).
// outputs = T_out * W, the output positions per channel. In fp32, oneDNN's blocked weights beat our per-call
// packing of the dense layers' 20 MB weights, and its grouped convs win at few output steps; in bf16 its
// grouped convs are slow (0.4-0.8x ours at >= 128 outputs) and its weight gradients of the long and the dense
// layers up to 2x slower than our per-tap bf16 matmuls.
bool own_forward_pays(bool bf16, int64_t c_out, int64_t groups, int64_t stride, int64_t outputs) {
  if (const Side f = forced_side(); f != Side::kAuto) return f == Side::kOwn;
  if (c_out == 1) return true;  // the 1-channel last layers: 0.3 ms against oneDNN's 0.4-0.8
  return groups > 1 && (outputs >= 128 || (bf16 && stride == 1));
}
bool own_grad_x_pays(bool bf16, int64_t c_in, int64_t c_out, int64_t groups, int64_t stride, int64_t t_in,
                     int64_t outputs) {
  if (const Side f = forced_side(); f != Side::kAuto) return f == Side::kOwn;
  if (c_in == 1 || c_out == 1) return true;  // the first layers' grad_x: 1.4-1.6x oneDNN's
  if (groups == 1) return false;
  return stride == 1 ? outputs >= 128 : !bf16 && t_in >= 2048;
}
bool own_grad_w_pays(bool bf16, int64_t c_out, int64_t groups, int64_t stride, int64_t outputs) {
  if (const Side f = forced_side(); f != Side::kAuto) return f == Side::kOwn;
  if (c_out == 1) return false;
  if (bf16) return groups == 1 || stride == 1 || outputs >= 256;
  return groups > 1 || c_out >= 1024;
}

// ATen's conv (oneDNN) of the same shapes: [B, C, T] conv1d, or [B, C, T, W] as a (K, 1) conv2d.
at::Tensor aten_conv(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride, int64_t padding,
                     int64_t groups) {
  if (x.dim() == 4) return at::conv2d(x, w.unsqueeze(3), b, {stride, 1}, {padding, 0}, {1, 1}, groups);
  return at::conv1d(x, w, b, stride, padding, 1, groups);
}

// Over the flattened (time, column) axis, a step of time is `cols` apart: the kernel's dilation, and its
// zero padding past either end of time is past the ends of the flattened row too.
at::Tensor conv1d_lrelu_cpu(const at::Tensor& x_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            int64_t stride, int64_t padding, int64_t groups, double slope) {
  checks::check_conv1d_lrelu(c10::DeviceType::CPU, x_in, weight, bias, stride, padding, groups);
  const bool bf16 = bf16_kernels(x_in);
  const int64_t t_out = checks::conv_out_len(x_in.size(2), weight.size(2), stride, padding), cols = columns(x_in);
  if ((is_bf16(x_in) && !bf16) || !own_forward_pays(bf16, weight.size(0), groups, stride, t_out * cols)) {
    const at::ScalarType ct = matmul_dtype(x_in);
    at::Tensor y = aten_conv(x_in.to(ct), weight.to(ct), bias ? bias->to(ct) : at::Tensor(), stride, padding, groups);
    if (slope != 1.0) at::leaky_relu_(y, slope);
    return y.to(x_in.scalar_type());
  }
  const at::ScalarType ct = compute_dtype(x_in.scalar_type());
  const at::Tensor w = weight.to(ct).contiguous(), b = bias ? bias->to(ct).contiguous() : at::Tensor();
  const int64_t batch = x_in.size(0), c_out = w.size(0), cg = w.size(1), k = w.size(2);
  // bf16 inputs stay bf16 (the bf16 kernel stages their bits); anything else in the compute dtype
  const bool bf16_bits = bf16 && is_bf16(x_in);
  const at::Tensor xp = phases(x_in, stride, bf16_bits ? at::kBFloat16 : ct);
  at::Tensor y = x_in.dim() == 4 ? at::empty({batch, c_out, t_out, cols}, w.options())
                                 : at::empty({batch, c_out, t_out}, w.options());
  std::vector<int64_t> used;  // phases some tap reads
  for (int64_t r = 0; r < stride; ++r)
    if (phase_taps(r, stride, padding, k).taps > 0) used.push_back(r);
  AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_conv1d_lrelu", [&] {
    for (size_t i = 0; i < used.size(); ++i) {
      const PhaseTaps pt = phase_taps(used[i], stride, padding, k);
      Conv1dParamsT<scalar_t> p{};
      set_input(p, xp[used[i]]);
      p.t_in = p.x_row = xp.size(3);
      p.w = w.const_data_ptr<scalar_t>() + pt.k0;
      p.w_co = cg * k, p.w_ci = k, p.w_k = stride;
      p.groups = groups, p.w_group = (c_out / groups) * cg * k;
      p.bias = (i == 0 && bias) ? b.const_data_ptr<scalar_t>() : nullptr;
      p.residual = i == 0 ? nullptr : y.const_data_ptr<scalar_t>();  // the phases before, accumulated in y
      p.y = y.mutable_data_ptr<scalar_t>();
      p.batch = batch * groups, p.c_in = cg, p.c_out = c_out / groups;
      p.k = pt.taps, p.dilation = cols, p.pad = -pt.q0 * cols;
      p.t_out = p.y_row = t_out * cols, p.y_off = 0, p.y_step = 1;
      p.slope = scalar_t(1), p.gate_slope = scalar_t(1);
      p.leaky_out = i + 1 == used.size() && slope != 1.0, p.out_slope = static_cast<scalar_t>(slope);
      run_conv1d(p, bf16);
    }
  });
  return y.to(x_in.scalar_type());
}

// grad_out * leaky'(out) as `dtype` (computed in fp32, or fp64 for fp64), leaky' read from the output's sign
// (slope > 0), in one pass: where(out > 0, g, g * slope) took three.
at::Tensor leaky_grad(const at::Tensor& grad_out, const at::Tensor& out, double slope, at::ScalarType dtype) {
  const at::Tensor go = grad_out.contiguous(), o = out.contiguous();
  at::Tensor g = at::empty(go.sizes(), go.options().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, go.scalar_type(), "vocoder_ext_leaky_grad", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = go.const_data_ptr<scalar_t>();
    const scalar_t* op = o.const_data_ptr<scalar_t>();
    const acc_t s = static_cast<acc_t>(slope);
    auto run = [&](auto* dst) {
      using out_t = std::remove_pointer_t<decltype(dst)>;
      at::parallel_for(0, go.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const acc_t v = static_cast<acc_t>(gp[i]);
          dst[i] = static_cast<out_t>(static_cast<acc_t>(op[i]) > acc_t(0) ? v : v * s);
        }
      });
    };
    if (dtype == go.scalar_type()) run(g.mutable_data_ptr<scalar_t>());
    else run(g.mutable_data_ptr<acc_t>());
  });
  return g;
}

// The backward's own kernels: g = grad_out * leaky' [B, C_out, T_out(, W)] contiguous, in the compute dtype or
// (for the bf16 kernel) bf16; x [B, C_in, T(, W)]; w [C_out, C_in / groups, K] contiguous in the compute dtype;
// bf16: bf16 products. -> the compute dtype.
at::Tensor own_grad_x(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                      int64_t groups, bool bf16) {
  const int64_t batch = x.size(0), c_in = x.size(1), t_in = x.size(2), cols = columns(x);
  const int64_t cg = w.size(1), k = w.size(2), og = w.size(0) / groups, t_out = g.size(2);
  // grad_x[j * s + r] gathers g through the taps k = r + P (mod s): per phase r of x, a stride-1 conv over g
  // (transposed weights [C_in/g rows of output, C_out/g of input], taps reversed), into phase-major rows
  // [s, B, C_in, ceil(T / s) * W] interleaved back at the end.
  const int64_t tq = (t_in + stride - 1) / stride;
  TORCH_CHECK(bf16 || !is_bf16(g), "conv1d_lrelu_backward: only the bf16 kernel reads a bf16 gradient");
  at::Tensor gx = at::empty({stride, batch, c_in, tq * cols}, w.options());
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "vocoder_ext_conv1d_lrelu_backward", [&] {
    for (int64_t r = 0; r < stride; ++r) {
      const Phase phase = transposed_conv_phase(r, stride, padding, k, tq * stride);
      at::Tensor dst = gx[r];
      if (phase.taps == 0) {
        dst.zero_();
        continue;
      }
      Conv1dParamsT<scalar_t> p{};
      set_input(p, g);
      p.t_in = p.x_row = t_out * cols;
      p.w = w.const_data_ptr<scalar_t>() + phase.first_tap + (phase.taps - 1) * stride;
      p.w_co = k, p.w_ci = cg * k, p.w_k = -stride;
      p.groups = groups, p.w_group = og * cg * k;
      p.y = dst.mutable_data_ptr<scalar_t>();
      p.batch = batch * groups, p.c_in = og, p.c_out = cg;
      p.k = phase.taps, p.dilation = cols, p.pad = phase.pad * cols;
      p.t_out = p.y_row = tq * cols, p.y_off = 0, p.y_step = 1;
      p.slope = scalar_t(1), p.gate_slope = scalar_t(1);
      run_conv1d(p, bf16);
    }
  });
  at::Tensor grad_x = stride == 1 ? gx[0].view({batch, c_in, tq, cols})
                                  : gx.view({stride, batch, c_in, tq, cols}).permute({1, 2, 3, 0, 4})
                                        .reshape({batch, c_in, tq * stride, cols}).narrow(2, 0, t_in);
  return x.dim() == 4 ? grad_x.contiguous() : grad_x.reshape({batch, c_in, t_in});
}

// grad_w in the product's dtype `mt` (bf16 for bf16 products: ATen's bf16 matmul, fp32 sums); g and x in any
// dtype and layout: they are converted as they are gathered.
at::Tensor own_grad_w(const at::Tensor& g, const at::Tensor& x, int64_t c_out, int64_t k, int64_t stride,
                      int64_t padding, int64_t groups, at::ScalarType mt) {
  const int64_t batch = x.size(0), c_in = x.size(1), t = x.size(2), cols = columns(x), tq = (t + stride - 1) / stride;
  const int64_t cg = c_in / groups, og = c_out / groups, t_out = g.size(2);
  // grad_w[:, :, k] = sum over (b, j, column) of g[b, :, j] x[b, :, j * s + k - P], per group. Tap k reads
  // phase r = (k - P) mod s of x at j + q. Each item's phase rows are padded to L = T'' * W positions, so tap k
  // reads them at offset (q - q_min) * W, and g's rows are zero-padded to L too: then every tap is one matrix
  // product over all (b, position) pairs, on a view of the flattened rows that runs from one item into the
  // next only where g is zero. g and each phase of x are gathered into that layout in one copy each.
  std::vector<std::pair<int64_t, int64_t>> tap_at(k);  // tap k reads phase r at j + q: (r, q), from phase_taps
  int64_t q_min = 0, q_max = 0;
  for (int64_t r = 0; r < stride; ++r) {
    const PhaseTaps pt = phase_taps(r, stride, padding, k);
    for (int64_t u = 0; u < pt.taps; ++u) tap_at[pt.k0 + u * stride] = {r, pt.q0 + u};
    if (pt.taps > 0) q_min = std::min(q_min, pt.q0), q_max = std::max(q_max, pt.q0 + pt.taps - 1);
  }
  const int64_t steps = tq - q_min + std::max<int64_t>(0, t_out + q_max - tq), row = steps * cols;
  const int64_t span = (q_max - q_min) * cols, n = batch * row;
  const at::TensorOptions opts = x.options().dtype(mt);
  // [g, C_out/g, B * L]
  const at::Tensor gp = at::zeros({groups, og, n}, opts);
  gp.view({groups, og, batch, row}).permute({2, 0, 1, 3}).narrow(3, 0, t_out * cols)
      .copy_(g.reshape({batch, groups, og, t_out * cols}));
  // per phase r [g, C_in/g, B * L + span]: x[:, :, r::s] at steps -q_min.. of each item's row
  const at::Tensor x4 = x.dim() == 3 ? x.unsqueeze(3) : x;
  std::vector<at::Tensor> flat(stride);
  auto tap_rows = [&](int64_t kk) {  // [g, C_in/g, B * L], a view
    const auto [r, q] = tap_at[kk];
    if (!flat[r].defined()) {
      flat[r] = at::zeros({groups, cg, n + span}, opts);
      copy_phase(flat[r].narrow(2, 0, n).view({c_in, batch, steps, cols}).transpose(0, 1), x4, r, stride, -q_min);
    }
    return flat[r].narrow(2, (q - q_min) * cols, n);
  };
  // One product over all (input channel, tap) pairs where their rows are few or short (the 1-channel first
  // layers; the dense layers, whose inputs are short): it writes grad_w in its own layout. Else one product per
  // tap, and one transposing copy at the end.
  if (cg * k <= 64 || k * c_in * n <= (int64_t(1) << 23)) {
    std::vector<at::Tensor> taps;
    for (int64_t kk = 0; kk < k; ++kk) taps.push_back(tap_rows(kk));
    const at::Tensor im2col = at::stack(taps, 2).reshape({groups, cg * k, n});  // [g, C_in/g, K, B * L]
    return at::bmm(gp, im2col.transpose(1, 2)).reshape({c_out, cg, k});
  }
  at::Tensor grad_w = at::empty({k, groups, og, cg}, opts);
  for (int64_t kk = 0; kk < k; ++kk) {
    at::Tensor dst = grad_w[kk];
    at::bmm_out(dst, gp, tap_rows(kk).transpose(1, 2));
  }
  // contiguous: with groups = 1 the reshape is a view whose taps lie C_out * C_in apart, which every later
  // consumer (the cast to fp32, weight norm's backward) reads many times slower than this one copy
  return grad_w.permute({1, 2, 3, 0}).reshape({c_out, cg, k}).contiguous();
}

// ATen's gradients (oneDNN) for those of `mask`: g in the dtype ATen computes in.
std::array<at::Tensor, 3> aten_grads(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, int64_t stride,
                                     int64_t padding, int64_t groups, std::array<bool, 3> mask) {
  const int64_t c_out = w.size(0);
  auto [gx, gw, gb] = x.dim() == 4
      ? at::convolution_backward(g, x, w.unsqueeze(3), c10::IntArrayRef{c_out}, {stride, 1}, {padding, 0}, {1, 1},
                                 false, {0, 0}, groups, mask)
      : at::convolution_backward(g, x, w, c10::IntArrayRef{c_out}, {stride}, {padding}, {1}, false, {0}, groups,
                                 mask);
  return {gx, mask[1] && x.dim() == 4 ? gw.squeeze(3) : gw, gb};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_lrelu_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x_in, const at::Tensor& weight, int64_t stride,
    int64_t padding, int64_t groups, double slope, std::array<bool, 3> output_mask) {
  checks::check_conv1d_lrelu(c10::DeviceType::CPU, x_in, weight, std::nullopt, stride, padding, groups);
  const int64_t batch = x_in.size(0), cols = columns(x_in), c_out = weight.size(0), k = weight.size(2);
  const int64_t t_out = checks::conv_out_len(x_in.size(2), k, stride, padding);
  std::vector<int64_t> out_shape{batch, c_out, t_out};
  if (x_in.dim() == 4) out_shape.push_back(cols);
  for (const at::Tensor* t : {&grad_out, &out})
    TORCH_CHECK(t->sizes() == at::IntArrayRef(out_shape) && t->scalar_type() == x_in.scalar_type(),
                "conv1d_lrelu_backward: grad_out and out must be ", x_in.scalar_type(), " ", at::IntArrayRef(out_shape),
                ", got ", t->scalar_type(), " ", t->sizes());
  const auto dt = x_in.scalar_type();
  const at::Tensor none = at::empty({0}, x_in.options());  // what a masked-off gradient comes back as
  const bool bf16 = bf16_kernels(x_in), aten_only = is_bf16(x_in) && !bf16;
  const bool own_x = output_mask[0] && !aten_only &&
                     own_grad_x_pays(bf16, x_in.size(1), c_out, groups, stride, x_in.size(2) * cols, t_out * cols);
  const bool own_w =
      output_mask[1] && !aten_only && own_grad_w_pays(bf16 && is_bf16(x_in), c_out, groups, stride, t_out * cols);
  // g = grad_out * leaky' in the dtype every consumer takes: bf16 for bf16 inputs (the bf16 kernel stages its
  // bits, the matmuls and oneDNN multiply it; one pass instead of a conversion more), else fp32 (fp64 for fp64).
  const at::ScalarType gt = is_bf16(x_in) ? at::kBFloat16 : compute_dtype(dt);
  const at::Tensor g = leaky_grad(grad_out, out, slope, gt);
  std::array<at::Tensor, 3> grads{none, none, none};
  const std::array<bool, 3> aten_mask{output_mask[0] && !own_x, output_mask[1] && !own_w, false};
  if (aten_mask[0] || aten_mask[1]) {
    const at::ScalarType ct = matmul_dtype(x_in);
    const auto [gx, gw, gb] = aten_grads(g.to(ct), x_in.to(ct).contiguous(), weight.to(ct).contiguous(), stride,
                                         padding, groups, aten_mask);
    if (aten_mask[0]) grads[0] = gx.to(dt);
    if (aten_mask[1]) grads[1] = gw.to(dt);
  }
  if (own_x) {  // x only for its shape
    grads[0] = own_grad_x(g, x_in, weight.to(compute_dtype(dt)).contiguous(), stride, padding, groups, bf16).to(dt);
  }
  if (own_w) {
    // bf16 products where the tensors are bf16 (--amp); under the fp32 switch the gradient stays fp32 (its
    // rounding to bf16 would cost more accuracy than the switch asks for).
    const at::ScalarType mt = matmul_dtype(x_in);
    grads[1] = own_grad_w(g, x_in, c_out, k, stride, padding, groups, mt).to(dt);
  }
  if (output_mask[2]) {
    const at::ScalarType acc = compute_dtype(dt);
    grads[2] = (x_in.dim() == 4 ? g.sum(at::IntArrayRef{0, 2, 3}, false, acc) : g.sum(at::IntArrayRef{0, 2}, false, acc))
                   .to(dt);
  }
  return {grads[0], grads[1], grads[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("conv1d_lrelu", &conv1d_lrelu_cpu);
  m.impl("conv1d_lrelu_backward", &conv1d_lrelu_backward_cpu);
}

}  // namespace vocoder_ext::cpu
