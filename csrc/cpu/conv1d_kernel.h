// Register-blocked, time-tiled conv1d with a leaky-ReLU prologue and a fused epilogue.
//
// Included by the ISA-specific translation units (conv1d_avx512.cpp, conv1d_avx2.cpp), each
// compiled for its instruction set with `#pragma GCC target`; it must not include torch headers, so
// no inline function of torch's gets compiled for an ISA the running CPU may lack, and its own
// functions are static, so the linker cannot pick an AVX-512 copy for a baseline caller.
//
// One task = one (batch item, time tile). The tile's input, leaky-ReLU'd and zero-padded, is staged
// once in a per-thread buffer (it stays in L2 while every output channel of the tile is computed),
// then MO output channels x NT vectors of time are accumulated in registers over (c_in, k).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../pointwise.h"
#include "conv1d_params.h"

namespace vocoder_ext::cpu {

// Gathers output channels [co0, co0 + kConvMO) of group `group`'s weights as dst[ci][k][m]; returns dst.
template <class S>
static inline const S* gather_block(const Conv1dParamsT<S>& p, int64_t co0, S* dst, int64_t group = 0) {
  // Written in order, read as kConvMO row streams: a big layer's weights (the discriminators' 1024 x 1024 x 5)
  // pack in a few ms, not the ~10 ms a column-by-column gather takes.
  const S* src[kConvMO];
  for (int m = 0; m < kConvMO; ++m) src[m] = p.w + group * p.w_group + std::min<int64_t>(co0 + m, p.c_out - 1) * p.w_co;
  for (int64_t ci = 0; ci < p.c_in; ++ci)
    for (int64_t kk = 0; kk < p.k; ++kk) {
      const int64_t off = ci * p.w_ci + kk * p.w_k;
      S* d = dst + (ci * p.k + kk) * kConvMO;
      for (int m = 0; m < kConvMO; ++m) d[m] = src[m][off];
    }
  return dst;
}

// bf16 bits of f, rounded to nearest even (as c10::BFloat16 rounds); NaN stays a quiet NaN.
static inline uint32_t bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// The bf16 kernel's weight block: dst[cp][k][m] = bf16 pair (w[co0 + m][2cp][k], w[co0 + m][2cp + 1][k]),
// the second 0 past c_in (an odd c_in gets a zero channel).
static inline void gather_block_pairs(const Conv1dParams& p, int64_t co0, uint32_t* dst, int64_t group = 0) {
  const int64_t pairs = (p.c_in + 1) / 2;
  for (int m = 0; m < kConvMO; ++m) {
    const float* src = p.w + group * p.w_group + std::min<int64_t>(co0 + m, p.c_out - 1) * p.w_co;
    for (int64_t cp = 0; cp < pairs; ++cp)
      for (int64_t kk = 0; kk < p.k; ++kk) {
        const int64_t ci = 2 * cp;
        const uint32_t lo = bf16_bits(src[ci * p.w_ci + kk * p.w_k]);
        const uint32_t hi = ci + 1 < p.c_in ? bf16_bits(src[(ci + 1) * p.w_ci + kk * p.w_k]) : 0u;
        dst[(cp * p.k + kk) * kConvMO + m] = lo | (hi << 16);
      }
  }
}

// Whether V multiplies bf16 pairs (V::kBf16Pairs) instead of scalars.
template <class V, class = void>
struct UsesBf16Pairs : std::false_type {};
template <class V>
struct UsesBf16Pairs<V, std::void_t<decltype(V::kBf16Pairs)>> : std::bool_constant<V::kBf16Pairs> {};

template <class V, int NT>
static inline void conv1d_tiles(const Conv1dParamsT<typename V::Scalar>& p, int64_t task_begin, int64_t task_end,
                         typename V::Scalar* act) {
  using S = typename V::Scalar;
  constexpr int W = V::kWidth;
  constexpr int MO = kConvMO;
  constexpr int64_t kBlock = int64_t(W) * NT;
  const int64_t K = p.k, d = p.dilation, pad = p.pad;
  const int64_t tiles = (p.t_out + p.tile_len - 1) / p.tile_len;
  const int64_t row = act_row_len(p.tile_len, kBlock, K, d);
  S* wscratch = act + p.c_in * row;  // one block's weights, when not pre-gathered
  // The bf16 kernel stages and multiplies pairs of input channels: a 32-bit element holds (2cp, 2cp + 1).
  constexpr bool kPairs = UsesBf16Pairs<V>::value;
  const int64_t rows = kPairs ? (p.c_in + 1) / 2 : p.c_in;
  const int64_t taps = rows * K;
  const int64_t groups = p.groups > 1 ? p.groups : 1, blocks_per_group = (p.c_out + MO - 1) / MO;
  std::vector<int64_t> tap_off(taps);  // staged-input offset of tap (row, k)
  for (int64_t ci = 0; ci < rows; ++ci)
    for (int64_t kk = 0; kk < K; ++kk) tap_off[ci * K + kk] = ci * row + kk * d;

  for (int64_t task = task_begin; task < task_end; ++task) {
    const int64_t b = task / tiles;
    const int64_t t0 = (task % tiles) * p.tile_len;
    const int64_t len = std::min(p.tile_len, p.t_out - t0);

    // Stage act[ci][j] = leaky(x[b, ci, t0 - pad + j]), zero outside [0, t_in) (leaky(0) = 0, so
    // this equals zero-padding the activated input).
    const int64_t lo = std::clamp<int64_t>(pad - t0, 0, row);              // first j inside [0, t_in)
    const int64_t hi = std::clamp<int64_t>(p.t_in - t0 + pad, lo, row);   // one past the last
    if constexpr (kPairs) {
      uint32_t* const pairs = reinterpret_cast<uint32_t*>(act);
      for (int64_t cp = 0; cp < rows; ++cp) {
        const int64_t at = (b * p.c_in + 2 * cp) * p.x_row + (t0 - pad) + lo;
        const bool odd = 2 * cp + 1 >= p.c_in;  // the last pair of an odd c_in: its second channel is zeros
        uint32_t* ar = pairs + cp * row;
        std::fill(ar, ar + lo, 0u);
        if (p.x_bf16)
          V::stage_pairs(p.x_bf16 + at, odd ? nullptr : p.x_bf16 + at + p.x_row, ar + lo, hi - lo, p.slope);
        else
          V::stage_pairs(p.x + at, odd ? nullptr : p.x + at + p.x_row, ar + lo, hi - lo, p.slope);
        std::fill(ar + hi, ar + row, 0u);
      }
    } else {
      for (int64_t ci = 0; ci < p.c_in; ++ci) {
        const S* src = p.x + (b * p.c_in + ci) * p.x_row + (t0 - pad);
        S* ar = act + ci * row;
        const S s = p.slope;
        for (int64_t j = 0; j < lo; ++j) ar[j] = S(0);
        for (int64_t j = lo; j < hi; ++j) {
          ar[j] = leaky_relu(src[j], s);
        }
        for (int64_t j = hi; j < row; ++j) ar[j] = S(0);
      }
    }

    for (int64_t co0 = 0; co0 < p.c_out; co0 += MO) {
      // This block's taps as wb[ci][k][m] (one stream for the inner loop): pre-gathered for the
      // whole call, or gathered here from any layout. Rows past c_out repeat the last one; their
      // results are not stored.
      const int64_t group = b % groups;
      const int64_t block_at = (group * blocks_per_group + co0 / MO) * taps * MO;
      const S* wb = nullptr;
      if constexpr (!kPairs)
        wb = p.w_packed ? p.w_packed + block_at : gather_block(p, co0, wscratch, group);
      for (int64_t n0 = 0; n0 < len; n0 += kBlock) {
        typename V::Reg acc[MO][NT];
#pragma GCC unroll 8
        for (int m = 0; m < MO; ++m)
#pragma GCC unroll 8
          for (int n = 0; n < NT; ++n) acc[m][n] = V::zero();

        // One flat loop over (ci, k) taps keeps the accumulators in registers (GCC spills them
        // across nested loops).
        if constexpr (kPairs) {
          const uint32_t* a0 = reinterpret_cast<const uint32_t*>(act) + n0;
          const uint32_t* wp = p.w_pairs + block_at;
          for (int64_t j = 0; j < taps; ++j) {
            const uint32_t* a = a0 + tap_off[j];
            const uint32_t* wk = wp + j * MO;
            typename V::Pairs xv[NT];
#pragma GCC unroll 8
            for (int n = 0; n < NT; ++n) xv[n] = V::load_pairs(a + n * W);
#pragma GCC unroll 8
            for (int m = 0; m < MO; ++m) {
              const typename V::Pairs wv = V::set1_pairs(wk[m]);
#pragma GCC unroll 8
              for (int n = 0; n < NT; ++n) acc[m][n] = V::dot_pairs(acc[m][n], wv, xv[n]);
            }
          }
        } else {
          const S* a0 = act + n0;
          for (int64_t j = 0; j < taps; ++j) {
            const S* a = a0 + tap_off[j];
            const S* wk = wb + j * MO;
            typename V::Reg xv[NT];
#pragma GCC unroll 8
            for (int n = 0; n < NT; ++n) xv[n] = V::loadu(a + n * W);
#pragma GCC unroll 8
            for (int m = 0; m < MO; ++m) {
              const typename V::Reg wv = V::set1(wk[m]);
#pragma GCC unroll 8
              for (int n = 0; n < NT; ++n) acc[m][n] = V::fmadd(wv, xv[n], acc[m][n]);
            }
          }
        }

        // Park the accumulators with compile-time indices only, so they can live in registers.
        alignas(64) S res[MO][NT * W];
#pragma GCC unroll 8
        for (int m = 0; m < MO; ++m)
#pragma GCC unroll 8
          for (int n = 0; n < NT; ++n) V::storeu(&res[m][n * W], acc[m][n]);

        // Epilogue: + bias, tanh, * leaky'(gate), + residual; full contiguous vectors stored
        // directly, the tile's tail and strided outputs (polyphase transposed conv) element-wise.
        for (int m = 0; m < MO && co0 + m < p.c_out; ++m) {
          const int64_t co = co0 + m;
          const S bias = p.bias ? p.bias[group * p.c_out + co] : S(0);  // bias rows run over every group
          const int64_t off = (b * p.c_out + co) * p.y_row + p.y_off + t0 * p.y_step;
          const int64_t roff = p.res_row > 0 ? (b * p.c_out + co) * p.res_row + p.res_off + t0 * p.y_step : off;
          for (int n = 0; n < NT; ++n) {
            const int64_t t = n0 + int64_t(n) * W;
            if (t >= len) break;
            typename V::Reg v = V::add(V::loadu(&res[m][n * W]), V::set1(bias));
            if (len - t >= W && !p.tanh_out && p.y_step == 1) {
              if (p.gate) v = V::leaky_grad(v, V::loadu(p.gate + off + t), p.gate_slope);
              if (p.residual) v = V::add(v, V::loadu(p.residual + roff + t));
              if (p.leaky_out) v = V::leaky_grad(v, v, p.out_slope);
              V::storeu(p.y + off + t, v);
            } else {
              alignas(64) S tmp[W];
              V::storeu(tmp, v);
              const int64_t cnt = std::min<int64_t>(W, len - t);
              for (int64_t i = 0; i < cnt; ++i) {
                const int64_t at = off + (t + i) * p.y_step;
                S r = tmp[i];
                if (p.tanh_out) r = vx_tanh(r);
                if (p.gate) r = leaky_relu_grad(r, p.gate[at], p.gate_slope);
                if (p.residual) r += p.residual[roff + (t + i) * p.y_step];
                if (p.leaky_out) r = leaky_relu(r, p.out_slope);
                p.y[at] = r;
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace vocoder_ext::cpu
