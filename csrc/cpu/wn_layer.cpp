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
// The backward recomputes a and the gate per tile (nothing of the forward is stored but its inputs),
// writes grad_a, which is the conditioning's gradient, then runs the transposed conv over grad_a for
// the audio's gradient and GEMMs for the weights'.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>
#include <vector>

#include "conv1d_kernel.h"
#include "conv1d_runner.h"

namespace vocoder_ext::cpu {
namespace {

// Time steps per task: a pre-activation tile (2C rows) and the gate's output (C rows) next to the
// conv's staged input stay within the L2 (1-2 MiB) at C = 256; a multiple of every ISA's block.
constexpr int64_t kTile = 128;

void check_inputs(const at::Tensor& audio, const at::Tensor& cond, const at::Tensor& in_w, const at::Tensor& in_b,
                  const at::Tensor& rs_w, const at::Tensor& rs_b, int64_t dilation, bool last) {
  TORCH_CHECK(audio.dim() == 3 && audio.size(2) >= 1, "wn_layer: audio must be [B, C, T] with T >= 1, got shape ",
              audio.sizes());
  const int64_t b = audio.size(0), c = audio.size(1), t = audio.size(2);
  TORCH_CHECK(in_w.dim() == 3 && in_w.size(0) == 2 * c && in_w.size(1) == c && in_w.size(2) % 2 == 1,
              "wn_layer: in_weight must be [", 2 * c, ", ", c, ", K] with K odd, got shape ", in_w.sizes());
  TORCH_CHECK(in_b.sizes() == at::IntArrayRef({2 * c}), "wn_layer: in_bias must be [", 2 * c, "], got shape ",
              in_b.sizes());
  TORCH_CHECK(cond.sizes() == at::IntArrayRef({b, 2 * c, t}), "wn_layer: cond must be [", b, ", ", 2 * c, ", ", t,
              "], got shape ", cond.sizes());
  const int64_t rows = last ? c : 2 * c;
  TORCH_CHECK(rs_w.sizes() == at::IntArrayRef({rows, c, 1}), "wn_layer: rs_weight must be [", rows, ", ", c,
              ", 1], got shape ", rs_w.sizes());
  TORCH_CHECK(rs_b.sizes() == at::IntArrayRef({rows}), "wn_layer: rs_bias must be [", rows, "], got shape ",
              rs_b.sizes());
  TORCH_CHECK(dilation >= 1, "wn_layer: dilation must be >= 1, got ", dilation);
  TORCH_CHECK(at::isFloatingType(audio.scalar_type()), "wn_layer: expected floating-point tensors, got ",
              audio.scalar_type());
  for (const at::Tensor* x : {&audio, &cond, &in_w, &in_b, &rs_w, &rs_b}) {
    TORCH_CHECK(x->device().is_cpu(), "wn_layer (CPU kernel): got a tensor on ", x->device());
    TORCH_CHECK(x->scalar_type() == audio.scalar_type(), "wn_layer: every tensor must have audio's dtype ",
                audio.scalar_type(), ", got ", x->scalar_type());
  }
}

// fp16/bf16 are computed in fp32 (rounded once at the end); fp32/fp64 in their own dtype.
at::Tensor prepared(const at::Tensor& t, at::ScalarType ct) { return t.to(ct).contiguous(); }

// cond is read in place when its time steps are contiguous (the model passes slices of one tensor).
at::Tensor prepared_cond(const at::Tensor& cond, at::ScalarType ct) {
  return cond.scalar_type() == ct && cond.stride(2) == 1 && cond.stride(1) >= cond.size(2) ? cond
                                                                                          : prepared(cond, ct);
}

template <class S>
std::vector<S> pack(const S* w, int64_t w_co, int64_t w_ci, int64_t w_k, int64_t c_out, int64_t c_in, int64_t k) {
  const int64_t blocks = (c_out + kConvMO - 1) / kConvMO, per_block = c_in * k * kConvMO;
  std::vector<S> packed(static_cast<size_t>(blocks * per_block));
  Conv1dParamsT<S> q{};
  q.w = w, q.w_co = w_co, q.w_ci = w_ci, q.w_k = w_k, q.c_in = c_in, q.c_out = c_out, q.k = k;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t cb = begin; cb < end; ++cb) gather_block(q, cb * kConvMO, packed.data() + cb * per_block);
  });
  return packed;
}

