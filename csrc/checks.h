// Input checks of every op, shared by the CPU (csrc/cpu) and CUDA (csrc/cuda) kernels: shapes, dtypes,
// and that every tensor is on the kernel's device. The Python wrappers check first, with their own
// messages; these guard direct torch.ops calls.
#pragma once

#include <ATen/ATen.h>

#include "polyphase.h"

#include <optional>
#include <string>
#include <string_view>

namespace vocoder_ext::checks {

inline void check_lrelu_conv1d(c10::DeviceType device, const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                  int64_t dilation, const std::optional<at::Tensor>& residual, std::string_view epilogue) {
  TORCH_CHECK(x.dim() == 3, "lrelu_conv1d: x must be [B, C_in, T], got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 3 && weight.size(1) == x.size(1),
              "lrelu_conv1d: weight must be [C_out, ", x.size(1), ", K], got shape ", weight.sizes());
  TORCH_CHECK(weight.size(2) % 2 == 1, "lrelu_conv1d: 'same' padding needs an odd kernel size, got K=", weight.size(2));
  TORCH_CHECK(dilation >= 1, "lrelu_conv1d: dilation must be >= 1, got ", dilation);
  TORCH_CHECK(x.scalar_type() == weight.scalar_type(), "lrelu_conv1d: weight dtype ", weight.scalar_type(),
              " differs from x dtype ", x.scalar_type());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "lrelu_conv1d: expected a floating-point x, got ", x.scalar_type());
  TORCH_CHECK(epilogue == "none" || epilogue == "tanh", "lrelu_conv1d: epilogue must be 'none' or 'tanh', got '",
              std::string(epilogue), "'");
  for (const at::Tensor* t : {&x, &weight}) TORCH_CHECK(t->device().type() == device, "lrelu_conv1d (", c10::DeviceTypeName(device), " kernel): got a tensor on ", t->device());
  if (bias) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0), "lrelu_conv1d: bias must be [", weight.size(0),
                "], got shape ", bias->sizes());
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->device().type() == device, "lrelu_conv1d: bias must be a ", c10::DeviceTypeName(device), " ",
                x.scalar_type(), " tensor, got ", bias->scalar_type(), " on ", bias->device());
  }
  if (residual) {
    TORCH_CHECK(residual->sizes() == at::IntArrayRef({x.size(0), weight.size(0), x.size(2)}),
                "lrelu_conv1d: residual must be [", x.size(0), ", ", weight.size(0), ", ", x.size(2), "], got shape ",
                residual->sizes());
    TORCH_CHECK(residual->scalar_type() == x.scalar_type() && residual->device().type() == device,
                "lrelu_conv1d: residual must be a ", c10::DeviceTypeName(device), " ", x.scalar_type(), " tensor");
  }
}

inline void check_lrelu_conv_transpose1d(c10::DeviceType device, const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                  int64_t stride, int64_t padding, int64_t output_padding) {
  TORCH_CHECK(x.dim() == 3, "lrelu_conv_transpose1d: x must be [B, C_in, T], got shape ", x.sizes());
  TORCH_CHECK(weight.dim() == 3 && weight.size(0) == x.size(1), "lrelu_conv_transpose1d: weight must be [",
              x.size(1), ", C_out, K], got shape ", weight.sizes());
  TORCH_CHECK(stride >= 1 && padding >= 0, "lrelu_conv_transpose1d: need stride >= 1 and padding >= 0, got ",
              stride, " and ", padding);
  TORCH_CHECK(output_padding >= 0 && output_padding < stride,
              "lrelu_conv_transpose1d: need 0 <= output_padding < stride (", stride, "), got ", output_padding);
  TORCH_CHECK(x.scalar_type() == weight.scalar_type() && at::isFloatingType(x.scalar_type()),
              "lrelu_conv_transpose1d: x and weight must share a floating dtype, got ", x.scalar_type(), " and ",
              weight.scalar_type());
  TORCH_CHECK(x.device().type() == device && weight.device().type() == device, "lrelu_conv_transpose1d (", c10::DeviceTypeName(device), " kernel): got tensors on ",
              x.device(), " and ", weight.device());
  if (bias) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(1) && bias->scalar_type() == x.scalar_type() &&
                    bias->device().type() == device,
                "lrelu_conv_transpose1d: bias must be a ", c10::DeviceTypeName(device), " ", x.scalar_type(), " tensor of shape [", weight.size(1),
                "], got ", bias->scalar_type(), " ", bias->sizes());
  }
  TORCH_CHECK(transposed_out_len(x.size(2), stride, padding, weight.size(2), output_padding) >= 1,
              "lrelu_conv_transpose1d: no output for length ", x.size(2));
}

