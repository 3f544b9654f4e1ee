// CPU kernels of vocoder_ext::affine_coupling and its backward: one pass over the coupled half of
// the audio, reading b and log_s where the WN wrote them (no split, no exp tensor). Computed in fp32
// (fp64 for fp64 inputs), as the reference is: an fp16 exp overflows past log_s = 11.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"

#include <cmath>
#include <tuple>

#include "../pointwise.h"

namespace vocoder_ext::cpu {
namespace {

at::ScalarType compute_dtype(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == at::kDouble || b.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// Runs f(row of x, row of b, row of log_s, row index) over every (batch item, channel) row in parallel.
template <class F>
void for_rows(int64_t batch, int64_t n, F f) {
  at::parallel_for(0, batch * n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) f(r / n, r % n, r);
  });
}

at::Tensor affine_coupling_cpu(const at::Tensor& x, const at::Tensor& wn_out, bool reverse) {
  checks::check_affine_coupling(c10::DeviceType::CPU, x, wn_out);
  const at::ScalarType ct = compute_dtype(x, wn_out);
  const at::Tensor xc = x.to(ct).contiguous(), oc = wn_out.to(ct).contiguous();
  at::Tensor y = at::empty_like(xc);
  const int64_t batch = x.size(0), n = x.size(1), t_len = x.size(2);
  AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_affine_coupling", [&] {
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* op = oc.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    for_rows(batch, n, [&](int64_t b, int64_t i, int64_t r) {
      const scalar_t* xr = xp + r * t_len;
      const scalar_t* br = op + (b * 2 * n + i) * t_len;
      const scalar_t* lr = br + n * t_len;
      scalar_t* yr = yp + r * t_len;
      for (int64_t t = 0; t < t_len; ++t) yr[t] = affine_coupling(xr[t], br[t], lr[t], reverse);
    });
  });
  return y.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> affine_coupling_backward_cpu(const at::Tensor& grad_out, const at::Tensor& x,
                                                                const at::Tensor& wn_out, bool reverse) {
  checks::check_affine_coupling(c10::DeviceType::CPU, x, wn_out);
  TORCH_CHECK(grad_out.sizes() == x.sizes() && grad_out.device().is_cpu(),
              "affine_coupling_backward: grad_out must be a CPU tensor shaped like x ", x.sizes(), ", got ",
              grad_out.sizes(), " on ", grad_out.device());
  const at::ScalarType ct = compute_dtype(x, wn_out);
  const at::Tensor gc = grad_out.to(ct).contiguous(), xc = x.to(ct).contiguous(), oc = wn_out.to(ct).contiguous();
  at::Tensor grad_x = at::empty_like(xc), grad_o = at::empty_like(oc);
  const int64_t batch = x.size(0), n = x.size(1), t_len = x.size(2);
  AT_DISPATCH_FLOATING_TYPES(ct, "vocoder_ext_affine_coupling_backward", [&] {
    const scalar_t* gp = gc.const_data_ptr<scalar_t>();
    const scalar_t* xp = xc.const_data_ptr<scalar_t>();
    const scalar_t* op = oc.const_data_ptr<scalar_t>();
    scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
    scalar_t* gop = grad_o.mutable_data_ptr<scalar_t>();
    for_rows(batch, n, [&](int64_t b, int64_t i, int64_t r) {
      const scalar_t *g = gp + r * t_len, *xr = xp + r * t_len;
      const int64_t b_off = (b * 2 * n + i) * t_len, l_off = b_off + n * t_len;
      const scalar_t *br = op + b_off, *lr = op + l_off;
      scalar_t *gx = gxp + r * t_len, *gb = gop + b_off, *gl = gop + l_off;
      for (int64_t t = 0; t < t_len; ++t) affine_coupling_grad(g[t], xr[t], br[t], lr[t], reverse, gx[t], gb[t], gl[t]);
    });
  });
  return {grad_x.to(x.scalar_type()), grad_o.to(wn_out.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("affine_coupling", &affine_coupling_cpu);
  m.impl("affine_coupling_backward", &affine_coupling_backward_cpu);
}

}  // namespace vocoder_ext::cpu
