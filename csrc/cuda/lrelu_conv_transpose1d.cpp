// CUDA kernels of vocoder_ext::lrelu_conv_transpose1d and its backward (torch glue).
//
// Forward: each phase of the polyphase form (csrc/polyphase.h) is one conv1d launch with a strided output.
// Backward: the input gradient is a strided conv of grad_out (times leaky'(x)), the weight gradient
// one product of act(x) with grad_out's K shifted, strided copies.
#include <optional>
#include <tuple>

#include "../checks.h"
#include "../polyphase.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

at::Tensor lrelu_conv_transpose1d_cuda(const at::Tensor& x_in, const at::Tensor& weight,
                                       const std::optional<at::Tensor>& bias, int64_t stride, int64_t padding,
                                       double slope, int64_t output_padding) {
  checks::check_lrelu_conv_transpose1d(kDevice, x_in, weight, bias, stride, padding, output_padding);
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in);
  const int64_t batch = x.size(0), t_in = x.size(2), c_out = weight.size(1), k = weight.size(2);
  const int64_t t_out = transposed_out_len(t_in, stride, padding, k, output_padding);
  const at::Tensor b = bias ? bias->to(acc_type(x)).contiguous() : at::Tensor();
  at::Tensor y = at::empty({batch, c_out, t_out}, x.options());
  for (int64_t r = 0; r < stride && r < t_out; ++r) {
    const Phase phase = transposed_conv_phase(r, stride, padding, k, t_out);
    if (phase.taps == 0) {
      fill_tapless_phase(y, r, stride, phase, bias);
      continue;
    }
    const int64_t k0 = phase.first_tap, taps = phase.taps;
    // Tap u of the phase conv is weight[:, :, k0 + (taps - 1 - u) * stride].
    const at::Tensor index = at::arange(k0 + (taps - 1) * stride, k0 - 1, -stride, x.options().dtype(at::kLong));
    const at::Tensor packed = pack_taps(weight.index_select(2, index).permute({0, 2, 1}), x);
    ConvParams p;
    p.dtype = dtype_of(x);
    p.x = operand(x);
    p.t_in = t_in;
    p.slope = slope;
    p.w = packed.const_data_ptr();
    p.bias = bias ? b.const_data_ptr() : nullptr;
    p.y = y.mutable_data_ptr();
    p.y_batch = y.stride(0), p.y_row = y.stride(1), p.y_off = r, p.y_step = stride;
    p.batch = batch, p.c_in = x.size(1), p.c_out = c_out, p.k = taps, p.pad = phase.pad, p.t_out = phase.outputs;
    launched(conv1d(p, stream()));
  }
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> lrelu_conv_transpose1d_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& x_in, const at::Tensor& weight, int64_t stride, int64_t padding,
    double slope, int64_t output_padding) {
  checks::check_lrelu_conv_transpose1d(kDevice, x_in, weight, std::nullopt, stride, padding, output_padding);
  const int64_t batch = x_in.size(0), c_in = x_in.size(1), t_in = x_in.size(2);
  const int64_t c_out = weight.size(1), k = weight.size(2);
  const int64_t t_out = transposed_out_len(t_in, stride, padding, k, output_padding);
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef({batch, c_out, t_out}) &&
                  grad_out.scalar_type() == x_in.scalar_type() && grad_out.device() == x_in.device(),
              "lrelu_conv_transpose1d_backward: grad_out must be a ", x_in.scalar_type(), " tensor [", batch, ", ",
              c_out, ", ", t_out, "] on ", x_in.device(), ", got ", grad_out.scalar_type(), " ", grad_out.sizes());
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in), g = unit_time(grad_out);
  // grad_act[b, ci, j] = sum_{co, k} w[ci, co, k] g[b, co, j * stride + k - padding]
  at::Tensor grad_x = at::empty_like(x, at::MemoryFormat::Contiguous);
  const at::Tensor packed = pack_taps(weight.permute({1, 2, 0}), x);
  ConvParams p;
  p.dtype = dtype_of(x);
  p.x = operand(g);
  p.t_in = t_out, p.x_step = stride;
  p.w = packed.const_data_ptr();
  p.gate = operand(x), p.gate_slope = slope;
  p.y = grad_x.mutable_data_ptr();
  p.y_batch = grad_x.stride(0), p.y_row = grad_x.stride(1);
  p.batch = batch, p.c_in = c_out, p.c_out = c_in, p.k = k, p.pad = padding, p.t_out = t_in;
  launched(conv1d(p, stream()));

  const at::Tensor grad_w = grad_weight(x, slope, g, Prologue::kLeaky, 1.0, k, stride, 1, padding);
  const at::Tensor grad_b = at::sum(g, at::IntArrayRef{0, 2}, false, acc_type(x));
  return {grad_x, grad_w.to(x.scalar_type()), grad_b.to(x.scalar_type())};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("lrelu_conv_transpose1d", &lrelu_conv_transpose1d_cuda);
  m.impl("lrelu_conv_transpose1d_backward", &lrelu_conv_transpose1d_backward_cuda);
}

}  // namespace vocoder_ext::cuda
