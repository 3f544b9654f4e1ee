// CUDA kernels of vocoder_ext::lrelu_conv1d and its backward (torch glue; the kernels are in
// conv1d.cu and conv1d_grad_weight.cu).
#include <optional>
#include <string_view>
#include <tuple>

#include "../checks.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

at::Tensor lrelu_conv1d_cuda(const at::Tensor& x_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             int64_t dilation, double slope, const std::optional<at::Tensor>& residual,
                             std::string_view epilogue) {
  checks::check_lrelu_conv1d(kDevice, x_in, weight, bias, dilation, residual, epilogue);
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in);
  const int64_t k = weight.size(2);
  const at::Tensor packed = pack_taps(weight.permute({1, 2, 0}), x);
  const at::Tensor b = bias ? bias->to(acc_type(x)).contiguous() : at::Tensor();
  const at::Tensor r = residual ? unit_time(*residual) : at::Tensor();
  at::Tensor y = at::empty({x.size(0), weight.size(0), x.size(2)}, x.options());
  ConvParams p = same_conv(x, packed, k, dilation, slope, y);
  p.bias = bias ? b.const_data_ptr() : nullptr;
  p.tanh_out = epilogue == "tanh";
  if (residual) p.residual = operand(r);
  launched(conv1d(p, stream()));
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lrelu_conv1d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    int64_t dilation, double slope, std::string_view epilogue) {
  checks::check_lrelu_conv1d(kDevice, x_in, weight, bias, dilation, std::nullopt, epilogue);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({x_in.size(0), weight.size(0), x_in.size(2)}) &&
                  grad_out.scalar_type() == x_in.scalar_type() && grad_out.device() == x_in.device(),
              "lrelu_conv1d_backward: grad_out must be a ", x_in.scalar_type(), " tensor [", x_in.size(0), ", ",
              weight.size(0), ", ", x_in.size(2), "] on ", x_in.device(), ", got ", grad_out.scalar_type(), " ",
              grad_out.sizes(), " on ", grad_out.device());
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in);
  const int64_t k = weight.size(2);
  at::Tensor g = unit_time(grad_out);
  if (epilogue == "tanh") {  // g * tanh'(.) with tanh's output recomputed by the forward conv, not stored
    const at::Tensor packed = pack_taps(weight.permute({1, 2, 0}), x);
    const at::Tensor b = bias ? bias->to(acc_type(x)).contiguous() : at::Tensor();
    at::Tensor g_pre = at::empty_like(g, at::MemoryFormat::Contiguous);
    ConvParams p = same_conv(x, packed, k, dilation, slope, g_pre);
    p.bias = bias ? b.const_data_ptr() : nullptr;
    p.tanh_out = true;
    p.tanh_grad_of = operand(g);
    launched(conv1d(p, stream()));
    g = g_pre;
  }
  // d/dx: the same conv with transposed, flipped taps over g, times leaky'(x).
  at::Tensor grad_x = at::empty_like(x, at::MemoryFormat::Contiguous);
  const at::Tensor flipped = pack_taps(weight.flip(2).permute({0, 2, 1}), x);
  ConvParams p = same_conv(g, flipped, k, dilation, 1.0, grad_x);
  p.gate = operand(x);
  p.gate_slope = slope;
  launched(conv1d(p, stream()));

  const at::Tensor grad_w = grad_weight(g, 1.0, x, Prologue::kLeaky, slope, k, 1, dilation, dilation * (k - 1) / 2);
  const at::Tensor grad_b = at::sum(g, at::IntArrayRef{0, 2}, false, acc_type(x));
  return {grad_x, grad_w.to(x.scalar_type()), grad_b.to(x.scalar_type())};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("lrelu_conv1d", &lrelu_conv1d_cuda);
  m.impl("lrelu_conv1d_backward", &lrelu_conv1d_backward_cuda);
}

}  // namespace vocoder_ext::cuda