// A conv over one time tile of a [C_in, T] row block (the task-th tile of length kTile), the output
// written to a tile buffer; or, with `whole` set, a 1x1 conv over a whole tile buffer.
template <class S>
Conv1dParamsT<S> tile_conv(const S* x, int64_t c_in, int64_t t_in, int64_t x_row, const S* packed, int64_t c_out,
                           int64_t k, int64_t dilation, S* y, int64_t y_row, int64_t y_off) {
  Conv1dParamsT<S> p{};
  p.x = x, p.w = packed, p.w_packed = packed;  // w is read only when w_packed is null
  p.y = y;
  p.batch = 1, p.c_in = c_in, p.c_out = c_out, p.k = k, p.dilation = dilation;
  p.t_in = t_in, p.x_row = x_row, p.t_out = t_in, p.pad = dilation * (k - 1) / 2;
  p.y_row = y_row, p.y_off = y_off, p.y_step = 1;
  p.slope = S(1), p.gate_slope = S(1), p.tanh_out = false;
  return p;
}

// The per-thread buffers of one task: the staged conv input and packed taps, a (2C rows), acts (C).
template <class S>
struct TileBuffers {
  TileBuffers(int64_t c, int64_t k, int64_t dilation, int64_t block)
      : row((kTile + block - 1) / block * block),
        scratch(static_cast<size_t>(2 * c * (act_row_len(row, block, k, dilation) + k * kConvMO))),
        a(static_cast<size_t>(2 * c * row)),
        acts(static_cast<size_t>(c * row)) {}
  int64_t row;
  std::vector<S> scratch, a, acts;
};

template <class S>
std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& audio, const at::Tensor* skip, const at::Tensor& cond,
                                           const at::Tensor& in_w, const at::Tensor& in_b, const at::Tensor& rs_w,
                                           const at::Tensor& rs_b, int64_t dilation, bool last) {
  const int64_t batch = audio.size(0), c = audio.size(1), t_len = audio.size(2), k = in_w.size(2);
  const S* ap = audio.const_data_ptr<S>();
  const S* sp = skip ? skip->const_data_ptr<S>() : nullptr;
  const S* cp = cond.const_data_ptr<S>();  // any layout with unit time stride: a slice of every layer's cond
  const int64_t cond_b = cond.stride(0), cond_c = cond.stride(1);
  const S* rbp = rs_b.const_data_ptr<S>();
  const std::vector<S> in_packed = pack(in_w.const_data_ptr<S>(), c * k, k, 1, 2 * c, c, k);
  // The res rows [0, C) and the skip rows [C, 2C) (all C rows on the last layer) write different tensors.
  const S* rw = rs_w.const_data_ptr<S>();
  const std::vector<S> res_packed = last ? std::vector<S>() : pack(rw, c, 1, 1, c, c, 1);
  const std::vector<S> skip_packed = pack(rw + (last ? 0 : c * c), c, 1, 1, c, c, 1);
  at::Tensor audio_out = last ? audio.clone() : at::empty_like(audio);
  at::Tensor skip_out = at::empty_like(audio);
  S* aop = audio_out.mutable_data_ptr<S>();
  S* sop = skip_out.mutable_data_ptr<S>();
  const int64_t tiles = (t_len + kTile - 1) / kTile;
  const SerialConv1d kernels;
  const int64_t block = kernels.block_of<S>();

  at::parallel_for(0, batch * tiles, 1, [&](int64_t begin, int64_t end) {
    TileBuffers<S> buf(c, k, dilation, block);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, tile = task % tiles, t0 = tile * kTile, len = std::min(kTile, t_len - t0);
      // a = conv(audio) + in_bias + cond, for this tile
      Conv1dParamsT<S> in = tile_conv<S>(ap + b * c * t_len, c, t_len, t_len, in_packed.data(), 2 * c, k, dilation,
                                         buf.a.data(), buf.row, -t0);
      in.bias = in_b.const_data_ptr<S>();
      in.residual = cp + b * cond_b, in.res_row = cond_c, in.res_off = 0;
      in.tile_len = kTile;
      kernels(in, buf.scratch.data(), tile, tile + 1);
      GateParamsT<S> g{};
      g.a = buf.a.data(), g.a_row = buf.row, g.acts = buf.acts.data(), g.acts_row = buf.row, g.c = c, g.len = len;
      kernels.gate(g);
      // rs = conv1x1(acts) + rs_bias: audio_out = audio + rs[:C], skip_out = skip + rs[C:]
      for (int half = last ? 1 : 0; half < 2; ++half) {
        const bool is_skip = half == 1;
        S* y = (is_skip ? sop : aop) + b * c * t_len;
        Conv1dParamsT<S> rs = tile_conv<S>(buf.acts.data(), c, len, buf.row,
                                           (is_skip ? skip_packed : res_packed).data(), c, 1, 1, y, t_len, t0);
        rs.bias = rbp + (is_skip && !last ? c : 0);
        rs.residual = is_skip ? (sp ? sp + b * c * t_len : nullptr) : ap + b * c * t_len;
        rs.tile_len = buf.row;
        kernels(rs, buf.scratch.data());
      }
    }
  });
  return {audio_out, skip_out};
}

