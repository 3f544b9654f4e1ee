// The per-element math of every fused op, in one place for the CPU and the CUDA kernels: the CPU
// kernels (csrc/cpu, compiled by g++) and the CUDA kernels (csrc/cuda, compiled by nvcc) call these
// same functions, so the CPU tests exercise the formulas the GPU runs.
//
// The templates use arithmetic operators only, so T can be a scalar (float, double) or a GCC vector
// type (__m512, __m256: the CPU's vector registers support + - * with scalars broadcast). Functions
// that branch or call a transcendental take scalars. No torch headers: .cu files include this.
#pragma once

#include <math.h>

#if defined(__CUDACC__)
#define VX_HD __host__ __device__ __forceinline__
#else
#define VX_HD inline
#endif

namespace vocoder_ext {

VX_HD float vx_tanh(float x) { return tanhf(x); }
VX_HD double vx_tanh(double x) { return tanh(x); }
VX_HD float vx_exp(float x) { return expf(x); }
VX_HD double vx_exp(double x) { return exp(x); }

// HiFi-GAN's activation and its derivative (leaky(0) = 0: zero padding commutes with it).
template <class T>
VX_HD T leaky_relu(T x, T slope) {
  return x > T(0) ? x : x * slope;
}
// g * leaky'(x): the gradient through the activation, taken at its input x.
template <class T>
VX_HD T leaky_relu_grad(T g, T x, T slope) {
  return x > T(0) ? g : g * slope;
}

// d tanh(y0) = (1 - tanh(y0)^2): the tanh epilogue's backward from its output y.
template <class T>
VX_HD T tanh_grad(T g, T y) {
  return g * (1 - y * y);
}

// WaveGlow's gate acts = tanh(a_t) * sigmoid(a_s), from t = tanh(a_t) and s = sigmoid(a_s), and its
// backward: grad_a_t = g s (1 - t^2), grad_a_s = g t s (1 - s).
template <class T>
VX_HD T gate(T t, T s) {
  return t * s;
}
template <class T>
VX_HD void gate_grad(T g, T t, T s, T& grad_t, T& grad_s) {
  const T gs = g * s;
  grad_t = gs * (1 - t * t);
  grad_s = gs * t * (1 - s);
}
template <class T>
VX_HD T sigmoid(T x) {
  return T(1) / (T(1) + vx_exp(-x));
}
template <class T>
VX_HD T gate_from_preact(T a_t, T a_s) {
  return gate(vx_tanh(a_t), sigmoid(a_s));
}

// Affine coupling, x1' = e^log_s x1 + b (forward), x1 = (x1' - b) e^-log_s (reverse), and the
// gradients (grad_x, grad_b, grad_log_s) of either from grad_out g.
template <class T>
VX_HD T affine_coupling(T x, T b, T log_s, bool reverse) {
  return reverse ? (x - b) * vx_exp(-log_s) : vx_exp(log_s) * x + b;
}
template <class T>
VX_HD void affine_coupling_grad(T g, T x, T b, T log_s, bool reverse, T& grad_x, T& grad_b, T& grad_log_s) {
  if (reverse) {
    grad_x = g * vx_exp(-log_s);
    grad_b = -grad_x;
    grad_log_s = -grad_x * (x - b);
  } else {
    grad_x = g * vx_exp(log_s);
    grad_b = g;
    grad_log_s = grad_x * x;
  }
}

}  // namespace vocoder_ext