inline int64_t conv_out_len(int64_t t_in, int64_t k, int64_t stride, int64_t padding) {
  return (t_in + 2 * padding - k) / stride + 1;
}

inline void check_conv1d_lrelu(c10::DeviceType device, const at::Tensor& x, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, int64_t stride, int64_t padding, int64_t groups) {
  TORCH_CHECK(x.dim() == 3 || x.dim() == 4, "conv1d_lrelu: x must be [B, C_in, T] or [B, C_in, T, W], got shape ",
              x.sizes());
  TORCH_CHECK(stride >= 1 && padding >= 0 && groups >= 1, "conv1d_lrelu: need stride >= 1, padding >= 0 and groups >= 1, got ",
              stride, ", ", padding, " and ", groups);
  TORCH_CHECK(x.size(1) % groups == 0 && weight.dim() == 3 && weight.size(0) % groups == 0 &&
                  weight.size(1) * groups == x.size(1),
              "conv1d_lrelu: weight must be [C_out, ", x.size(1) / groups, ", K] with C_out a multiple of groups (", groups,
              ") for x of shape ", x.sizes(), ", got ", weight.sizes());
  TORCH_CHECK(x.scalar_type() == weight.scalar_type() && at::isFloatingType(x.scalar_type()),
              "conv1d_lrelu: x and weight must share a floating dtype, got ", x.scalar_type(), " and ", weight.scalar_type());
  TORCH_CHECK(x.device().type() == device && weight.device().type() == device, "conv1d_lrelu (",
              c10::DeviceTypeName(device), " kernel): got tensors on ", x.device(), " and ", weight.device());
  if (bias) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == weight.size(0) && bias->scalar_type() == x.scalar_type() &&
                    bias->device().type() == device,
                "conv1d_lrelu: bias must be a ", c10::DeviceTypeName(device), " ", x.scalar_type(), " tensor of shape [",
                weight.size(0), "], got ", bias->scalar_type(), " ", bias->sizes());
  }
  TORCH_CHECK(x.size(2) + 2 * padding >= weight.size(2), "conv1d_lrelu: length ", x.size(2), " with padding ", padding,
              " is shorter than the kernel (", weight.size(2), ")");
}

inline void check_resblock(c10::DeviceType device, const at::Tensor& x, at::TensorList weights, at::TensorList biases, at::IntArrayRef dilations,
                  int64_t group, const std::optional<at::Tensor>& accum) {
  TORCH_CHECK(x.dim() == 3 && at::isFloatingType(x.scalar_type()) && x.device().type() == device,
              "resblock (", c10::DeviceTypeName(device), " kernel): x must be a floating-point tensor [B, C, T] on it, got ", x.scalar_type(), " ",
              x.sizes(), " on ", x.device());
  const int64_t n = static_cast<int64_t>(weights.size());
  TORCH_CHECK(n > 0 && n == static_cast<int64_t>(biases.size()) && n == static_cast<int64_t>(dilations.size()),
              "resblock: expected as many weights, biases and dilations, got ", weights.size(), ", ", biases.size(),
              " and ", dilations.size());
  TORCH_CHECK(group >= 1 && n % group == 0, "resblock: ", n, " convs do not split into groups of ", group);
  const int64_t c = x.size(1), k = weights[0].size(-1);
  TORCH_CHECK(k % 2 == 1, "resblock: 'same' padding needs an odd kernel size, got K=", k);
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(weights[i].sizes() == at::IntArrayRef({c, c, k}) && weights[i].scalar_type() == x.scalar_type() &&
                    weights[i].device().type() == device,
                "resblock: weight ", i, " must be a ", x.scalar_type(), " tensor on ", c10::DeviceTypeName(device), " [", c, ", ", c, ", ", k, "], got ",
                weights[i].scalar_type(), " ", weights[i].sizes());
    TORCH_CHECK(biases[i].sizes() == at::IntArrayRef({c}) && biases[i].scalar_type() == x.scalar_type() &&
                    biases[i].device().type() == device,
                "resblock: bias ", i, " must be a ", x.scalar_type(), " tensor on ", c10::DeviceTypeName(device), " [", c, "], got ", biases[i].sizes());
    TORCH_CHECK(dilations[i] >= 1, "resblock: dilation ", i, " must be >= 1, got ", dilations[i]);
  }
  if (accum) {
    TORCH_CHECK(accum->sizes() == x.sizes() && accum->scalar_type() == x.scalar_type() && accum->device().type() == device,
                "resblock: accum must be a ", x.scalar_type(), " tensor shaped like x ", x.sizes(), ", got ", accum->sizes());
  }
}

