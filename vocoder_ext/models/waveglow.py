"""WaveGlow: a drop-in for NVIDIA's (DeepLearningExamples Tacotron2/waveglow, and NVIDIA/waveglow).

Same constructor, same math, same state_dict keys (`upsample`, `WN.k.start`, `WN.k.in_layers.i`,
`WN.k.cond_layers.i`, `WN.k.res_skip_layers.i`, `WN.k.end`, `convinv.k.conv.weight`). Differences that
only remove failure modes: runs on any device; the inverse 1x1 convs are computed in fp32 from the current
weights on every call (never a stale cache); the few grouped audio channels, the coupling's exp and the
inverse convs stay in fp32 in an fp16/bf16 model (no NaN or inf); `infer` takes the noise `z` to make the
output reproducible. With `fused=True` the WN layers, couplings and 1x1 convs run through vocoder_ext.ops.
"""
import os

import torch
import torch.nn as nn

from .. import checkpoint, ops
from .layers import WNConv1d, remove_weight_norm
from .mel_input import check_mel

DEFAULT_WN_CONFIG = {"n_layers": 8, "n_channels": 256, "kernel_size": 3}
UPSAMPLE_KERNEL, HOP = 1024, 256  # the mel upsampling ConvTranspose1d: 256 audio samples per mel frame


