// Every vocoder_ext op schema, in one place: csrc/ops.cpp defines them for the library; the tests' CPU
// emulation of the CUDA kernels (csrc/cuda/emulate.h) defines the same schemas under its own name.
#pragma once

#include <torch/library.h>

namespace vocoder_ext {

inline void define_schemas(torch::Library& m) {
  // y = conv1d(leaky_relu(x, slope), weight, bias, padding=dilation*(K-1)/2, dilation)
  // then tanh(y) if epilogue == "tanh", then y + residual if residual is given.
  m.def(
      "lrelu_conv1d(Tensor x, Tensor weight, Tensor? bias, int dilation=1, float slope=0.1, "
      "Tensor? residual=None, str epilogue=\"none\") -> Tensor");
  // Gradients w.r.t. (x, weight, bias); grad w.r.t. residual is grad_out itself. For the tanh
  // epilogue the pre-tanh output is recomputed (bias is needed for that), not stored.
  m.def(
      "lrelu_conv1d_backward(Tensor grad_out, Tensor x, Tensor weight, Tensor? bias, int dilation, "
      "float slope, str epilogue) -> (Tensor, Tensor, Tensor)");
  // y = conv_transpose1d(leaky_relu(x, slope), weight, bias, stride, padding, output_padding)
  // (output_padding < stride: the extra outputs at the end ParallelWaveGAN's odd upsample scales need).
  m.def(
      "lrelu_conv_transpose1d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, "
      "float slope=0.1, int output_padding=0) -> Tensor");
  // A whole HiFi-GAN residual block: convs applied in groups of `group` (2 = ResBlock1 pairs,
  // 1 = ResBlock2), each conv preceded by leaky-ReLU, a residual around each group; then
  // out = accum + scale * x (accum optional): the MRF average accumulates block by block.
  // Inference only (no backward): training composes lrelu_conv1d, which has one.
  m.def(
      "resblock(Tensor x, Tensor[] weights, Tensor[] biases, int[] dilations, int group, float slope=0.1, "
      "Tensor? accum=None, float scale=1.0) -> Tensor");
  m.def(
      "lrelu_conv_transpose1d_backward(Tensor grad_out, Tensor x, Tensor weight, int stride, "
      "int padding, float slope, int output_padding=0) -> (Tensor, Tensor, Tensor)");

  // The discriminators' layers: y = leaky_relu(conv1d(x, weight, bias, stride, padding, groups), slope),
  // slope 1 = no activation (conv_post). x [B, C, T], or [B, C, T, W]: W columns convolved along T each (the
  // MPD's (K, 1) conv2d). The backward takes the output: leaky' is read from its sign; output_mask says which of
  // (grad_x, grad_w, grad_b) to compute (as ATen's convolution_backward), the others come back empty ([0]).
  m.def(
      "conv1d_lrelu(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, int groups, float slope) "
      "-> Tensor");
  m.def(
      "conv1d_lrelu_backward(Tensor grad_out, Tensor out, Tensor x, Tensor weight, int stride, int padding, "
      "int groups, float slope, bool[3] output_mask=[True, True, True]) -> (Tensor, Tensor, Tensor)");

  // WaveGlow, [B, C, T/n_group] tensors. One WN layer: a = conv1d(audio, in_weight, in_bias, dilation,
  // "same") + cond (the layer's conditioning, precomputed from the mel); acts = tanh(a[:, :C]) *
  // sigmoid(a[:, C:]); rs = conv1d(acts, rs_weight, rs_bias) (1x1). Returns (audio + rs[:, :C], skip +
  // rs[:, C:], preact); on the last layer rs has C rows, all of them skip, and audio comes back unchanged.
  // skip=None is a zero skip sum (the first layer). preact is a [B, 2C, T] when keep_preact (what the
  // backward needs: it recomputes the gate from a, not the conv), else an empty tensor.
  m.def(
      "wn_layer(Tensor audio, Tensor? skip, Tensor cond, Tensor in_weight, Tensor in_bias, Tensor rs_weight, "
      "Tensor rs_bias, int dilation, bool last, bool keep_preact=False) -> (Tensor, Tensor, Tensor)");
  // Gradients w.r.t. (audio, cond, in_weight, in_bias, rs_weight, rs_bias) from the forward's preact;
  // skip's gradient is grad_skip itself.
  m.def(
      "wn_layer_backward(Tensor grad_audio, Tensor grad_skip, Tensor audio, Tensor preact, Tensor in_weight, "
      "Tensor rs_weight, int dilation, bool last) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // Affine coupling with wn_out = [b; log_s] (the WN's output): forward exp(log_s) * x + b, inverse
  // (x - b) * exp(-log_s); computed in fp32, returned in x's dtype.
  m.def("affine_coupling(Tensor x, Tensor wn_out, bool reverse=False) -> Tensor");
  m.def("affine_coupling_backward(Tensor grad_out, Tensor x, Tensor wn_out, bool reverse) -> (Tensor, Tensor)");
  // Invertible 1x1 conv, weight [c, c, 1]: forward (W x, B*T*log|det W|), reverse (W^-1 x, -B*T*log|det W|),
  // with W^-1 and the log-determinant in fp32 (the reverse product too), computed from W on every call.
  m.def("invertible_conv1x1(Tensor x, Tensor weight, bool reverse=False) -> (Tensor, Tensor)");
  m.def(
      "invertible_conv1x1_backward(Tensor grad_out, Tensor grad_log_det, Tensor x, Tensor weight, bool reverse) "
      "-> (Tensor, Tensor)");
}

}  // namespace vocoder_ext