std::tuple<at::Tensor, at::Tensor> wn_layer_cpu(const at::Tensor& audio, const std::optional<at::Tensor>& skip,
                                                const at::Tensor& cond, const at::Tensor& in_weight,
                                                const at::Tensor& in_bias, const at::Tensor& rs_weight,
                                                const at::Tensor& rs_bias, int64_t dilation, bool last) {
  check_inputs(audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last);
  if (skip) {
    TORCH_CHECK(skip->sizes() == audio.sizes() && skip->scalar_type() == audio.scalar_type() &&
                    skip->device().is_cpu(),
                "wn_layer: skip must be a CPU ", audio.scalar_type(), " tensor shaped like audio ", audio.sizes(),
                ", got ", skip->scalar_type(), " ", skip->sizes());
  }
  const at::ScalarType dt = audio.scalar_type(), ct = dt == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor a = prepared(audio, ct), cd = prepared_cond(cond, ct), iw = prepared(in_weight, ct),
                   ib = prepared(in_bias, ct), rw = prepared(rs_weight, ct), rb = prepared(rs_bias, ct);
  const at::Tensor s = skip ? prepared(*skip, ct) : at::Tensor();
  auto [audio_out, skip_out] = ct == at::kDouble
                                   ? forward<double>(a, skip ? &s : nullptr, cd, iw, ib, rw, rb, dilation, last)
                                   : forward<float>(a, skip ? &s : nullptr, cd, iw, ib, rw, rb, dilation, last);
  return {audio_out.to(dt), skip_out.to(dt)};
}

using Grads = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

