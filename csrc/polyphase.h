// The polyphase form of a transposed conv1d (stride s, padding p, K taps), shared by the CPU and CUDA
// kernels: output o = j * s + r only receives taps k0 + m * s, k0 = (r + p) mod s, from inputs
// t = j + c - m, c = (r + p - k0) / s. So each phase r is a plain conv1d of `taps` taps over the input
// (tap u is weight tap k0 + (taps - 1 - u) * s; left padding taps - 1 - c), written every s-th output
// from r. No zero-stuffing, no col2im pass.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace vocoder_ext {

// Output length of the transposed conv: output_padding adds outputs at the end only (padding crops both ends).
inline int64_t transposed_out_len(int64_t t_in, int64_t stride, int64_t padding, int64_t k, int64_t output_padding) {
  return (t_in - 1) * stride - 2 * padding + k + output_padding;
}

struct Phase {
  int64_t outputs;    // outputs of this phase: o = r, r + s, ... < t_out
  int64_t first_tap;  // k0
  int64_t taps;       // 0: no tap reaches the phase (bias only)
  int64_t pad;        // the phase conv's left padding
};

inline Phase transposed_conv_phase(int64_t r, int64_t stride, int64_t padding, int64_t k, int64_t t_out) {
  const int64_t k0 = (r + padding) % stride, c = (r + padding - k0) / stride;
  const int64_t taps = k0 < k ? (k - k0 + stride - 1) / stride : 0;
  return {(t_out - r + stride - 1) / stride, k0, taps, taps - 1 - c};
}

// Writes the bias (or zeros) into the outputs of a phase no tap reaches.
inline void fill_tapless_phase(at::Tensor& y, int64_t r, int64_t stride, const Phase& phase,
                               const std::optional<at::Tensor>& bias) {
  at::Tensor out = y.narrow(2, r, 1 + (phase.outputs - 1) * stride).slice(2, 0, c10::nullopt, stride);
  bias ? out.copy_(bias->view({1, -1, 1}).expand_as(out)) : out.zero_();
}

}  // namespace vocoder_ext
