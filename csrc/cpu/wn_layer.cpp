// CPU kernels of vocoder_ext::wn_layer and its backward: one WaveGlow WN layer per time tile.
//
// Eager PyTorch makes nine passes over [B, 2C, T] tensors per layer (conv, + cond, tanh, sigmoid, *,
// 1x1 conv, split, + residual, + skip), most of them memory-bound. Here each task takes one (batch
// item, time tile): the dilated conv writes the tile's pre-activation a = conv(audio) + bias + cond
// into a per-thread buffer (cond added in the conv's epilogue), the gate turns it into acts in the
// same cache-resident buffer, and the 1x1 res/skip conv reads acts from there, adding the residual
// and the skip sum in its epilogue straight into the outputs. Only the inputs are read and the two
// outputs written. Every conv is the tiled kernel of conv1d_kernel.h, weights packed once per call.
//
// For training the forward also writes a (keep_preact): the backward then recomputes only the gate
// from it, not the dilated conv (which would add ~40% to the backward's FLOPs). Per tile it forms
// grad_acts = rs_w^T [grad_audio; grad_skip] and grad_a, the conditioning's gradient; then the
// transposed conv over grad_a gives the audio's gradient and GEMMs the weights'.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../checks.h"

#include <algorithm>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

#include "conv1d_kernel.h"
#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

// Time steps per task: a pre-activation tile (2C rows) and the gate's output (C rows) next to the
// conv's staged input stay within the L2 (1-2 MiB) at C = 256; a multiple of every ISA's block.
constexpr int64_t kTile = 128;

// fp16/bf16 are computed in fp32 (rounded once at the end; bf16 with bf16 products where bf16_compute says so);
// fp32/fp64 in their own dtype.
at::Tensor prepared(const at::Tensor& t, at::ScalarType ct) { return t.to(ct).contiguous(); }

// cond is read in place when its time steps are contiguous (the model passes slices of one tensor).
at::Tensor prepared_cond(const at::Tensor& cond, at::ScalarType ct) {
  return cond.scalar_type() == ct && cond.stride(2) == 1 && cond.stride(1) >= cond.size(2) ? cond
                                                                                          : prepared(cond, ct);
}

// The kernel's weight layout; pairs: the bf16 kernel's (bf16 pairs of input channels, stored in S = float words).
template <class S>
std::vector<S> pack(const S* w, int64_t w_co, int64_t w_ci, int64_t w_k, int64_t c_out, int64_t c_in, int64_t k,
                    bool pairs = false) {
  const int64_t blocks = (c_out + kConvMO - 1) / kConvMO;
  const int64_t per_block = (pairs ? (c_in + 1) / 2 : c_in) * k * kConvMO;
  std::vector<S> packed(static_cast<size_t>(blocks * per_block));
  Conv1dParamsT<S> q{};
  q.w = w, q.w_co = w_co, q.w_ci = w_ci, q.w_k = w_k, q.c_in = c_in, q.c_out = c_out, q.k = k;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) {
      if constexpr (std::is_same_v<S, float>) {
        if (pairs) {
          gather_block_pairs(q, cb * kConvMO, reinterpret_cast<uint32_t*>(packed.data()) + cb * per_block);
          continue;
        }
      }
      gather_block(q, cb * kConvMO, packed.data() + cb * per_block);
    }
  });
  return packed;
}

// A conv over one time tile of a [C_in, T] row block (the task-th tile of length kTile), the output
// written to a tile buffer; or, with `whole` set, a 1x1 conv over a whole tile buffer. pairs: `packed` is
// the bf16 kernel's layout.
template <class S>
Conv1dParamsT<S> tile_conv(const S* x, int64_t c_in, int64_t t_in, int64_t x_row, const S* packed, int64_t c_out,
                           int64_t k, int64_t dilation, S* y, int64_t y_row, int64_t y_off, bool pairs = false) {
  Conv1dParamsT<S> p{};
  p.x = x, p.w = packed, p.w_packed = packed;  // w is read only when w_packed is null
  if (pairs) p.w_packed = nullptr, p.w_pairs = reinterpret_cast<const uint32_t*>(packed);
  p.y = y;
  p.batch = 1, p.c_in = c_in, p.c_out = c_out, p.k = k, p.dilation = dilation;
  p.t_in = t_in, p.x_row = x_row, p.t_out = t_in, p.pad = dilation * (k - 1) / 2;
  p.y_row = y_row, p.y_off = y_off, p.y_step = 1;
  p.slope = S(1), p.gate_slope = S(1), p.tanh_out = false;
  return p;
}