inline void check_wn_layer(c10::DeviceType device, const at::Tensor& audio, const at::Tensor& in_w, const at::Tensor& rs_w, int64_t dilation,
                  bool last) {
  TORCH_CHECK(audio.dim() == 3 && audio.size(2) >= 1, "wn_layer: audio must be [B, C, T] with T >= 1, got shape ",
              audio.sizes());
  TORCH_CHECK(at::isFloatingType(audio.scalar_type()) && audio.device().type() == device,
              "wn_layer (", c10::DeviceTypeName(device), " kernel): audio must be a floating-point ", c10::DeviceTypeName(device), " tensor, got ", audio.scalar_type(), " on ",
              audio.device());
  const int64_t c = audio.size(1);
  TORCH_CHECK(in_w.dim() == 3 && in_w.size(0) == 2 * c && in_w.size(1) == c && in_w.size(2) % 2 == 1,
              "wn_layer: in_weight must be [", 2 * c, ", ", c, ", K] with K odd, got shape ", in_w.sizes());
  const int64_t rows = last ? c : 2 * c;
  TORCH_CHECK(rs_w.sizes() == at::IntArrayRef({rows, c, 1}), "wn_layer: rs_weight must be [", rows, ", ", c,
              ", 1], got shape ", rs_w.sizes());
  for (const at::Tensor* w : {&in_w, &rs_w})
    TORCH_CHECK(w->scalar_type() == audio.scalar_type() && w->device().type() == device, "wn_layer: weights must be ", c10::DeviceTypeName(device), " ",
                audio.scalar_type(), " tensors like audio, got ", w->scalar_type(), " on ", w->device());
  TORCH_CHECK(dilation >= 1, "wn_layer: dilation must be >= 1, got ", dilation);
}

inline void check_wn_like(c10::DeviceType device, const char* name, const at::Tensor& t, const at::Tensor& audio, at::IntArrayRef shape) {
  TORCH_CHECK(t.sizes() == shape && t.scalar_type() == audio.scalar_type() && t.device().type() == device, "wn_layer: ",
              name, " must be a ", c10::DeviceTypeName(device), " ", audio.scalar_type(), " tensor of shape ", shape, ", got ", t.scalar_type(),
              " ", t.sizes(), " on ", t.device());
}

inline void check_affine_coupling(c10::DeviceType device, const at::Tensor& x, const at::Tensor& wn_out) {
  TORCH_CHECK(x.dim() == 3, "affine_coupling: x must be [B, n_half, T], got shape ", x.sizes());
  TORCH_CHECK(wn_out.sizes() == at::IntArrayRef({x.size(0), 2 * x.size(1), x.size(2)}),
              "affine_coupling: wn_out must be [", x.size(0), ", ", 2 * x.size(1), ", ", x.size(2), "], got shape ",
              wn_out.sizes());
  for (const at::Tensor* t : {&x, &wn_out}) {
    TORCH_CHECK(t->device().type() == device, "affine_coupling (", c10::DeviceTypeName(device), " kernel): got a tensor on ", t->device());
    TORCH_CHECK(at::isFloatingType(t->scalar_type()), "affine_coupling: expected floating-point tensors, got ",
                t->scalar_type());
  }
}

inline void check_invertible_conv1x1(c10::DeviceType device, const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(x.dim() == 3, "invertible_conv1x1: x must be [B, c, T], got shape ", x.sizes());
  const int64_t c = x.size(1);
  TORCH_CHECK(weight.sizes() == at::IntArrayRef({c, c, 1}), "invertible_conv1x1: weight must be [", c, ", ", c,
              ", 1], got shape ", weight.sizes());
  for (const at::Tensor* t : {&x, &weight}) {
    TORCH_CHECK(t->device().type() == device, "invertible_conv1x1 (", c10::DeviceTypeName(device), " kernel): got a tensor on ", t->device());
    TORCH_CHECK(at::isFloatingType(t->scalar_type()), "invertible_conv1x1: expected floating-point tensors, got ",
                t->scalar_type());
  }
}

}  // namespace vocoder_ext::checks
