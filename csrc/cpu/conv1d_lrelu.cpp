// CPU kernels of vocoder_ext::conv1d_lrelu (the discriminators' strided, grouped convs with a leaky-ReLU
// epilogue) and its backward, on the tiled conv1d kernel of conv1d_kernel.h.
//
// Groups: x [B, C, T] is [B * g, C / g, T] with group b % g's weights (the kernel's `groups`), so one
// launch serves every group. Stride s: the input is split into its s phases x_r[j] = x[j * s + r] once;
// each phase is a stride-1 conv with the taps k = P + r (mod s), the phases accumulating into y (the
// kernel's residual), the last one applying the bias-free epilogue leaky-ReLU.
// Backward: grad_x is the transposed conv of grad_out * leaky'(out), polyphase over x's phases
// (csrc/polyphase.h); grad_w one matrix product per tap over (batch, time).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../checks.h"
#include "../polyphase.h"

#include <optional>
#include <tuple>
#include <vector>

#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// x [B, C, T] -> [s, B, C, ceil(T / s)] with phase r holding x[:, :, r::s] (zeros past T), contiguous.
at::Tensor phases(const at::Tensor& x, int64_t s) {
  if (s == 1) return x.unsqueeze(0);
  const int64_t t = x.size(2), tq = (t + s - 1) / s;
  return at::constant_pad_nd(x, {0, tq * s - t}).view({x.size(0), x.size(1), tq, s}).permute({3, 0, 1, 2}).contiguous();
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

at::Tensor conv1d_lrelu_cpu(const at::Tensor& x_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            int64_t stride, int64_t padding, int64_t groups, double slope) {
  checks::check_conv1d_lrelu(c10::DeviceType::CPU, x_in, weight, bias, stride, padding, groups);
  const at::ScalarType ct = compute_dtype(x_in.scalar_type());
  const at::Tensor x = x_in.to(ct).contiguous(), w = weight.to(ct).contiguous();
  const at::Tensor b = bias ? bias->to(ct).contiguous() : at::Tensor();
  const int64_t batch = x.size(0), c_out = w.size(0), cg = w.size(1), k = w.size(2);
  const int64_t t_out = checks::conv_out_len(x.size(2), k, stride, padding);
  const at::Tensor xp = phases(x, stride);
  at::Tensor y = at::empty({batch, c_out, t_out}, x.options());
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
      p.k = pt.taps, p.dilation = 1, p.pad = -pt.q0;
      p.t_out = p.y_row = t_out, p.y_off = 0, p.y_step = 1;
      p.slope = scalar_t(1), p.gate_slope = scalar_t(1);
      p.leaky_out = i + 1 == used.size() && slope != 1.0, p.out_slope = static_cast<scalar_t>(slope);
      run_conv1d(p);
    }
  });
  return y.to(x_in.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_lrelu_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x_in, const at::Tensor& weight, int64_t stride,
    int64_t padding, int64_t groups, double slope) {
  checks::check_conv1d_lrelu(c10::DeviceType::CPU, x_in, weight, std::nullopt, stride, padding, groups);
  const int64_t batch = x_in.size(0), c_in = x_in.size(1), t_in = x_in.size(2);
  const int64_t c_out = weight.size(0), cg = weight.size(1), k = weight.size(2), og = c_out / groups;
  const int64_t t_out = checks::conv_out_len(t_in, k, stride, padding);
  for (const at::Tensor* t : {&grad_out, &out})
    TORCH_CHECK(t->sizes() == at::IntArrayRef({batch, c_out, t_out}) && t->scalar_type() == x_in.scalar_type(),
                "conv1d_lrelu_backward: grad_out and out must be ", x_in.scalar_type(), " [", batch, ", ", c_out, ", ",
                t_out, "], got ", t->scalar_type(), " ", t->sizes());
  const at::ScalarType ct = compute_dtype(x_in.scalar_type());
  const at::Tensor x = x_in.to(ct).contiguous(), w = weight.to(ct).contiguous();
  at::Tensor g = grad_out.to(ct).contiguous();
  if (slope != 1.0) g = at::where(out > 0, g, g * slope);  // leaky' from the output's sign (slope > 0)

  // grad_x[j * s + r] gathers g through the taps k = r + P (mod s): per phase r of x, a stride-1 conv over g
  // (transposed weights [C_in/g rows of output, C_out/g of input], taps reversed), written every s-th step.
  at::Tensor grad_x = at::empty({batch, c_in, t_in}, x.options());
  AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_conv1d_lrelu_backward", [&] {
    for (int64_t r = 0; r < stride && r < t_in; ++r) {
      const Phase phase = transposed_conv_phase(r, stride, padding, k, t_in);
      if (phase.taps == 0) {
        fill_tapless_phase(grad_x, r, stride, phase, std::nullopt);
        continue;
      }
      Conv1dParamsT<scalar_t> p{};
      p.x = g.const_data_ptr<scalar_t>();
      p.t_in = p.x_row = t_out;
      p.w = w.const_data_ptr<scalar_t>() + phase.first_tap + (phase.taps - 1) * stride;
      p.w_co = k, p.w_ci = cg * k, p.w_k = -stride;
      p.groups = groups, p.w_group = og * cg * k;
      p.y = grad_x.mutable_data_ptr<scalar_t>();
      p.batch = batch * groups, p.c_in = og, p.c_out = cg;
      p.k = phase.taps, p.dilation = 1, p.pad = phase.pad;
      p.t_out = phase.outputs, p.y_row = t_in, p.y_off = r, p.y_step = stride;
      p.slope = scalar_t(1), p.gate_slope = scalar_t(1);
      run_conv1d(p);
    }
  });

  // grad_w[:, :, k] = sum over (b, j) of g[b, :, j] x[b, :, j * s + k - P], per group: one product per tap,
  // (batch, time) flattened into the reduction. Tap k reads phase r = (k - P) mod s at j + q.
  const at::Tensor xp = phases(x, stride);  // [s, B, C, Tq]
  const int64_t tq = xp.size(3);
  int64_t q_min = 0, q_max = 0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t d = kk - padding, q = (d - ((d % stride) + stride) % stride) / stride;
    q_min = std::min(q_min, q), q_max = std::max(q_max, q);
  }
  const int64_t lpad = -q_min, rpad = std::max<int64_t>(0, t_out + q_max - tq);
  const at::Tensor xpp = at::constant_pad_nd(xp, {lpad, rpad});
  // [g, C_out/g, B * T_out]
  const at::Tensor gg = g.view({batch, groups, og, t_out}).permute({1, 2, 0, 3}).reshape({groups, og, batch * t_out});
  at::Tensor grad_w = at::empty({k, groups, og, cg}, x.options());
  for (int64_t kk = 0; kk < k; ++kk) {
    const int64_t d = kk - padding, r = ((d % stride) + stride) % stride, q = (d - r) / stride;
    const at::Tensor xs = xpp[r].narrow(2, lpad + q, t_out).view({batch, groups, cg, t_out});
    const at::Tensor xk = xs.permute({1, 2, 0, 3}).reshape({groups, cg, batch * t_out});
    at::Tensor out = grad_w[kk];
    at::bmm_out(out, gg, xk.transpose(1, 2));
  }
  const at::Tensor grad_b = g.sum({0, 2});
  const auto dt = x_in.scalar_type();
  return {grad_x.to(dt), grad_w.permute({1, 2, 3, 0}).reshape({c_out, cg, k}).to(dt), grad_b.to(dt)};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("conv1d_lrelu", &conv1d_lrelu_cpu);
  m.impl("conv1d_lrelu_backward", &conv1d_lrelu_backward_cpu);
}

}  // namespace vocoder_ext::cpu