// The per-thread buffers of one task: the staged conv input and packed taps, a (2C rows; none when a
// lives in the kept pre-activation), acts (C).
template <class S>
struct TileBuffers {
  TileBuffers(int64_t c, int64_t k, int64_t dilation, int64_t block, bool need_a)
      : row((kTile + block - 1) / block * block),
        scratch(static_cast<size_t>(2 * c * (act_row_len(row, block, k, dilation) + k * kConvMO))),
        a(static_cast<size_t>(need_a ? 2 * c * row : 0)),
        acts(static_cast<size_t>(c * row)) {}
  int64_t row;
  std::vector<S> scratch, a, acts;
};

using Outputs = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

template <class S>
Outputs forward(const at::Tensor& audio, const at::Tensor* skip, const at::Tensor& cond, const at::Tensor& in_w,
                const at::Tensor& in_b, const at::Tensor& rs_w, const at::Tensor& rs_b, int64_t dilation, bool last,
                bool keep_preact, bool bf16) {
  const int64_t batch = audio.size(0), c = audio.size(1), t_len = audio.size(2), k = in_w.size(2);
  const S* ap = audio.const_data_ptr<S>();
  const S* sp = skip ? skip->const_data_ptr<S>() : nullptr;
  const S* cp = cond.const_data_ptr<S>();  // any layout with unit time stride: a slice of every layer's cond
  const int64_t cond_b = cond.stride(0), cond_c = cond.stride(1);
  const S* rbp = rs_b.const_data_ptr<S>();
  const std::vector<S> in_packed = pack(in_w.const_data_ptr<S>(), c * k, k, 1, 2 * c, c, k, bf16);
  // The res rows [0, C) and the skip rows [C, 2C) (all C rows on the last layer) write different tensors.
  const S* rw = rs_w.const_data_ptr<S>();
  const std::vector<S> res_packed = last ? std::vector<S>() : pack(rw, c, 1, 1, c, c, 1, bf16);
  const std::vector<S> skip_packed = pack(rw + (last ? 0 : c * c), c, 1, 1, c, c, 1, bf16);
  at::Tensor audio_out = last ? audio.clone() : at::empty_like(audio);
  at::Tensor skip_out = at::empty_like(audio);
  at::Tensor preact = at::empty(keep_preact ? at::IntArrayRef({batch, 2 * c, t_len}) : at::IntArrayRef({0}),
                                audio.options());
  S* pre = keep_preact ? preact.mutable_data_ptr<S>() : nullptr;
  S* aop = audio_out.mutable_data_ptr<S>();
  S* sop = skip_out.mutable_data_ptr<S>();
  const int64_t tiles = (t_len + kTile - 1) / kTile;
  const SerialConv1d kernels(bf16);
  const int64_t block = kernels.block_of<S>();

  at::parallel_for(0, batch * tiles, 1, [&](int64_t begin, int64_t end) {
    TileBuffers<S> buf(c, k, dilation, block, pre == nullptr);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, tile = task % tiles, t0 = tile * kTile, len = std::min(kTile, t_len - t0);
      // a = conv(audio) + in_bias + cond, for this tile: into the buffer, or the kept pre-activation
      S* a = pre ? pre + b * 2 * c * t_len + t0 : buf.a.data();
      const int64_t a_row = pre ? t_len : buf.row;
      Conv1dParamsT<S> in = tile_conv<S>(ap + b * c * t_len, c, t_len, t_len, in_packed.data(), 2 * c, k, dilation,
                                         a, a_row, -t0, bf16);
      in.bias = in_b.const_data_ptr<S>();
      in.residual = cp + b * cond_b, in.res_row = cond_c, in.res_off = 0;
      in.tile_len = kTile;
      kernels(in, buf.scratch.data(), tile, tile + 1);
      GateParamsT<S> g{};
      g.a = a, g.a_row = a_row, g.acts = buf.acts.data(), g.acts_row = buf.row, g.c = c, g.len = len;
      kernels.gate(g);
      // rs = conv1x1(acts) + rs_bias: audio_out = audio + rs[:C], skip_out = skip + rs[C:]
      for (int half = last ? 1 : 0; half < 2; ++half) {
        const bool is_skip = half == 1;
        S* y = (is_skip ? sop : aop) + b * c * t_len;
        Conv1dParamsT<S> rs = tile_conv<S>(buf.acts.data(), c, len, buf.row,
                                           (is_skip ? skip_packed : res_packed).data(), c, 1, 1, y, t_len, t0, bf16);
        rs.bias = rbp + (is_skip && !last ? c : 0);
        rs.residual = is_skip ? (sp ? sp + b * c * t_len : nullptr) : ap + b * c * t_len;
        rs.tile_len = buf.row;
        kernels(rs, buf.scratch.data());
      }
    }
  });
  return {audio_out, skip_out, preact};
}

