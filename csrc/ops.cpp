// Every vocoder_ext op schema, in one place. Kernels register per device in csrc/cpu and
// csrc/cuda; the eager reference (vocoder_ext/ops/*_ref) is registered from Python as the
// CompositeExplicitAutograd kernel, so a device without a fused kernel still runs.
#include <torch/library.h>

TORCH_LIBRARY(vocoder_ext, m) {
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
  // y = conv_transpose1d(leaky_relu(x, slope), weight, bias, stride, padding)
  m.def(
      "lrelu_conv_transpose1d(Tensor x, Tensor weight, Tensor? bias, int stride, int padding, "
      "float slope=0.1) -> Tensor");
  // A whole HiFi-GAN residual block: convs applied in groups of `group` (2 = ResBlock1 pairs,
  // 1 = ResBlock2), each conv preceded by leaky-ReLU, a residual around each group; then
  // out = accum + scale * x (accum optional): the MRF average accumulates block by block.
  // Inference only (no backward): training composes lrelu_conv1d, which has one.
  m.def(
      "resblock(Tensor x, Tensor[] weights, Tensor[] biases, int[] dilations, int group, float slope=0.1, "
      "Tensor? accum=None, float scale=1.0) -> Tensor");
  m.def(
      "lrelu_conv_transpose1d_backward(Tensor grad_out, Tensor x, Tensor weight, int stride, "
      "int padding, float slope) -> (Tensor, Tensor, Tensor)");
}
