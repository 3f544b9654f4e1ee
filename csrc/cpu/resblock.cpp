// CPU kernel of vocoder_ext::resblock: a whole HiFi-GAN residual block in one pass over time.
//
// Each task takes one (batch item, time tile), loads the tile plus the block's total halo into a
// per-thread buffer, and runs every conv of the block on it with the tiled conv1d kernel (the
// region shrinks by each conv's halo), so the intermediates never leave the cache; only the
// block's output (accumulated into the MRF average) is written. The halo is recomputed by
// neighbouring tiles, which costs a few percent of extra FLOPs on long tiles.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "conv1d_kernel.h"
#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

at::Tensor resblock_cpu(const at::Tensor& x, at::TensorList weights, at::TensorList biases, at::IntArrayRef dilations,
                        int64_t group, double slope, const std::optional<at::Tensor>& accum, double scale) {
  checks::check_resblock(c10::DeviceType::CPU, x, weights, biases, dilations, group, accum);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "resblock (CPU kernel): x must be a float32 or bfloat16 tensor, got ", x.scalar_type());
  // bf16 tensors are computed in fp32 (bf16 products where bf16_compute says so) and rounded once at the end.
  const bool bf16 = bf16_compute(x);
  const at::Tensor xc = x.to(at::kFloat).contiguous();
  const at::Tensor ac = accum ? accum->to(at::kFloat).contiguous() : at::Tensor();
  std::vector<at::Tensor> ws, bs;
  for (size_t i = 0; i < weights.size(); ++i) {
    ws.push_back(weights[i].to(at::kFloat).contiguous());
    bs.push_back(biases[i].to(at::kFloat).contiguous());
  }
  const int64_t n_convs = static_cast<int64_t>(ws.size());
  const int64_t batch = xc.size(0), c = xc.size(1), t_len = xc.size(2), k = ws[0].size(2);
  int64_t halo = 0, max_dil = 1;
  for (int64_t d : dilations) halo += d * (k - 1) / 2, max_dil = std::max(max_dil, d);

  const SerialConv1d conv(bf16);
  const int64_t block = conv.block;
  // Two tile buffers and the kernel's staging: about 1.5 MiB, i.e. most of the L2.
  int64_t tile = (int64_t(3) << 19) / (4 * 3 * c) - 2 * halo;
  tile = std::clamp<int64_t>(tile / block * block, block, 4096);
  while (tile > block && batch * ((t_len + tile - 1) / tile) < 4 * at::get_num_threads()) tile = tile / 2 / block * block;
  tile = std::max(tile, block);
  const int64_t row = tile + 2 * halo;  // buffer row: the tile and its halo
  const int64_t staged = (row + block - 1) / block * block + (k - 1) * max_dil;
  const int64_t tiles = (t_len + tile - 1) / tile;

  // Each conv's taps gathered once for all tiles and threads (the kernel's inner-loop layout).
  std::vector<std::vector<float>> packed(n_convs);
  std::vector<Conv1dParams> packs(n_convs);
  for (int64_t i = 0; i < n_convs; ++i) {
    Conv1dParams& q = packs[i];
    q.w = ws[i].const_data_ptr<float>(), q.w_co = c * k, q.w_ci = k, q.w_k = 1;
    q.c_in = c, q.c_out = c, q.k = k;
    pack_weights(q, bf16, packed[i]);
  }

  at::Tensor y = at::empty_like(xc);
  const float* xp = xc.const_data_ptr<float>();
  const float* accp = accum ? ac.const_data_ptr<float>() : nullptr;
  float* yp = y.mutable_data_ptr<float>();
  const float fscale = static_cast<float>(scale);

  at::parallel_for(0, batch * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> xbuf(c * row), tbuf(c * row), scratch(c * staged + c * k * kConvMO);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, t0 = (task % tiles) * tile, len = std::min(tile, t_len - t0);
      const int64_t base = t0 - halo;  // absolute time of buffer column 0
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* src = xp + (b * c + ch) * t_len;
        float* dst = xbuf.data() + ch * row;
        for (int64_t i = 0; i < len + 2 * halo; ++i) {
          const int64_t t = base + i;
          dst[i] = (t >= 0 && t < t_len) ? src[t] : 0.f;
        }
      }
      int64_t s = base, e = t0 + len + halo;  // valid region of the current buffer
      for (int64_t i = 0; i < n_convs; ++i) {
        const bool closes_group = (i + 1) % group == 0;
        const bool opens_group = i % group == 0;
        const float* in = (opens_group ? xbuf : tbuf).data();
        float* out = (closes_group ? xbuf : tbuf).data();
        const int64_t d = dilations[i], h = d * (k - 1) / 2;
        Conv1dParams p{};
        p.x = in + (s - base);
        p.w = ws[i].const_data_ptr<float>();
        p.w_co = c * k, p.w_ci = k, p.w_k = 1;
        p.w_packed = packs[i].w_packed, p.w_pairs = packs[i].w_pairs;
        p.bias = bs[i].const_data_ptr<float>();
        p.residual = closes_group ? xbuf.data() + (s + h - base) : nullptr;
        p.y = out + (s + h - base);
        p.batch = 1, p.c_in = c, p.c_out = c, p.k = k, p.dilation = d;
        p.t_in = e - s, p.x_row = row, p.t_out = e - s - 2 * h, p.pad = 0;
        p.y_row = row, p.y_off = 0, p.y_step = 1;
        p.tile_len = (p.t_out + block - 1) / block * block;  // one task: all input staged before writing
        p.slope = static_cast<float>(slope), p.gate_slope = 1.f, p.tanh_out = false;
        // The original zero-pads every conv's input at the sequence ends: outputs that fall
        // outside [0, T) must read as zeros to the next conv.
        conv(p, scratch.data());
        s += h, e -= h;
        const int64_t lo = std::max<int64_t>(s, 0), hi = std::min<int64_t>(e, t_len);
        for (int64_t ch = 0; ch < c; ++ch) {
          float* r = out + ch * row;
          for (int64_t t = s; t < lo; ++t) r[t - base] = 0.f;
          for (int64_t t = std::max(hi, s); t < e; ++t) r[t - base] = 0.f;
        }
      }
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* r = xbuf.data() + ch * row + (t0 - base);
        float* dst = yp + (b * c + ch) * t_len + t0;
        const float* acc = accp ? accp + (b * c + ch) * t_len + t0 : nullptr;
        if (acc) {
          for (int64_t i = 0; i < len; ++i) dst[i] = acc[i] + fscale * r[i];
        } else {
          for (int64_t i = 0; i < len; ++i) dst[i] = fscale * r[i];
        }
      }
    }
  });
  return y.to(x.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) { m.impl("resblock", &resblock_cpu); }

}  // namespace vocoder_ext::cpu
