// WaveGlow's gate over rows of time, forward and backward, for any vector type V (see vec_math.h;
// V::tanh and V::sigmoid are the vector math or, in the scalar builds, libm's; the formulas are
// pointwise.h's, shared with the CUDA kernels).
//   forward:  acts = t * s,  t = tanh(a[:C]), s = sigmoid(a[C:])
//   backward: grad_a[:C] = g * s * (1 - t^2),  grad_a[C:] = g * t * s * (1 - s)   (and acts, if asked)
// The gate is recomputed from a, never stored. Row tails shorter than a vector go through a small
// buffer, so rows of any length (the tensors' T) work.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../pointwise.h"
#include "gate_params.h"

namespace vocoder_ext::cpu {

template <class V>
static inline void gate_vector(const typename V::Scalar* at, const typename V::Scalar* as,
                               const typename V::Scalar* g, typename V::Scalar* acts, typename V::Scalar* gt,
                               typename V::Scalar* gs) {
  using R = typename V::Reg;
  const R t = V::tanh(V::loadu(at)), s = V::sigmoid(V::loadu(as));
  if (acts) V::storeu(acts, gate(t, s));
  if (g) {
    R grad_t, grad_s;
    gate_grad(V::loadu(g), t, s, grad_t, grad_s);
    V::storeu(gt, grad_t);
    V::storeu(gs, grad_s);
  }
}

template <class V>
static void gate_rows(const GateParamsT<typename V::Scalar>& p) {
  using S = typename V::Scalar;
  constexpr int W = V::kWidth;
  for (int64_t ch = 0; ch < p.c; ++ch) {
    const S* at = p.a + ch * p.a_row;
    const S* as = p.a + (p.c + ch) * p.a_row;
    const S* g = p.grad_acts ? p.grad_acts + ch * p.grad_acts_row : nullptr;
    S* acts = p.acts ? p.acts + ch * p.acts_row : nullptr;
    S* gt = p.grad_a ? p.grad_a + ch * p.grad_a_row : nullptr;
    S* gs = p.grad_a ? p.grad_a + (p.c + ch) * p.grad_a_row : nullptr;
    int64_t j = 0;
    for (; j + W <= p.len; j += W)
      gate_vector<V>(at + j, as + j, g ? g + j : nullptr, acts ? acts + j : nullptr,
                     gt ? gt + j : nullptr, gs ? gs + j : nullptr);
    if (j < p.len) {  // the tail, through buffers padded with zeros (harmless inputs)
      const int64_t n = p.len - j;
      alignas(64) S bt[W] = {}, bs[W] = {}, bg[W] = {}, ba[W], bgt[W], bgs[W];
      std::copy(at + j, at + j + n, bt);
      std::copy(as + j, as + j + n, bs);
      if (g) std::copy(g + j, g + j + n, bg);
      gate_vector<V>(bt, bs, g ? bg : nullptr, acts ? ba : nullptr, bgt, bgs);
      if (acts) std::copy(ba, ba + n, acts + j);
      if (g) {
        std::copy(bgt, bgt + n, gt + j);
        std::copy(bgs, bgs + n, gs + j);
      }
    }
  }
}

}  // namespace vocoder_ext::cpu