class Invertible1x1Conv(nn.Module):
    """A c x c mixing of the grouped audio channels; `conv.weight` [c, c, 1], orthogonal at init."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv1d(c, c, kernel_size=1, bias=False)
        w = torch.linalg.qr(torch.randn(c, c))[0]
        if torch.det(w) < 0:
            w[:, 0] = -w[:, 0]  # a rotation: log|det W| starts at 0
        self.conv.weight.data = w.unsqueeze(-1).contiguous()

    def forward(self, z, reverse=False, fused=False):
        """(W z, log_det_W), or (W^-1 z, -log_det_W) with reverse=True; W^-1 and log|det W| in fp32."""
        if fused:
            return ops.invertible_conv1x1(z, self.conv.weight, reverse)
        return ops.invertible_conv1x1_ref(z, self.conv.weight, reverse)


class WN(nn.Module):
    """The WaveNet-like stack of one affine coupling: dilated convs, gated by tanh*sigmoid, conditioned
    on the mel, with residual and skip connections. Not causal; dilation doubles every layer."""

    def __init__(self, n_in_channels, n_mel_channels, n_layers, n_channels, kernel_size):
        super().__init__()
        if kernel_size % 2 != 1 or n_channels % 2 != 0:
            raise ValueError(f"WN: expected an odd kernel_size and an even n_channels, got {kernel_size} and "
                             f"{n_channels}")
        self.n_layers, self.n_channels = n_layers, n_channels
        self.start = WNConv1d(n_in_channels, n_channels, 1)
        self.in_layers = nn.ModuleList(
            WNConv1d(n_channels, 2 * n_channels, kernel_size, dilation=2 ** i, padding=2 ** i * (kernel_size - 1) // 2)
            for i in range(n_layers))
        self.cond_layers = nn.ModuleList(WNConv1d(n_mel_channels, 2 * n_channels, 1) for _ in range(n_layers))
        self.res_skip_layers = nn.ModuleList(
            WNConv1d(n_channels, 2 * n_channels if i < n_layers - 1 else n_channels, 1) for i in range(n_layers))
        self.end = nn.Conv1d(n_channels, 2 * n_in_channels, 1)
        self.end.weight.data.zero_()  # the coupling starts as the identity, as NVIDIA trains it
        self.end.bias.data.zero_()

    def conditioning(self, spect, fused=False):
        """Every layer's conditioning [B, 2C * n_layers, T] from the grouped mel, as one matmul: it
        depends only on the mel. As a batched GEMM (baddbmm) it runs ~12% faster on the CPU than
        n_layers 1x1 convs or one conv with all the rows (measured: 174 vs 199 ms at 256 channels, 2 s).
        Fused, it is our conv kernel with an identity prologue (slope 1), ~12% faster than the GEMM."""
        weight = torch.cat([c.weight for c in self.cond_layers])
        bias = torch.cat([c.bias for c in self.cond_layers])
        spect = spect.to(weight.dtype)
        if fused:
            return ops.lrelu_conv1d(spect, weight, bias, 1, 1.0)
        return torch.baddbmm(bias[None, :, None], weight[:, :, 0].expand(spect.shape[0], -1, -1), spect)

    def layer_conditionings(self, spect):
        """Each layer's conditioning in turn, on our conv kernel, computed just before its layer: the fused
        path's inference. One [B, 2C, T] at a time rather than all layers' at once avoids a fresh 45 MB
        buffer per flow (1 s of audio), whose page faults cost ~19 ms: measured 2.47 vs 2.62 s per second
        of audio at 256 channels, 2 threads. Training keeps the one batched product (its backward is one
        GEMM; per layer the step measured ~5% slower)."""
        spect = spect.to(self.start.bias.dtype)
        return (ops.lrelu_conv1d(spect, c.weight, c.bias, 1, 1.0) for c in self.cond_layers)

    def forward(self, audio, spect, fused=False):
        """audio [B, n_in, T] (the coupling's first half), spect [B, n_mel * n_group, T] -> [B, 2 n_in, T]."""
        audio = self.start(audio.to(self.start.bias.dtype))
        if fused and not torch.is_grad_enabled():
            conds = self.layer_conditionings(spect)
        else:
            # split, not a slice per layer: a slice's gradient is a zero-filled tensor the size of all
            # layers' conditioning, one per layer (in training that zero-filling took ~25% of the step)
            conds = self.conditioning(spect, fused).split(2 * self.n_channels, 1)
        skip = None
        for i, (in_layer, res_skip, cond_i) in enumerate(zip(self.in_layers, self.res_skip_layers, conds)):
            last = i == self.n_layers - 1
            if fused:
                audio, skip = ops.wn_layer(audio, skip, cond_i, in_layer.weight, in_layer.bias, res_skip.weight,
                                           res_skip.bias, in_layer.dilation, last)
                continue
            a = in_layer(audio) + cond_i
            acts = torch.tanh(a[:, :self.n_channels]) * torch.sigmoid(a[:, self.n_channels:])
            rs = res_skip(acts)
            if not last:
                audio = audio + rs[:, :self.n_channels]
                rs = rs[:, self.n_channels:]
            skip = rs if skip is None else skip + rs
        return self.end(skip)


class WaveGlow(nn.Module):
    """WaveGlow: mel [B, n_mel_channels, T] <-> audio [B, T * 256], NVIDIA's constructor and parameters."""

    def __init__(self, n_mel_channels=80, n_flows=12, n_group=8, n_early_every=4, n_early_size=2, WN_config=None,
                 fused=True):
        super().__init__()
        WN_config = dict(DEFAULT_WN_CONFIG if WN_config is None else WN_config)
        if n_group % 2 != 0 or n_early_size % 2 != 0:
            raise ValueError(f"WaveGlow: expected an even n_group and n_early_size, got {n_group} and {n_early_size}")
        self.config = {"n_mel_channels": n_mel_channels, "n_flows": n_flows, "n_group": n_group,
                       "n_early_every": n_early_every, "n_early_size": n_early_size, "WN_config": WN_config}
        self.n_mel_channels, self.n_flows, self.n_group = n_mel_channels, n_flows, n_group
        self.n_early_every, self.n_early_size, self.fused = n_early_every, n_early_size, fused
        self.hop_length = HOP
        self.upsample = nn.ConvTranspose1d(n_mel_channels, n_mel_channels, UPSAMPLE_KERNEL, stride=HOP)
        self.WN, self.convinv = nn.ModuleList(), nn.ModuleList()
        remaining = n_group
        for k in range(n_flows):
            if self._drops_early(k):
                remaining -= n_early_size
            if remaining < 2:
                raise ValueError(f"WaveGlow: n_flows={n_flows} with an early output of {n_early_size} channels "
                                 f"every {n_early_every} flows leaves fewer than 2 of n_group={n_group} channels")
            self.convinv.append(Invertible1x1Conv(remaining))
            self.WN.append(WN(remaining // 2, n_mel_channels * n_group, **WN_config))
        self.n_remaining_channels = remaining

    def _drops_early(self, k):
        return k > 0 and k % self.n_early_every == 0

    # ---- the mel, grouped -------------------------------------------------------------------------
    def _grouped_spect(self, mel, n_samples):
        """The upsampled mel cut to n_samples, grouped like the audio: [B, n_mel * n_group, n_samples / n_group]."""
        spect = self.upsample(mel)[:, :, :n_samples]
        b = spect.shape[0]
        spect = spect.unfold(2, self.n_group, self.n_group).permute(0, 2, 1, 3)
        # contiguous once here rather than in each of the n_flows WNs that read it
        return spect.reshape(b, spect.shape[1], -1).permute(0, 2, 1).contiguous()

    # ---- training direction -----------------------------------------------------------------------
    def forward(self, mel, audio=None):
        """(z, log_s_list, log_det_W_list) for mel [B, n_mel, T] and audio [B, samples], as NVIDIA's
        forward((mel, audio)) (which is accepted too); z [B, n_group, samples / n_group]."""
        if audio is None and isinstance(mel, (tuple, list)):
            mel, audio = mel
        mel = check_mel(mel, self.n_mel_channels, self.upsample.weight.dtype)
        if not isinstance(audio, torch.Tensor) or audio.dim() != 2 or audio.shape[0] != mel.shape[0]:
            raise ValueError(f"audio: expected a tensor [B={mel.shape[0]}, samples], got "
                             f"{tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__}")
        n_samples = audio.shape[1] - audio.shape[1] % self.n_group
        if n_samples == 0 or (mel.shape[2] - 1) * HOP + UPSAMPLE_KERNEL < n_samples:
            raise ValueError(f"audio: {audio.shape[1]} samples do not fit {mel.shape[2]} mel frames (at most "
                             f"{(mel.shape[2] - 1) * HOP + UPSAMPLE_KERNEL}, at least {self.n_group})")
        spect = self._grouped_spect(mel, n_samples)
        audio = audio[:, :n_samples].unfold(1, self.n_group, self.n_group).permute(0, 2, 1)
        early, log_s_list, log_det_w_list = [], [], []
        for k in range(self.n_flows):
            if self._drops_early(k):
                early.append(audio[:, :self.n_early_size])
                audio = audio[:, self.n_early_size:]
            audio, log_det_w = self.convinv[k](audio, fused=self.fused)
            log_det_w_list.append(log_det_w)
            n_half = audio.shape[1] // 2
            wn_out = self.WN[k](audio[:, :n_half], spect, fused=self.fused)
            coupling = ops.affine_coupling if self.fused else ops.affine_coupling_ref
            audio = torch.cat([audio[:, :n_half], coupling(audio[:, n_half:], wn_out)], 1)
            log_s_list.append(wn_out[:, n_half:])
        return torch.cat(early + [audio], 1), log_s_list, log_det_w_list

    # ---- inference --------------------------------------------------------------------------------
    def noise_shape(self, mel):
        """The shape of `z` that infer(mel) consumes: [B, n_group, frames * 256 / n_group]."""
        return (mel.shape[0], self.n_group, (mel.shape[2] * HOP) // self.n_group)

    def infer(self, mel, sigma=0.9, z=None):
        """mel [B, n_mel, T] -> audio [B, T * 256] in the model's dtype.

        z [B, n_group, T * 256 / n_group] is all the noise, in the order NVIDIA's infer_onnx reads it: the
        first n_remaining_channels channels start the flow, then n_early_size channels join at each early
        stage. Each is scaled by sigma, as NVIDIA's infer scales its draws (infer_onnx leaves the early
        ones unscaled). Without z the noise is drawn from the torch RNG on mel's device in NVIDIA's order,
        so a seeded run equals NVIDIA's infer. sigma=0 is deterministic."""
        mel = check_mel(mel, self.n_mel_channels, self.upsample.weight.dtype)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0:
            raise ValueError(f"sigma: expected a number >= 0, got {sigma!r}")
        shape = self.noise_shape(mel)
        z = self._check_z(z, shape, mel.device) if z is not None else self._draw_noise(shape, mel.device)
        spect = self._grouped_spect(mel, shape[2] * self.n_group)
        # The grouped audio is n_group channels: it stays fp32 in an fp16/bf16 model, at no cost.
        audio = sigma * z[:, :self.n_remaining_channels].float()
        early = z[:, self.n_remaining_channels:].float()
        coupling = ops.affine_coupling if self.fused else ops.affine_coupling_ref
        for k in reversed(range(self.n_flows)):
            n_half = audio.shape[1] // 2
            wn_out = self.WN[k](audio[:, :n_half], spect, fused=self.fused)
            audio = torch.cat([audio[:, :n_half], coupling(audio[:, n_half:], wn_out, True)], 1)
            audio, _ = self.convinv[k](audio, reverse=True, fused=self.fused)
            if self._drops_early(k):
                audio = torch.cat([sigma * early[:, :self.n_early_size], audio], 1)
                early = early[:, self.n_early_size:]
        return audio.permute(0, 2, 1).reshape(shape[0], -1).to(mel.dtype)

    def _check_z(self, z, shape, device):
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"z: expected a torch.Tensor of shape {shape}, got {type(z).__name__}")
        if tuple(z.shape) != shape:
            raise ValueError(f"z: expected shape {shape} ([B, n_group, frames * 256 / n_group] for this mel), "
                             f"got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise TypeError(f"z: expected a floating-point tensor, got dtype {z.dtype}")
        if z.device != device:
            raise ValueError(f"z: expected device {device} (the mel's), got {z.device}")
        return z

    def _draw_noise(self, shape, device):
        """z drawn in the order NVIDIA's infer draws it: the starting channels, then each early group."""
        b, _, t = shape
        draws = [torch.randn(b, self.n_remaining_channels, t, device=device)]
        draws += [torch.randn(b, self.n_early_size, t, device=device)
                  for k in reversed(range(self.n_flows)) if self._drops_early(k)]
        return torch.cat(draws, 1)

    # ---- weight norm and checkpoints --------------------------------------------------------------
    def remove_weight_norm(self):
        """Fold weight normalization into plain weights (what inference does); idempotent."""
        return remove_weight_norm(self)

    def remove_weightnorm(self):
        """NVIDIA's name for remove_weight_norm."""
        return self.remove_weight_norm()

    @classmethod
    def from_pretrained(cls, path, fused=True, map_location="cpu", config=None, strict=True):
        """Load NVIDIA's DLE checkpoints (`checkpoint_WaveGlow_*.pt`, `nvidia_waveglow256pyt_fp16.pt`), the
        NVIDIA/waveglow layouts and its pickled `waveglow_*` files (read without running their code), a bare
        state dict, or ours (`save_pretrained`). The config comes from the file or its tensor shapes;
        `config` overrides it (a contradiction with the shapes is an error)."""
        state_dict, config, _ = checkpoint.read_waveglow_checkpoint(path, config=config, map_location=map_location)
        model = cls(**config, fused=fused)
        if any(k.endswith("start.weight") for k in state_dict):
            model.remove_weight_norm()  # saved without weight norm
        model.load_state_dict(state_dict, strict=strict)  # fp32 parameters, as NVIDIA's loading gives: .half() after
        if isinstance(map_location, (str, torch.device)):
            model.to(map_location)
        return model

    def save_pretrained(self, path):
        """Write our checkpoint format (config embedded) atomically; a folder gets `waveglow.pt`."""
        if os.path.isdir(path):
            path = os.path.join(path, "waveglow.pt")
        checkpoint.save_waveglow(path, self.state_dict(), self.config)
        return path
