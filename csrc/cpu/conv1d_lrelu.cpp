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
// Where oneDNN (ATen's conv) measured faster, it runs instead, with the same epilogue and leaky': the forward
// of dense (groups 1) convs, and the backward of small or short ones. Measured on a 2-core AVX-512 EPYC, the
// discriminators' shapes at 8192 samples: our forward wins on the MSD's grouped convs with long outputs
// (1.0-2.3x) and loses on dense ones (0.5-0.9x: oneDNN's blocked weights beat our per-call packing of a 20 MB
// weight) and on grouped ones with few output steps (0.6-0.9x at <= 129); our backward wins on wide layers with
// >= 32 output steps per column (1.3-1.6x) and on grouped ones with long outputs, and loses on the rest.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../checks.h"
#include "../polyphase.h"

#include <array>
#include <optional>
#include <tuple>
#include <vector>

#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// bf16 inputs (the recipe's --amp on CPU) go to oneDNN's bf16 convs whole: our kernels compute in fp32, which
// measured 0.71x eager's bf16 step (2026-11-26), until they get a bf16 path of their own.
bool oneDNN_bf16(const at::Tensor& x) { return x.scalar_type() == at::kBFloat16; }

// x [B, C, T] or [B, C, T, W] -> [s, B, C, ceil(T / s) * W] with phase r holding x[:, :, r::s] (zeros past T),
// columns innermost, contiguous.
at::Tensor phases(const at::Tensor& x, int64_t s) {
  const at::Tensor x4 = x.dim() == 3 ? x.unsqueeze(3) : x;
  const int64_t t = x4.size(2), w = x4.size(3), tq = (t + s - 1) / s;
  if (s == 1) return x4.reshape({1, x4.size(0), x4.size(1), t * w});
  return at::constant_pad_nd(x4, {0, 0, 0, tq * s - t})
      .view({x4.size(0), x4.size(1), tq, s, w})
      .permute({3, 0, 1, 2, 4})
      .reshape({s, x4.size(0), x4.size(1), tq * w})
      .contiguous();  // reshape may keep a strided view (W = 1), the kernel reads unit-stride rows
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

int64_t columns(const at::Tensor& x) { return x.dim() == 4 ? x.size(3) : 1; }

// outputs: T_out * W, the output positions per channel. Grouped convs with few of them (the MSD's later layers
// at its pooled scales) went to oneDNN's side in the per-layer table of `bench --disc-only` (2026-11-26).
bool own_forward(int64_t groups, int64_t outputs) { return groups > 1 && outputs >= 256; }
bool own_backward(int64_t groups, int64_t c_out, int64_t t_out, int64_t outputs) {
  return groups > 1 ? outputs >= 512 : c_out >= 256 && t_out >= 32;
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
  const at::ScalarType ct = oneDNN_bf16(x_in) ? at::kBFloat16 : compute_dtype(x_in.scalar_type());
  const at::Tensor x = x_in.to(ct).contiguous(), w = weight.to(ct).contiguous();
  const at::Tensor b = bias ? bias->to(ct).contiguous() : at::Tensor();
  const int64_t t_out_fwd = checks::conv_out_len(x.size(2), w.size(2), stride, padding);
  if (oneDNN_bf16(x_in) || !own_forward(groups, t_out_fwd * columns(x))) {
    at::Tensor y = aten_conv(x, w, b, stride, padding, groups);
    if (slope != 1.0) at::leaky_relu_(y, slope);
    return y.to(x_in.scalar_type());
  }
  const int64_t batch = x.size(0), c_out = w.size(0), cg = w.size(1), k = w.size(2), cols = columns(x);
  const int64_t t_out = checks::conv_out_len(x.size(2), k, stride, padding);
  const at::Tensor xp = phases(x, stride);
  at::Tensor y = x.dim() == 4 ? at::empty({batch, c_out, t_out, cols}, x.options())
                              : at::empty({batch, c_out, t_out}, x.options());
  std::vector<int64_t> used;  // phases some tap reads
  for (int64_t r = 0; r < stride; ++r)
    if (phase_taps(r, stride, padding, k).taps > 0) used.push_back(r);
  AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_conv1d_lrelu", [&] {
    for (size_t i = 0; i < used.size(); ++i) {
      const PhaseTaps pt = phase_taps(used[i], stride, padding, k);
      Conv1dParamsT<scalar_t> p{};
      p.x = xp[used[i]].const_data_ptr<scalar_t>();
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
      run_conv1d(p);
    }
  });
  return y.to(x_in.scalar_type());
}

