// CUDA kernels of vocoder_ext::invertible_conv1x1 and its backward (torch glue). W^-1 and log|det W|
// come from ATen (cuSOLVER) in fp32 (fp64 for fp64 inputs) on every call, as the reference computes
// them; the products along time are conv1d.cu's kernel with one tap (fp32 accumulation), the weight
// gradient's sum of g x^T is conv1d_grad_weight.cu's.
#include <tuple>

#include "../checks.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kDouble || b.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// y[b] = m x[b], m [c, c] in the compute dtype; x in its own dtype.
at::Tensor apply(const at::Tensor& m, const at::Tensor& x) {
  at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
  const at::Tensor packed = m.t().to(acc_type(x)).contiguous();  // [c_in][c_out]
  launched(conv1d(same_conv(x, packed, 1, 1, 1.0, y), stream()));
  return y;
}

std::tuple<at::Tensor, at::Tensor> invertible_conv1x1_cuda(const at::Tensor& x_in, const at::Tensor& weight,
                                                           bool reverse) {
  checks::check_invertible_conv1x1(kDevice, x_in, weight);
  const DeviceGuard guard(x_in.device());
  const at::ScalarType ct = compute_dtype(x_in, weight);
  // fp16/bf16 x stays in its dtype (the kernel accumulates in fp32); an fp64 weight makes it fp64.
  const at::Tensor x = unit_time(ct == at::kDouble ? x_in.to(ct) : x_in);
  const at::Tensor w = weight.select(2, 0).to(ct).contiguous();
  const at::Tensor log_det = std::get<1>(at::linalg_slogdet(w)) * double(x_in.size(0) * x_in.size(2));
  if (reverse) return {apply(std::get<0>(at::linalg_inv_ex(w)), x).to(x_in.scalar_type()), -log_det};
  return {apply(w, x).to(x_in.scalar_type()), log_det};
}

std::tuple<at::Tensor, at::Tensor> invertible_conv1x1_backward_cuda(const at::Tensor& grad_out,
                                                                    const at::Tensor& grad_log_det,
                                                                    const at::Tensor& x_in, const at::Tensor& weight,
                                                                    bool reverse) {
  checks::check_invertible_conv1x1(kDevice, x_in, weight);
  TORCH_CHECK(grad_out.sizes() == x_in.sizes() && grad_out.device() == x_in.device(),
              "invertible_conv1x1_backward: grad_out must be shaped like x ", x_in.sizes(), " on ", x_in.device(),
              ", got ", grad_out.sizes(), " on ", grad_out.device());
  TORCH_CHECK(grad_log_det.numel() == 1, "invertible_conv1x1_backward: grad_log_det must be a scalar, got shape ",
              grad_log_det.sizes());
  const DeviceGuard guard(x_in.device());
  const at::ScalarType ct = compute_dtype(x_in, weight);
  const at::Tensor w = weight.select(2, 0).to(ct).contiguous();
  const at::Tensor x = unit_time(x_in.to(grad_out.scalar_type()));
  const at::Tensor g = unit_time(grad_out);
  const at::Tensor scaled = grad_log_det.to(ct) * double(x_in.size(0) * x_in.size(2));
  const at::Tensor w_inv_t = std::get<0>(at::linalg_inv_ex(w)).t().contiguous();
  const at::Tensor g_xt = grad_weight(g, 1.0, x, Prologue::kLeaky, 1.0, 1).squeeze(-1).to(ct);  // sum_b,t g x^T
  at::Tensor grad_x, grad_w;
  if (reverse) {  // y = V x, V = W^-1: dL/dW = -V^T (g x^T) V^T; log_det = -n log|det W|
    grad_x = apply(w_inv_t, g);
    grad_w = -at::matmul(at::matmul(w_inv_t, g_xt), w_inv_t) - scaled * w_inv_t;
  } else {  // y = W x; d log|det W| / dW = W^-T
    grad_x = apply(w.t(), g);
    grad_w = g_xt + scaled * w_inv_t;
  }
  return {grad_x.to(x_in.scalar_type()), grad_w.unsqueeze(-1).to(weight.scalar_type())};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("invertible_conv1x1", &invertible_conv1x1_cuda);
  m.impl("invertible_conv1x1_backward", &invertible_conv1x1_backward_cuda);
}

}  // namespace vocoder_ext::cuda
