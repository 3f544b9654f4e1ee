// CUDA kernels of vocoder_ext::conv1d_lrelu (the discriminators' strided, grouped convs with a leaky-ReLU
// epilogue) and its backward (torch glue; the kernels are conv1d.cu and conv1d_grad_weight.cu).
//
// One launch per group (operands narrowed to the group's rows). Forward: the conv reads x every `stride`
// steps (x_step), the epilogue adds the bias and applies the leaky-ReLU. Backward: g = grad_out * leaky'(out)
// (from the output's sign); grad_x is the transposed conv of g, one launch per phase of x (polyphase.h);
// grad_w the product of g with x read every `stride` steps. Columns ([B, C, T, W], the MPD) become batch
// items [B * W, C, T] (one copy each way).
#include <array>
#include <optional>
#include <tuple>

#include "../checks.h"
#include "../polyphase.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

// [B, C, T, W] -> [B * W, C, T], and back.
at::Tensor columns_as_batch(const at::Tensor& t) {
  return t.permute({0, 3, 1, 2}).reshape({t.size(0) * t.size(3), t.size(1), t.size(2)});
}
at::Tensor batch_as_columns(const at::Tensor& t, int64_t cols) {
  return t.view({t.size(0) / cols, cols, t.size(1), t.size(2)}).permute({0, 2, 3, 1}).contiguous();
}

at::Tensor conv1d_lrelu_cuda(const at::Tensor& x_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                             int64_t stride, int64_t padding, int64_t groups, double slope) {
  checks::check_conv1d_lrelu(kDevice, x_in, weight, bias, stride, padding, groups);
  if (x_in.dim() == 4)
    return batch_as_columns(conv1d_lrelu_cuda(columns_as_batch(x_in), weight, bias, stride, padding, groups, slope),
                            x_in.size(3));
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in);
  const int64_t c_out = weight.size(0), cg = weight.size(1), k = weight.size(2), og = c_out / groups;
  const int64_t t_out = checks::conv_out_len(x.size(2), k, stride, padding);
  const at::Tensor b = bias ? bias->to(acc_type(x)).contiguous() : at::Tensor();
  at::Tensor y = at::empty({x.size(0), c_out, t_out}, x.options());
  for (int64_t gi = 0; gi < groups; ++gi) {
    const at::Tensor packed = pack_taps(weight.narrow(0, gi * og, og).permute({1, 2, 0}), x);  // [cg * K, og]
    const at::Tensor xg = x.narrow(1, gi * cg, cg);
    at::Tensor yg = y.narrow(1, gi * og, og);
    ConvParams p;
    p.dtype = dtype_of(x);
    p.x = operand(xg);
    p.t_in = x.size(2), p.x_step = stride;
    p.w = packed.const_data_ptr();
    p.bias = bias ? static_cast<const char*>(b.const_data_ptr()) + gi * og * b.element_size() : nullptr;
    p.leaky_out = slope != 1.0, p.out_slope = slope;
    p.y = yg.mutable_data_ptr();
    p.y_batch = y.stride(0), p.y_row = y.stride(1);
    p.batch = x.size(0), p.c_in = cg, p.c_out = og, p.k = k, p.pad = padding, p.t_out = t_out;
    launched(conv1d(p, stream()));
  }
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> conv1d_lrelu_backward_cuda(
    const at::Tensor& grad_out, const at::Tensor& out, const at::Tensor& x_in, const at::Tensor& weight, int64_t stride,
    int64_t padding, int64_t groups, double slope, std::array<bool, 3> output_mask) {
  checks::check_conv1d_lrelu(kDevice, x_in, weight, std::nullopt, stride, padding, groups);
  if (x_in.dim() == 4) {
    auto [gx, gw, gb] = conv1d_lrelu_backward_cuda(columns_as_batch(grad_out), columns_as_batch(out),
                                                   columns_as_batch(x_in), weight, stride, padding, groups, slope,
                                                   output_mask);
    return {output_mask[0] ? batch_as_columns(gx, x_in.size(3)) : gx, gw, gb};
  }
  const int64_t batch = x_in.size(0), t_in = x_in.size(2);
  const int64_t c_out = weight.size(0), cg = weight.size(1), k = weight.size(2), og = c_out / groups;
  const int64_t t_out = checks::conv_out_len(t_in, k, stride, padding);
  for (const at::Tensor* t : {&grad_out, &out})
    TORCH_CHECK(t->sizes() == at::IntArrayRef({batch, c_out, t_out}) && t->scalar_type() == x_in.scalar_type() &&
                    t->device() == x_in.device(),
                "conv1d_lrelu_backward: grad_out and out must be ", x_in.scalar_type(), " [", batch, ", ", c_out, ", ",
                t_out, "] on ", x_in.device(), ", got ", t->scalar_type(), " ", t->sizes());
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = unit_time(x_in);
  const at::Tensor g = slope == 1.0 ? unit_time(grad_out) : at::where(out > 0, grad_out, grad_out * slope).contiguous();
  const at::Tensor none = at::empty({0}, x.options());  // what a masked-off gradient comes back as
  at::Tensor grad_x = output_mask[0] ? at::zeros_like(x, at::MemoryFormat::Contiguous)  // phases no tap reaches stay 0
                                     : none;
  at::Tensor grad_w = output_mask[1] ? at::empty({c_out, cg, k}, x.options().dtype(acc_type(x))) : none;
  for (int64_t gi = 0; gi < groups && (output_mask[0] || output_mask[1]); ++gi) {
    const at::Tensor wg = weight.narrow(0, gi * og, og), gg = g.narrow(1, gi * og, og);
    at::Tensor xg = output_mask[0] ? grad_x.narrow(1, gi * cg, cg) : at::Tensor();
    for (int64_t r = 0; output_mask[0] && r < stride && r < t_in; ++r) {  // grad_x: the transposed conv, by phase
      const Phase phase = transposed_conv_phase(r, stride, padding, k, t_in);
      if (phase.taps == 0) continue;
      const int64_t k0 = phase.first_tap, taps = phase.taps;
      const at::Tensor index = at::arange(k0 + (taps - 1) * stride, k0 - 1, -stride, x.options().dtype(at::kLong));
      const at::Tensor packed = pack_taps(wg.index_select(2, index).permute({0, 2, 1}), x);  // [og * taps, cg]
      ConvParams p;
      p.dtype = dtype_of(x);
      p.x = operand(gg);
      p.t_in = t_out;
      p.w = packed.const_data_ptr();
      p.y = xg.mutable_data_ptr();
      p.y_batch = grad_x.stride(0), p.y_row = grad_x.stride(1), p.y_off = r, p.y_step = stride;
      p.batch = batch, p.c_in = og, p.c_out = cg, p.k = taps, p.pad = phase.pad, p.t_out = phase.outputs;
      launched(conv1d(p, stream()));
    }
    if (output_mask[1])
      grad_w.narrow(0, gi * og, og).copy_(grad_weight(gg, 1.0, x.narrow(1, gi * cg, cg), Prologue::kLeaky, 1.0, k,
                                                      stride, 1, padding));
  }
  const at::Tensor grad_b = output_mask[2] ? at::sum(g, at::IntArrayRef{0, 2}, false, acc_type(x)) : none;
  return {grad_x, output_mask[1] ? grad_w.to(x.scalar_type()) : none, grad_b.to(x.scalar_type())};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("conv1d_lrelu", &conv1d_lrelu_cuda);
  m.impl("conv1d_lrelu_backward", &conv1d_lrelu_backward_cuda);
}

}  // namespace vocoder_ext::cuda
