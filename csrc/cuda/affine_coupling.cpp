// CUDA kernels of vocoder_ext::affine_coupling and its backward (torch glue; pointwise.cu).
#include <tuple>

#include "../checks.h"
#include "glue.h"

namespace vocoder_ext::cuda {
namespace {

// x and wn_out in one dtype: the shared one, else the fp32 (fp64) both are computed in.
at::ScalarType common_dtype(const at::Tensor& x, const at::Tensor& wn_out) {
  if (x.scalar_type() == wn_out.scalar_type()) return x.scalar_type();
  return x.scalar_type() == at::kDouble || wn_out.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

AffineParams params(const at::Tensor& x, const at::Tensor& wn_out, bool reverse) {
  AffineParams p;
  p.dtype = dtype_of(x);
  p.x = x.const_data_ptr(), p.wn_out = wn_out.const_data_ptr();
  p.batch = x.size(0), p.n = x.size(1), p.t = x.size(2), p.reverse = reverse;
  return p;
}

at::Tensor affine_coupling_cuda(const at::Tensor& x_in, const at::Tensor& wn_out_in, bool reverse) {
  checks::check_affine_coupling(kDevice, x_in, wn_out_in);
  const DeviceGuard guard(x_in.device());
  const at::ScalarType dt = common_dtype(x_in, wn_out_in);
  const at::Tensor x = x_in.to(dt).contiguous(), wn_out = wn_out_in.to(dt).contiguous();
  at::Tensor y = at::empty_like(x);
  AffineParams p = params(x, wn_out, reverse);
  p.y = y.mutable_data_ptr();
  launched(affine_coupling(p, stream()));
  return y.to(x_in.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> affine_coupling_backward_cuda(const at::Tensor& grad_out, const at::Tensor& x_in,
                                                                 const at::Tensor& wn_out_in, bool reverse) {
  checks::check_affine_coupling(kDevice, x_in, wn_out_in);
  TORCH_CHECK(grad_out.sizes() == x_in.sizes() && grad_out.device() == x_in.device(),
              "affine_coupling_backward: grad_out must be shaped like x ", x_in.sizes(), " on ", x_in.device(),
              ", got ", grad_out.sizes(), " on ", grad_out.device());
  const DeviceGuard guard(x_in.device());
  const at::ScalarType dt = common_dtype(x_in, wn_out_in);
  const at::Tensor x = x_in.to(dt).contiguous(), wn_out = wn_out_in.to(dt).contiguous();
  const at::Tensor g = grad_out.to(dt).contiguous();
  at::Tensor grad_x = at::empty_like(x), grad_o = at::empty_like(wn_out);
  AffineParams p = params(x, wn_out, reverse);
  p.grad_out = g.const_data_ptr(), p.y = grad_x.mutable_data_ptr(), p.grad_wn_out = grad_o.mutable_data_ptr();
  launched(affine_coupling_backward(p, stream()));
  return {grad_x.to(x_in.scalar_type()), grad_o.to(wn_out_in.scalar_type())};
}

}  // namespace

VX_CUDA_LIBRARY_IMPL(m) {
  m.impl("affine_coupling", &affine_coupling_cuda);
  m.impl("affine_coupling_backward", &affine_coupling_backward_cuda);
}

}  // namespace vocoder_ext::cuda
