// CPU kernels of vocoder_ext::lrelu_conv1d and its backward: torch glue around the tiled kernels
// of conv1d_kernel.h (checks, weight packing, threading, ISA choice).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../checks.h"
#include "../pointwise.h"

#include <optional>
#include <string_view>
#include <tuple>

#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

// y = [tanh](conv(leaky(x, slope), w) + bias) * leaky'(gate) + residual, all contiguous, in the
// compute dtype (float or double). w is [C_out, C_in, K], contiguous; `flip` reverses its taps. bf16: the
// bf16-product kernel (float only; see bf16_compute).
at::Tensor conv(const at::Tensor& x, const at::Tensor& w, bool flip, const at::Tensor* bias, int64_t dilation,
                double slope, const at::Tensor* residual, bool tanh_out, const at::Tensor* gate, double gate_slope,
                bool bf16 = false) {
  const int64_t k = w.size(2), c_out = w.size(0);
  at::Tensor y = at::empty({x.size(0), c_out, x.size(2)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "vocoder_ext_lrelu_conv1d", [&] {
    Conv1dParamsT<scalar_t> p{};
    p.x = x.const_data_ptr<scalar_t>();
    p.w = w.const_data_ptr<scalar_t>() + (flip ? k - 1 : 0);
    p.w_co = w.size(1) * k, p.w_ci = k, p.w_k = flip ? -1 : 1;
    p.bias = bias ? bias->const_data_ptr<scalar_t>() : nullptr;
    p.residual = residual ? residual->const_data_ptr<scalar_t>() : nullptr;
    p.gate = gate ? gate->const_data_ptr<scalar_t>() : nullptr;
    p.y = y.mutable_data_ptr<scalar_t>();
    p.batch = x.size(0);
    p.c_in = x.size(1);
    p.c_out = c_out;
    p.k = k;
    p.dilation = dilation;
    p.t_in = p.t_out = p.x_row = p.y_row = x.size(2);
    p.pad = dilation * (k - 1) / 2;
    p.y_off = 0;
    p.y_step = 1;
    p.slope = static_cast<scalar_t>(slope);
    p.gate_slope = static_cast<scalar_t>(gate_slope);
    p.tanh_out = tanh_out;
    run_conv1d(p, bf16);
  });
  return y;
}

// fp16/bf16 are computed in fp32 (and rounded once at the end), bf16 with bf16 products where bf16_compute says
// so; fp32/fp64 in their own dtype.
at::ScalarType compute_dtype(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

at::Tensor prepared(const at::Tensor& t, at::ScalarType dtype) { return t.to(dtype).contiguous(); }

at::Tensor lrelu_conv1d_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            int64_t dilation, double slope, const std::optional<at::Tensor>& residual,
                            std::string_view epilogue) {
  checks::check_lrelu_conv1d(c10::DeviceType::CPU, x, weight, bias, dilation, residual, epilogue);
  const at::ScalarType ct = compute_dtype(x.scalar_type());
  const at::Tensor xc = prepared(x, ct), wc = prepared(weight, ct);
  const at::Tensor bc = bias ? prepared(*bias, ct) : at::Tensor();
  const at::Tensor rc = residual ? prepared(*residual, ct) : at::Tensor();
  at::Tensor y = conv(xc, wc, false, bias ? &bc : nullptr, dilation, slope, residual ? &rc : nullptr,
                      epilogue == "tanh", nullptr, 1.0, bf16_compute(x));
  return y.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lrelu_conv1d_backward_cpu(
    const at::Tensor& grad_out, const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    int64_t dilation, double slope, std::string_view epilogue) {
  checks::check_lrelu_conv1d(c10::DeviceType::CPU, x, weight, bias, dilation, std::nullopt, epilogue);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({x.size(0), weight.size(0), x.size(2)}),
              "lrelu_conv1d_backward: grad_out must be [", x.size(0), ", ", weight.size(0), ", ", x.size(2),
              "], got shape ", grad_out.sizes());
  const at::ScalarType ct = compute_dtype(x.scalar_type());
  const int64_t c_out = weight.size(0), c_in = x.size(1), k = weight.size(2), t_len = x.size(2);
  const int64_t pad = dilation * (k - 1) / 2;
  const at::Tensor xc = prepared(x, ct), wc = prepared(weight, ct);
  at::Tensor g = prepared(grad_out, ct);
  if (epilogue == "tanh") {  // recompute tanh's output (as the forward computed it) instead of storing it
    const at::Tensor bc = bias ? prepared(*bias, ct) : at::Tensor();
    const at::Tensor t = conv(xc, wc, false, bias ? &bc : nullptr, dilation, slope, nullptr, true, nullptr, 1.0,
                              bf16_compute(x));
    g = tanh_grad(g, t);
  }
  // d/dx: the same conv with transposed, flipped weights over g, times leaky'(x).
  at::Tensor grad_x = conv(g, wc.transpose(0, 1).contiguous(), true, nullptr, dilation, 1.0, nullptr, false, &xc, slope);
  // d/dw[:, :, j] = sum_b g_b @ act_b[:, j*d : j*d + T]^T, with act = leaky(x) zero-padded.
  const at::Tensor act = at::constant_pad_nd(at::leaky_relu(xc, slope), {pad, pad});
  at::Tensor grad_w = at::empty({k, c_out, c_in}, xc.options());
  for (int64_t j = 0; j < k; ++j) {
    const at::Tensor shifted = act.narrow(2, j * dilation, t_len);
    grad_w[j] = at::bmm(g, shifted.transpose(1, 2)).sum(0);
  }
  at::Tensor grad_b = g.sum(at::IntArrayRef{0, 2});
  const auto dt = x.scalar_type();
  return {grad_x.to(dt), grad_w.permute({1, 2, 0}).contiguous().to(dt), grad_b.to(dt)};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("lrelu_conv1d", &lrelu_conv1d_cpu);
  m.impl("lrelu_conv1d_backward", &lrelu_conv1d_backward_cpu);
}

}  // namespace vocoder_ext::cpu
