// CUDA kernels of vocoder_ext::wn_layer and its backward (torch glue; the kernels are conv1d.cu's and
// conv1d_grad_weight.cu's). Forward: the dilated in-conv with the layer's conditioning added in its
// epilogue writes the pre-activation; the res and skip 1x1 convs apply the gate in their prologue
// (acts never reach memory) and add the residual and the skip sum in their epilogue. Backward: the
// res/skip transpose conv applies the gate's derivative in its epilogue, writing dL/da straight away.
#include <optional>
#include <tuple>

#include "../checks.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

// The 1x1 conv gate(preact) -> out, with taps rs_w rows [row0, row0 + out rows), + residual.
void gated_1x1(const at::Tensor& preact, const at::Tensor& rs_w, const at::Tensor& rs_b, int64_t row0,
               const at::Tensor* residual, at::Tensor& out) {
  const int64_t rows = out.size(1), c = preact.size(1) / 2;
  const at::Tensor packed = pack_taps(rs_w.narrow(0, row0, rows).permute({1, 2, 0}), preact);
  const at::Tensor bias = rs_b.narrow(0, row0, rows).to(acc_type(preact)).contiguous();
  ConvParams p = same_conv(preact, packed, 1, 1, 1.0, out);
  p.c_in = c;
  p.prologue = Prologue::kGate;
  p.bias = bias.const_data_ptr();
  if (residual) p.residual = operand(*residual);
  launched(conv1d(p, stream()));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> wn_layer_cuda(const at::Tensor& audio_in,
                                                             const std::optional<at::Tensor>& skip_in,
                                                             const at::Tensor& cond_in, const at::Tensor& in_weight,
                                                             const at::Tensor& in_bias, const at::Tensor& rs_weight,
                                                             const at::Tensor& rs_bias, int64_t dilation, bool last,
                                                             bool keep_preact) {
  checks::check_wn_layer(kDevice, audio_in, in_weight, rs_weight, dilation, last);
  checks::check_wn_like(kDevice, "cond", cond_in, audio_in, {audio_in.size(0), 2 * audio_in.size(1), audio_in.size(2)});
  checks::check_wn_like(kDevice, "in_bias", in_bias, audio_in, {2 * audio_in.size(1)});
  checks::check_wn_like(kDevice, "rs_bias", rs_bias, audio_in, {rs_weight.size(0)});
  if (skip_in) checks::check_wn_like(kDevice, "skip", *skip_in, audio_in, audio_in.sizes());
  const DeviceGuard guard(audio_in.device());
  const at::Tensor audio = unit_time(audio_in), cond = unit_time(cond_in);
  const int64_t c = audio.size(1), k = in_weight.size(2);

  at::Tensor preact = at::empty({audio.size(0), 2 * c, audio.size(2)}, audio.options());
  const at::Tensor in_b = in_bias.to(acc_type(audio)).contiguous();
  const at::Tensor in_w = pack_taps(in_weight.permute({1, 2, 0}), audio);
  ConvParams p = same_conv(audio, in_w, k, dilation, 1.0, preact);
  p.bias = in_b.const_data_ptr();
  p.residual = operand(cond);
  launched(conv1d(p, stream()));

  const at::Tensor skip = skip_in ? unit_time(*skip_in) : at::Tensor();
  at::Tensor audio_out = last ? audio_in.clone() : at::empty_like(audio, at::MemoryFormat::Contiguous);
  at::Tensor skip_out = at::empty_like(audio, at::MemoryFormat::Contiguous);
  if (!last) gated_1x1(preact, rs_weight, rs_bias, 0, &audio, audio_out);
  gated_1x1(preact, rs_weight, rs_bias, last ? 0 : c, skip_in ? &skip : nullptr, skip_out);
  return {audio_out, skip_out, keep_preact ? preact : audio.new_empty({0})};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> wn_layer_backward_cuda(
    const at::Tensor& grad_audio_in, const at::Tensor& grad_skip_in, const at::Tensor& audio_in,
    const at::Tensor& preact_in, const at::Tensor& in_weight, const at::Tensor& rs_weight, int64_t dilation,
    bool last) {
  checks::check_wn_layer(kDevice, audio_in, in_weight, rs_weight, dilation, last);
  TORCH_CHECK(preact_in.numel() > 0, "wn_layer_backward: preact is empty: the forward must run with keep_preact=True "
              "(vocoder_ext.ops.wn_layer sets it whenever a gradient is needed)");
  const at::IntArrayRef shape = audio_in.sizes();
  checks::check_wn_like(kDevice, "preact", preact_in, audio_in, {shape[0], 2 * shape[1], shape[2]});
  checks::check_wn_like(kDevice, "grad_audio", grad_audio_in, audio_in, shape);
  checks::check_wn_like(kDevice, "grad_skip", grad_skip_in, audio_in, shape);
  const DeviceGuard guard(audio_in.device());
  const at::Tensor audio = unit_time(audio_in), preact = unit_time(preact_in);
  const at::Tensor grad_audio = unit_time(grad_audio_in);
  const int64_t batch = shape[0], c = shape[1], t_len = shape[2], k = in_weight.size(2);
  const at::Tensor grad_rs = last ? unit_time(grad_skip_in) : at::cat({grad_audio_in, grad_skip_in}, 1);

  // dL/da = gate'(preact) * (rs_w^T grad_rs): the gate's derivative in the 1x1 conv's epilogue.
  at::Tensor grad_a = at::empty({batch, 2 * c, t_len}, audio.options());
  const at::Tensor rs_w = pack_taps(rs_weight, audio);
  ConvParams p = same_conv(grad_rs, rs_w, 1, 1, 1.0, grad_a);
  p.c_out = c;
  p.gate_grad = operand(preact);
  launched(conv1d(p, stream()));

  const at::ScalarType acc = acc_type(audio);
  const at::Tensor grad_rs_w = grad_weight(grad_rs, 1.0, preact, Prologue::kGate, 1.0, 1);

  // dL/daudio = grad_audio + in-conv^T(dL/da)
  at::Tensor grad_audio_out = at::empty_like(audio, at::MemoryFormat::Contiguous);
  const at::Tensor in_w_t = pack_taps(in_weight.flip(2).permute({0, 2, 1}), audio);
  ConvParams r = same_conv(grad_a, in_w_t, k, dilation, 1.0, grad_audio_out);
  r.residual = operand(grad_audio);
  launched(conv1d(r, stream()));

  const at::Tensor grad_in_w =
      grad_weight(grad_a, 1.0, audio, Prologue::kLeaky, 1.0, k, 1, dilation, dilation * (k - 1) / 2);

  const auto dt = audio.scalar_type();
  return {grad_audio_out,
          grad_a,
          grad_in_w.to(dt),
          at::sum(grad_a, at::IntArrayRef{0, 2}, false, acc).to(dt),
          grad_rs_w.to(dt),
          at::sum(grad_rs, at::IntArrayRef{0, 2}, false, acc).to(dt)};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("wn_layer", &wn_layer_cuda);
  m.impl("wn_layer_backward", &wn_layer_backward_cuda);
}

}  // namespace vocoder_ext::cuda