// The backward's own kernels: g = grad_out * leaky' [B, C_out, T_out(, W)], x [B, C_in, T(, W)], w [C_out,
// C_in / groups, K], contiguous, in the compute dtype.
at::Tensor own_grad_x(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                      int64_t groups) {
  const int64_t batch = x.size(0), c_in = x.size(1), t_in = x.size(2), cols = columns(x);
  const int64_t cg = w.size(1), k = w.size(2), og = w.size(0) / groups, t_out = g.size(2);
  // grad_x[j * s + r] gathers g through the taps k = r + P (mod s): per phase r of x, a stride-1 conv over g
  // (transposed weights [C_in/g rows of output, C_out/g of input], taps reversed), into phase-major rows
  // [s, B, C_in, ceil(T / s) * W] interleaved back at the end.
  const int64_t tq = (t_in + stride - 1) / stride;
  at::Tensor gx = at::empty({stride, batch, c_in, tq * cols}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "vocoder_ext_conv1d_lrelu_backward", [&] {
    for (int64_t r = 0; r < stride; ++r) {
      const Phase phase = transposed_conv_phase(r, stride, padding, k, tq * stride);
      at::Tensor dst = gx[r];
      if (phase.taps == 0) {
        dst.zero_();
        continue;
      }
      Conv1dParamsT<scalar_t> p{};
      p.x = g.const_data_ptr<scalar_t>();
      p.t_in = p.x_row = t_out * cols;
      p.w = w.const_data_ptr<scalar_t>() + phase.first_tap + (phase.taps - 1) * stride;
      p.w_co = k, p.w_ci = cg * k, p.w_k = -stride;
      p.groups = groups, p.w_group = og * cg * k;
      p.y = dst.mutable_data_ptr<scalar_t>();
      p.batch = batch * groups, p.c_in = og, p.c_out = cg;
      p.k = phase.taps, p.dilation = cols, p.pad = phase.pad * cols;
      p.t_out = p.y_row = tq * cols, p.y_off = 0, p.y_step = 1;
      p.slope = scalar_t(1), p.gate_slope = scalar_t(1);
      run_conv1d(p);
    }
  });
  at::Tensor grad_x = stride == 1 ? gx[0].view({batch, c_in, tq, cols})
                                  : gx.view({stride, batch, c_in, tq, cols}).permute({1, 2, 3, 0, 4})
                                        .reshape({batch, c_in, tq * stride, cols}).narrow(2, 0, t_in);
  return x.dim() == 4 ? grad_x.contiguous() : grad_x.reshape({batch, c_in, t_in});
}