Outputs wn_layer_cpu(const at::Tensor& audio, const std::optional<at::Tensor>& skip, const at::Tensor& cond,
                     const at::Tensor& in_weight, const at::Tensor& in_bias, const at::Tensor& rs_weight,
                     const at::Tensor& rs_bias, int64_t dilation, bool last, bool keep_preact) {
  checks::check_wn_layer(c10::DeviceType::CPU, audio, in_weight, rs_weight, dilation, last);
  checks::check_wn_like(c10::DeviceType::CPU, "cond", cond, audio, {audio.size(0), 2 * audio.size(1), audio.size(2)});
  checks::check_wn_like(c10::DeviceType::CPU, "in_bias", in_bias, audio, {2 * audio.size(1)});
  checks::check_wn_like(c10::DeviceType::CPU, "rs_bias", rs_bias, audio, {rs_weight.size(0)});
  if (skip) checks::check_wn_like(c10::DeviceType::CPU, "skip", *skip, audio, audio.sizes());
  const at::ScalarType dt = audio.scalar_type(), ct = dt == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor a = prepared(audio, ct), cd = prepared_cond(cond, ct), iw = prepared(in_weight, ct),
                   ib = prepared(in_bias, ct), rw = prepared(rs_weight, ct), rb = prepared(rs_bias, ct);
  const at::Tensor s = skip ? prepared(*skip, ct) : at::Tensor();
  const at::Tensor* sk = skip ? &s : nullptr;
  // bf16 products (fp32 sums, gate and epilogues) where bf16_compute says so; the backward stays fp32.
  auto [audio_out, skip_out, preact] =
      ct == at::kDouble ? forward<double>(a, sk, cd, iw, ib, rw, rb, dilation, last, keep_preact, false)
                        : forward<float>(a, sk, cd, iw, ib, rw, rb, dilation, last, keep_preact, bf16_compute(audio));
  return {audio_out.to(dt), skip_out.to(dt), preact.to(dt)};
}

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

