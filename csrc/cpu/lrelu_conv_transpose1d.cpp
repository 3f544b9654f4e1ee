// CPU kernel of vocoder_ext::lrelu_conv_transpose1d (HiFi-GAN's upsampling layers): each phase of
// the polyphase form (csrc/polyphase.h) runs on the tiled conv1d kernel with a strided output.
// The backward stays on the eager reference (ATen's convolution_backward).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../checks.h"
#include "../polyphase.h"

#include <optional>

#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

at::Tensor lrelu_conv_transpose1d_cpu(const at::Tensor& x, const at::Tensor& weight,
                                      const std::optional<at::Tensor>& bias, int64_t stride, int64_t padding,
                                      double slope, int64_t output_padding) {
  checks::check_lrelu_conv_transpose1d(c10::DeviceType::CPU, x, weight, bias, stride, padding, output_padding);
  const at::ScalarType ct = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor xc = x.to(ct).contiguous(), wc = weight.to(ct).contiguous();
  const at::Tensor bc = bias ? bias->to(ct).contiguous() : at::Tensor();
  const int64_t batch = x.size(0), c_in = x.size(1), t_in = x.size(2);
  const int64_t c_out = weight.size(1), k = weight.size(2);
  const int64_t t_out = transposed_out_len(t_in, stride, padding, k, output_padding);
  at::Tensor y = at::empty({batch, c_out, t_out}, xc.options());
  // [C_out, C_in, K]: each output channel's taps contiguous for the kernel's per-block gather.
  const at::Tensor wt = wc.transpose(0, 1).contiguous();
  const bool bf16 = bf16_compute(x);

  for (int64_t r = 0; r < stride && r < t_out; ++r) {
    const Phase phase = transposed_conv_phase(r, stride, padding, k, t_out);
    if (phase.taps == 0) {
      fill_tapless_phase(y, r, stride, phase, bias ? std::optional<at::Tensor>(bc) : std::nullopt);
      continue;
    }
    const int64_t k0 = phase.first_tap, taps = phase.taps;
    AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_lrelu_conv_transpose1d", [&] {
      Conv1dParamsT<scalar_t> p{};
      p.x = xc.const_data_ptr<scalar_t>();
      // Tap u of the phase conv for (co, ci) is weight[ci, co, k0 + (taps - 1 - u) * stride].
      p.w = wt.const_data_ptr<scalar_t>() + k0 + (taps - 1) * stride;
      p.w_co = c_in * k, p.w_ci = k, p.w_k = -stride;
      p.bias = bias ? bc.const_data_ptr<scalar_t>() : nullptr;
      p.y = y.mutable_data_ptr<scalar_t>();
      p.batch = batch;
      p.c_in = c_in;
      p.c_out = c_out;
      p.k = taps;
      p.dilation = 1;
      p.t_in = p.x_row = t_in;
      p.t_out = phase.outputs;
      p.pad = phase.pad;
      p.y_row = t_out;
      p.y_off = r;
      p.y_step = stride;
      p.slope = static_cast<scalar_t>(slope);
      p.gate_slope = scalar_t(1);
      p.tanh_out = false;
      run_conv1d(p, bf16);
    });
  }
  return y.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) { m.impl("lrelu_conv_transpose1d", &lrelu_conv_transpose1d_cpu); }

}  // namespace vocoder_ext::cpu