at::Tensor own_grad_w(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, int64_t stride, int64_t padding,
                      int64_t groups) {
  const int64_t batch = x.size(0), c_in = x.size(1), cols = columns(x), tq = (x.size(2) + stride - 1) / stride;
  const int64_t c_out = w.size(0), cg = w.size(1), k = w.size(2), og = c_out / groups, t_out = g.size(2);
  // grad_w[:, :, k] = sum over (b, j, column) of g[b, :, j] x[b, :, j * s + k - P], per group: one product per
  // tap, (batch, time, column) flattened into the reduction. Tap k reads phase r = (k - P) mod s at j + q.
  const at::Tensor xp = phases(x, stride).view({stride, batch, c_in, tq, cols});
  int64_t q_min = 0, q_max = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t d = kk - padding, q = (d - ((d % stride) + stride) % stride) / stride;
    q_min = std::min(q_min, q), q_max = std::max(q_max, q);
  }
  const int64_t lpad = -q_min, rpad = std::max<int64_t>(0, t_out + q_max - tq);
  const at::Tensor xpp = at::constant_pad_nd(xp, {0, 0, lpad, rpad});
  // [g, C_out/g, B * T_out * W]
  const at::Tensor gg = g.view({batch, groups, og, t_out * cols}).permute({1, 2, 0, 3})
                            .reshape({groups, og, batch * t_out * cols});
  at::Tensor grad_w = at::empty({k, groups, og, cg}, x.options());
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t d = kk - padding, r = ((d % stride) + stride) % stride, q = (d - r) / stride;
    const at::Tensor xs = xpp[r].narrow(2, lpad + q, t_out).reshape({batch, groups, cg, t_out * cols});
    const at::Tensor xk = xs.permute({1, 2, 0, 3}).reshape({groups, cg, batch * t_out * cols});
    at::Tensor dst = grad_w[kk];
    at::bmm_out(dst, gg, xk.transpose(1, 2));
  }
  return grad_w.permute({1, 2, 3, 0}).reshape({c_out, cg, k});
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_lrelu_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x_in, const at::Tensor& weight, int64_t stride,
    int64_t padding, int64_t groups, double slope, std::array<bool, 3> output_mask) {
  checks::check_conv1d_lrelu(c10::DeviceType::CPU, x_in, weight, std::nullopt, stride, padding, groups);
  const int64_t batch = x_in.size(0), cols = columns(x_in), c_out = weight.size(0);
  const int64_t t_out = checks::conv_out_len(x_in.size(2), weight.size(2), stride, padding);
  std::vector<int64_t> out_shape{batch, c_out, t_out};
  if (x_in.dim() == 4) out_shape.push_back(cols);
  for (const at::Tensor* t : {&grad_out, &out})
    TORCH_CHECK(t->sizes() == at::IntArrayRef(out_shape) && t->scalar_type() == x_in.scalar_type(),
                "conv1d_lrelu_backward: grad_out and out must be ", x_in.scalar_type(), " ", at::IntArrayRef(out_shape),
                ", got ", t->scalar_type(), " ", t->sizes());
  const at::ScalarType ct = oneDNN_bf16(x_in) ? at::kBFloat16 : compute_dtype(x_in.scalar_type());
  const at::Tensor x = x_in.to(ct).contiguous(), w = weight.to(ct).contiguous();
  at::Tensor g = grad_out.to(ct).contiguous();
  if (slope != 1.0) g = at::where(out > 0, g, g * slope);  // leaky' from the output's sign (slope > 0)
  const auto dt = x_in.scalar_type();
  const at::Tensor none = at::empty({0}, x_in.options());  // what a masked-off gradient comes back as
  if (oneDNN_bf16(x_in) || !own_backward(groups, c_out, t_out, t_out * cols)) {
    auto [gx, gw, gb] = x.dim() == 4
        ? at::convolution_backward(g, x, w.unsqueeze(3), c10::IntArrayRef{c_out}, {stride, 1}, {padding, 0}, {1, 1},
                                   false, {0, 0}, groups, output_mask)
        : at::convolution_backward(g, x, w, c10::IntArrayRef{c_out}, {stride}, {padding}, {1}, false, {0}, groups,
                                   output_mask);
    return {output_mask[0] ? gx.to(dt) : none, output_mask[1] ? (x.dim() == 4 ? gw.squeeze(3) : gw).to(dt) : none,
            output_mask[2] ? gb.to(dt) : none};
  }
  return {output_mask[0] ? own_grad_x(g, x, w, stride, padding, groups).to(dt) : none,
          output_mask[1] ? own_grad_w(g, x, w, stride, padding, groups).to(dt) : none,
          output_mask[2] ? (x.dim() == 4 ? g.sum(at::IntArrayRef{0, 2, 3}) : g.sum(at::IntArrayRef{0, 2})).to(dt)
                         : none};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("conv1d_lrelu", &conv1d_lrelu_cpu);
  m.impl("conv1d_lrelu_backward", &conv1d_lrelu_backward_cpu);
}

}  // namespace vocoder_ext::cpu