template <class S>
Grads backward(const at::Tensor& grad_audio, const at::Tensor& grad_skip, const at::Tensor& audio,
               const at::Tensor& cond, const at::Tensor& in_w, const at::Tensor& in_b, const at::Tensor& rs_w,
               int64_t dilation, bool last) {
  const int64_t batch = audio.size(0), c = audio.size(1), t_len = audio.size(2), k = in_w.size(2);
  const int64_t pad = dilation * (k - 1) / 2;
  const S* ap = audio.const_data_ptr<S>();
  const S* cp = cond.const_data_ptr<S>();
  const int64_t cond_b = cond.stride(0), cond_c = cond.stride(1);
  const S* gap = grad_audio.const_data_ptr<S>();
  const S* gsp = grad_skip.const_data_ptr<S>();
  const std::vector<S> in_packed = pack(in_w.const_data_ptr<S>(), c * k, k, 1, 2 * c, c, k);
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
    TileBuffers<S> buf(c, k, dilation, block);  // buf.acts holds grad_acts here
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, tile = task % tiles, t0 = tile * kTile, len = std::min(kTile, t_len - t0);
      Conv1dParamsT<S> in = tile_conv<S>(ap + b * c * t_len, c, t_len, t_len, in_packed.data(), 2 * c, k, dilation,
                                         buf.a.data(), buf.row, -t0);
      in.bias = in_b.const_data_ptr<S>();
      in.residual = cp + b * cond_b, in.res_row = cond_c, in.res_off = 0;
      in.tile_len = kTile;
      kernels(in, buf.scratch.data(), tile, tile + 1);
      for (int half = last ? 1 : 0; half < 2; ++half) {
        const bool is_skip = half == 1;
        Conv1dParamsT<S> g = tile_conv<S>((is_skip ? gsp : gap) + b * c * t_len, c, t_len, t_len,
                                          (is_skip ? skip_t : res_t).data(), c, 1, 1, buf.acts.data(), buf.row, -t0);
        if (is_skip && !last) g.residual = buf.acts.data();  // accumulate onto the res half, in place
        g.tile_len = kTile;
        kernels(g, buf.scratch.data(), tile, tile + 1);
      }
      GateParamsT<S> gate{};
      gate.a = buf.a.data(), gate.a_row = buf.row;
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

  // Weight gradients as GEMMs over time: grad_in_w[:, :, j] = sum_b grad_a_b audio_b(shifted by j*d - pad)^T.
  const at::Tensor padded = at::constant_pad_nd(audio, {pad, pad});
  at::Tensor grad_in_w = at::empty({k, 2 * c, c}, audio.options());
  for (int64_t j = 0; j < k; ++j)
    grad_in_w[j] = at::bmm(grad_a, padded.narrow(2, j * dilation, t_len).transpose(1, 2)).sum(0);
  const at::Tensor acts_t = acts.transpose(1, 2);
  at::Tensor grad_rs_w = at::bmm(grad_skip, acts_t).sum(0), grad_rs_b = grad_skip.sum({0, 2});
  if (!last) {
    grad_rs_w = at::cat({at::bmm(grad_audio, acts_t).sum(0), grad_rs_w});
    grad_rs_b = at::cat({grad_audio.sum({0, 2}), grad_rs_b});
  }
  return {grad_audio_in, grad_a, grad_in_w.permute({1, 2, 0}).contiguous(), grad_a.sum({0, 2}),
          grad_rs_w.unsqueeze(-1), grad_rs_b};
}

Grads wn_layer_backward_cpu(const at::Tensor& grad_audio, const at::Tensor& grad_skip, const at::Tensor& audio,
                            const at::Tensor& cond, const at::Tensor& in_weight, const at::Tensor& in_bias,
                            const at::Tensor& rs_weight, const at::Tensor& rs_bias, int64_t dilation, bool last) {
  check_inputs(audio, cond, in_weight, in_bias, rs_weight, rs_bias, dilation, last);
  for (const at::Tensor* g : {&grad_audio, &grad_skip})
    TORCH_CHECK(g->sizes() == audio.sizes() && g->device().is_cpu(), "wn_layer_backward: the output gradients must "
                "be CPU tensors shaped like audio ", audio.sizes(), ", got ", g->sizes(), " on ", g->device());
  const at::ScalarType ct = audio.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor ga = prepared(grad_audio, ct), gs = prepared(grad_skip, ct), a = prepared(audio, ct),
                   cd = prepared_cond(cond, ct), iw = prepared(in_weight, ct), ib = prepared(in_bias, ct),
                   rw = prepared(rs_weight, ct);
  Grads g = ct == at::kDouble ? backward<double>(ga, gs, a, cd, iw, ib, rw, dilation, last)
                              : backward<float>(ga, gs, a, cd, iw, ib, rw, dilation, last);
  const at::ScalarType dt = audio.scalar_type();  // every input's (checked)
  return {std::get<0>(g).to(dt), std::get<1>(g).to(dt), std::get<2>(g).to(dt), std::get<3>(g).to(dt),
          std::get<4>(g).to(dt), std::get<5>(g).to(dt)};
}

}  // namespace

TORCH_LIBRARY_IMPL(vocoder_ext, CPU, m) {
  m.impl("wn_layer", &wn_layer_cpu);
  m.impl("wn_layer_backward", &wn_layer_backward_cpu);
}

}  // namespace vocoder_ext::cpu
