// CPU kernels of vocoder_ext::invertible_conv1x1 and its backward. c (the grouped audio channels,
// <= 8 in WaveGlow) is tiny, so the product is a c x c matrix applied along time in one pass, with the
// time loop innermost (vectorized by the compiler); W^-1 and log|det W| come from ATen's LAPACK in
// fp32 (fp64 for fp64 inputs) on every call, as the reference computes them, so nothing is cached.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <tuple>

namespace vocoder_ext::cpu {
namespace {

constexpr int64_t kChunk = 2048;  // time steps per task: c rows of it stay in L1

at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kDouble || b.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// y[b] = m x[b] for every batch item, m [c, c]; x, m contiguous in the compute dtype.
at::Tensor apply(const at::Tensor& m, const at::Tensor& x) {
  at::Tensor y = at::empty_like(x);
  const int64_t batch = x.size(0), c = x.size(1), t_len = x.size(2), chunks = (t_len + kChunk - 1) / kChunk;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "vocoder_ext_invertible_conv1x1", [&] {
    const scalar_t* mp = m.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, batch * chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / chunks, t0 = (task % chunks) * kChunk, len = std::min(kChunk, t_len - t0);
        for (int64_t i = 0; i < c; ++i) {
          scalar_t* yr = yp + (b * c + i) * t_len + t0;
          std::fill(yr, yr + len, scalar_t(0));
          for (int64_t j = 0; j < c; ++j) {
            const scalar_t w = mp[i * c + j];
            const scalar_t* xr = xp + (b * c + j) * t_len + t0;
            for (int64_t t = 0; t < len; ++t) yr[t] += w * xr[t];
          }
        }
      }
    });
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> invertible_conv1x1_cpu(const at::Tensor& x, const at::Tensor& weight,
                                                          bool reverse) {
  checks::check_invertible_conv1x1(c10::DeviceType::CPU, x, weight);
  const at::ScalarType ct = compute_dtype(x, weight);
  const at::Tensor w = weight.select(2, 0).to(ct).contiguous();
  const at::Tensor log_det = std::get<1>(at::linalg_slogdet(w)) * double(x.size(0) * x.size(2));
  if (reverse) {
    const at::Tensor w_inv = std::get<0>(at::linalg_inv_ex(w)).contiguous();
    return {apply(w_inv, x.to(ct).contiguous()).to(x.scalar_type()), -log_det};
  }
  // The forward product in x's dtype's compute type: fp16/bf16 accumulate in fp32 and round once.
  const at::ScalarType xt = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return {apply(w.to(xt), x.to(xt).contiguous()).to(x.scalar_type()), log_det};
}

std::tuple<at::Tensor, at::Tensor> invertible_conv1x1_backward_cpu(const at::Tensor& grad_out,
                                                                   const at::Tensor& grad_log_det, const at::Tensor& x,
                                                                   const at::Tensor& weight, bool reverse) {
  checks::check_invertible_conv1x1(c10::DeviceType::CPU, x, weight);
  TORCH_CHECK(grad_out.sizes() == x.sizes() && grad_out.device().is_cpu(),
              "invertible_conv1x1_backward: grad_out must be a CPU tensor shaped like x ", x.sizes(), ", got ",
              grad_out.sizes(), " on ", grad_out.device());
  TORCH_CHECK(grad_log_det.numel() == 1, "invertible_conv1x1_backward: grad_log_det must be a scalar, got shape ",
              grad_log_det.sizes());
  const at::ScalarType ct = compute_dtype(x, weight);
  const at::Tensor w = weight.select(2, 0).to(ct).contiguous();
  const at::Tensor g = grad_out.to(ct).contiguous(), xc = x.to(ct).contiguous();
  const at::Tensor scaled = grad_log_det.to(ct) * double(x.size(0) * x.size(2));
  const at::Tensor w_inv_t = std::get<0>(at::linalg_inv_ex(w)).t().contiguous();
  const at::Tensor g_xt = at::bmm(g, xc.transpose(1, 2)).sum(0);  // sum_b,t g x^T: dL/d(the applied matrix)
  at::Tensor grad_x, grad_w;
  if (reverse) {  // y = V x, V = W^-1: dL/dW = -V^T (g x^T) V^T; log_det = -n log|det W|
    grad_x = apply(w_inv_t, g);
    grad_w = -at::matmul(at::matmul(w_inv_t, g_xt), w_inv_t) - scaled * w_inv_t;
  } else {  // y = W x; d log|det W| / dW = W^-T
    grad_x = apply(w.t().contiguous(), g);
    grad_w = g_xt + scaled * w_inv_t;
  }
  return {grad_x.to(x.scalar_type()), grad_w.unsqueeze(-1).to(weight.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("invertible_conv1x1", &invertible_conv1x1_cpu);
  m.impl("invertible_conv1x1_backward", &invertible_conv1x1_backward_cpu);
}

}  // namespace vocoder_ext::cpu