template <class S>
Grads backward(const at::Tensor& grad_audio, const at::Tensor& grad_skip, const at::Tensor& audio,
               const at::Tensor& preact, const at::Tensor& in_w, const at::Tensor& rs_w, int64_t dilation, bool last) {
  const int64_t batch = audio.size(0), c = audio.size(1), t_len = audio.size(2), k = in_w.size(2);
  const int64_t pad = dilation * (k - 1) / 2;
  const S* pre = preact.const_data_ptr<S>();
  const S* gap = grad_audio.const_data_ptr<S>();
  const S* gsp = grad_skip.const_data_ptr<S>();
  // grad_acts = rs_w^T [grad_audio; grad_skip]: the 1x1 conv with rs_w transposed, one half per tensor.
  const S* rw = rs_w.const_data_ptr<S>();
  const std::vector<S> res_t = last ? std::vector<S>() : pack(rw, 1, c, 1, c, c, 1);
  const std::vector<S> skip_t = pack(rw + (last ? 0 : c * c), 1, c, 1, c, c, 1);
  at::Tensor grad_a = at::empty({batch, 2 * c, t_len}, audio.options());  // = grad_cond
  at::Tensor acts = at::empty_like(audio);
  S* gp = grad_a.mutable_data_ptr<S>();
  S* actp = acts.mutable_data_ptr<S>();
  const int64_t tiles = (t_len + kTile - 1) / kTile;
  const SerialConv1d kernels;
  const int64_t block = kernels.block_of<S>();

  at::parallel_for(0, batch * tiles, 1, [&](int64_t begin, int64_t end) {
    TileBuffers<S> buf(c, 1, 1, block, false);  // a is the kept preact; buf.acts holds grad_acts
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, tile = task % tiles, t0 = tile * kTile, len = std::min(kTile, t_len - t0);
      for (int half = last ? 1 : 0; half < 2; ++half) {
        const bool is_skip = half == 1;
        Conv1dParamsT<S> g = tile_conv<S>((is_skip ? gsp : gap) + b * c * t_len, c, t_len, t_len,
                                          (is_skip ? skip_t : res_t).data(), c, 1, 1, buf.acts.data(), buf.row, -t0);
        if (is_skip && !last) g.residual = buf.acts.data();  // accumulate onto the res half, in place
        g.tile_len = kTile;
        kernels(g, buf.scratch.data(), tile, tile + 1);
      }
      GateParamsT<S> gate{};
      gate.a = pre + b * 2 * c * t_len + t0, gate.a_row = t_len;
      gate.grad_acts = buf.acts.data(), gate.grad_acts_row = buf.row;
      gate.acts = actp + b * c * t_len + t0, gate.acts_row = t_len;
      gate.grad_a = gp + b * 2 * c * t_len + t0, gate.grad_a_row = t_len;
      gate.c = c, gate.len = len;
      kernels.gate(gate);
    }
  });

  // d audio = grad_audio + the transposed conv of grad_a: the same conv with transposed, flipped taps.
  at::Tensor grad_audio_in = at::empty_like(audio);
  Conv1dParamsT<S> p{};
  p.x = gp;
  p.w = in_w.const_data_ptr<S>() + (k - 1), p.w_co = k, p.w_ci = c * k, p.w_k = -1;
  p.residual = gap;
  p.y = grad_audio_in.mutable_data_ptr<S>();
  p.batch = batch, p.c_in = 2 * c, p.c_out = c, p.k = k, p.dilation = dilation;
  p.t_in = p.t_out = p.x_row = p.y_row = t_len, p.pad = pad, p.y_step = 1;
  p.slope = S(1), p.gate_slope = S(1);
  run_conv1d(p);

  // Weight gradients as one GEMM over time per batch item: grad_in_w[o, (ci, j)] = sum_t grad_a[o, t] *
  // audio[ci, t + j*d - pad], against the audio's K shifted copies stacked as [C*K, T] rows (one
  // contiguous operand: MKL ran the K strided products ~2x slower).
  const at::Tensor padded = at::constant_pad_nd(audio, {pad, pad});
  const at::Tensor shifted = padded.unfold(2, t_len, dilation).contiguous();  // [B, C, K, T]
  at::Tensor grad_in_w = at::zeros({2 * c, c * k}, audio.options());
  at::Tensor grad_rs_w = at::zeros({last ? c : 2 * c, c}, audio.options());
  for (int64_t b = 0; b < batch; ++b) {
    grad_in_w.addmm_(grad_a[b], shifted[b].view({c * k, t_len}).t());
    const at::Tensor acts_t = acts[b].t();
    if (last) {
      grad_rs_w.addmm_(grad_skip[b], acts_t);
    } else {
      grad_rs_w.narrow(0, 0, c).addmm_(grad_audio[b], acts_t);
      grad_rs_w.narrow(0, c, c).addmm_(grad_skip[b], acts_t);
    }
  }
  const at::Tensor grad_rs_b = last ? grad_skip.sum(at::IntArrayRef{0, 2}) : at::cat({grad_audio.sum(at::IntArrayRef{0, 2}), grad_skip.sum(at::IntArrayRef{0, 2})});
  return {grad_audio_in, grad_a, grad_in_w.view({2 * c, c, k}), grad_a.sum(at::IntArrayRef{0, 2}), grad_rs_w.unsqueeze(-1),
          grad_rs_b};
}

Grads wn_layer_backward_cpu(const at::Tensor& grad_audio, const at::Tensor& grad_skip, const at::Tensor& audio,
                            const at::Tensor& preact, const at::Tensor& in_weight, const at::Tensor& rs_weight,
                            int64_t dilation, bool last) {
  checks::check_wn_layer(c10::DeviceType::CPU, audio, in_weight, rs_weight, dilation, last);
  TORCH_CHECK(preact.numel() > 0, "wn_layer_backward: preact is empty: the forward must run with keep_preact=True "
              "(vocoder_ext.ops.wn_layer sets it whenever a gradient is needed)");
  checks::check_wn_like(c10::DeviceType::CPU, "preact", preact, audio, {audio.size(0), 2 * audio.size(1), audio.size(2)});
  checks::check_wn_like(c10::DeviceType::CPU, "grad_audio", grad_audio.to(audio.scalar_type()), audio, audio.sizes());
  checks::check_wn_like(c10::DeviceType::CPU, "grad_skip", grad_skip.to(audio.scalar_type()), audio, audio.sizes());
  const at::ScalarType dt = audio.scalar_type(), ct = dt == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor ga = prepared(grad_audio, ct), gs = prepared(grad_skip, ct), a = prepared(audio, ct),
                   pa = prepared(preact, ct), iw = prepared(in_weight, ct), rw = prepared(rs_weight, ct);
  Grads g = ct == at::kDouble ? backward<double>(ga, gs, a, pa, iw, rw, dilation, last)
                              : backward<float>(ga, gs, a, pa, iw, rw, dilation, last);
  return {std::get<0>(g).to(dt), std::get<1>(g).to(dt), std::get<2>(g).to(dt), std::get<3>(g).to(dt),
          std::get<4>(g).to(dt), std::get<5>(g).to(dt)};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("wn_layer", &wn_layer_cpu);
  m.impl("wn_layer_backward", &wn_layer_backward_cpu);
}

}  // namespace vocoder_ext::cpu
