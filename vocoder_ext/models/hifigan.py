"""HiFi-GAN generator: a drop-in for the original (jik876/hifi-gan) and NVIDIA's DLE Generator.

Same math, same state_dict keys. With `fused=True` the residual stacks, the upsampling layers and
conv_post run through vocoder_ext.ops (fused kernels, or their eager references where none exists).
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import audio, ops
from ..checkpoint.hifigan import convert_generator_state_dict, read_generator, save_generator
from ..runtime.precision import compute_in_bf16
from .config import AUDIO_DEFAULTS, option, resolve_config
from .layers import WNConv1d, reflect_pad, remove_weight_norm
from .mel_input import check_mel

LRELU_SLOPE = 0.1
POST_LRELU_SLOPE = 0.01  # the original's last F.leaky_relu uses PyTorch's default slope


def get_padding(kernel_size, dilation=1):
    return (kernel_size * dilation - dilation) // 2


def _accumulate(x, accum, scale):
    if scale != 1.0:
        x = x * scale
    return x if accum is None else accum + x


def _fused_conv(x, conv, slope, residual=None, epilogue="none"):
    """ops.lrelu_conv1d through `conv`'s weights; a reflect-padded conv pads first (leaky-ReLU commutes
    with the padding) and keeps the middle, which no zero ever reaches."""
    if conv.padding_mode != "reflect":
        return ops.lrelu_conv1d(x, conv.weight, conv.bias, conv.dilation, slope, residual, epilogue)
    p = conv.padding
    y = ops.lrelu_conv1d(reflect_pad(x, p), conv.weight, conv.bias, conv.dilation, slope, epilogue=epilogue)
    y = y[..., p:p + x.shape[-1]]
    return y if residual is None else y + residual


def _fused_block(block, x, accum, scale):
    """accum + scale * block(x) on the fused ops: one resblock op, or conv by conv where it cannot
    (reflect padding); bias-free convs run with zero biases there."""
    weights, biases, dilations, group = block.conv_chain()
    convs = block.convs_in_order()
    if convs[0].padding_mode == "reflect":
        for i in range(0, len(convs), group):
            y = x
            for conv in convs[i:i + group - 1]:
                y = _fused_conv(y, conv, LRELU_SLOPE)
            x = _fused_conv(y, convs[i + group - 1], LRELU_SLOPE, residual=x)
        return _accumulate(x, accum, scale)
    biases = [b if b is not None else x.new_zeros(w.shape[0]) for w, b in zip(weights, biases)]
    return ops.resblock(x, weights, biases, dilations, group, LRELU_SLOPE, accum=accum, scale=scale)


class ResBlock1(nn.Module):
    """Pairs of (dilated conv, conv), each preceded by leaky-ReLU, with a residual around each pair."""

    def __init__(self, channels, kernel_size=3, dilation=(1, 3, 5), padding_mode="zeros", bias=True):
        super().__init__()
        self.convs1 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size, d),
                                             dilation=d, padding_mode=padding_mode, bias=bias) for d in dilation)
        self.convs2 = nn.ModuleList(WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size, 1),
                                             padding_mode=padding_mode, bias=bias) for _ in dilation)

    def forward(self, x, fused=False, accum=None, scale=1.0):
        """accum + scale * block(x); the fused path does it in one op (the MRF average's step)."""
        if fused:
            return _fused_block(self, x, accum, scale)
        for c1, c2 in zip(self.convs1, self.convs2):
            # One expression, as the original writes it: each temporary is freed as soon as it is used,
            # which keeps one [B, C, T] buffer fewer alive (measured ~5% of V1's eager time on 2 cores).
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE)) + x
        return _accumulate(x, accum, scale)

    def convs_in_order(self):
        return [c for pair in zip(self.convs1, self.convs2) for c in pair]

    def conv_chain(self):
        """(weights, biases, dilations, group) for ops.resblock: the pairs, in order."""
        convs = self.convs_in_order()
        return [c.weight for c in convs], [c.bias for c in convs], [c.dilation for c in convs], 2

    def remove_weight_norm(self):
        for c in [*self.convs1, *self.convs2]:
            c.remove_weight_norm()


class ResBlock2(nn.Module):
    """Dilated convs, each preceded by leaky-ReLU, each with a residual around it."""

    def __init__(self, channels, kernel_size=3, dilation=(1, 3), padding_mode="zeros", bias=True):
        super().__init__()
        self.convs = nn.ModuleList(WNConv1d(channels, channels, kernel_size, padding=get_padding(kernel_size, d),
                                            dilation=d, padding_mode=padding_mode, bias=bias) for d in dilation)

    def forward(self, x, fused=False, accum=None, scale=1.0):
        """accum + scale * block(x); the fused path does it in one op (the MRF average's step)."""
        if fused:
            return _fused_block(self, x, accum, scale)
        for c in self.convs:
            x = c(F.leaky_relu(x, LRELU_SLOPE)) + x
        return _accumulate(x, accum, scale)

    def convs_in_order(self):
        return list(self.convs)

    def conv_chain(self):
        """(weights, biases, dilations, group) for ops.resblock."""
        return [c.weight for c in self.convs], [c.bias for c in self.convs], [c.dilation for c in self.convs], 1

    def remove_weight_norm(self):
        for c in self.convs:
            c.remove_weight_norm()


class HiFiGAN(nn.Module):
    """The HiFi-GAN generator: mel [B, num_mels, T] -> audio [B, 1, T * prod(upsample_rates)] in [-1, 1].

    config: "v1" | "v2" | "v3", a dict or a JSON file with the original config keys, plus the options
        other toolkits' generators need (models/config.py OPTIONS: per-layer upsample_paddings and
        upsample_output_paddings, padding_mode "reflect", conv_pre/conv_post kernel sizes, bias-free convs).
    fused: route the residual stacks, upsampling and conv_post through vocoder_ext.ops.
    compute_dtype: None (exact in the parameters' dtype), or torch.bfloat16: an fp32 model's convs compute
        with bf16 products and fp32 sums (vocoder_ext/runtime/precision.py: the CPU kernels on AVX512_BF16,
        through PyTorch's process-wide switch, set for the duration of each forward).
    """

    def __init__(self, config="v1", fused=True, compute_dtype=None):
        super().__init__()
        if compute_dtype not in (None, torch.float32, torch.bfloat16):
            raise ValueError(f"compute_dtype: expected None, torch.float32 or torch.bfloat16, got {compute_dtype!r}")
        h = resolve_config(config)
        self.config, self.fused = h, fused
        self.compute_dtype = compute_dtype
        # Under autocast, conv_post and tanh in fp32 and the audio out in fp32 (train.hifigan --amp sets it;
        # off by default: the original returns autocast's dtype). bf16 audio carries a rounding-noise floor
        # ~50 dB under the signal that fills the quiet mel bins: rounding the demo model's fp32 output to bf16
        # raised its validation mel L1 from 0.54 to 0.81, which the mel loss would then train against.
        self.fp32_output = False
        self.features = None  # another toolkit's input-feature description (from_pretrained), else None
        self.num_kernels = len(h["resblock_kernel_sizes"])
        self.num_upsamples = len(h["upsample_rates"])
        self.hop_length = 1
        for u in h["upsample_rates"]:
            self.hop_length *= u
        uic = h["upsample_initial_channel"]
        mode = option(h, "padding_mode")
        k_pre, k_post = option(h, "conv_pre_kernel_size"), option(h, "conv_post_kernel_size")
        self.conv_pre = WNConv1d(h["num_mels"], uic, k_pre, padding=k_pre // 2, padding_mode=mode,
                                 bias=option(h, "conv_pre_bias"))
        self.ups = nn.ModuleList(
            WNConv1d(uic // 2 ** i, uic // 2 ** (i + 1), k, stride=u, padding=p, transposed=True, output_padding=op,
                     bias=option(h, "upsample_bias"))
            for i, (u, k, p, op) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"],
                                                  option(h, "upsample_paddings"), option(h, "upsample_output_paddings"))))
        resblock = ResBlock1 if h["resblock"] == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            resblock(uic // 2 ** (i + 1), k, d, padding_mode=mode, bias=option(h, "resblock_bias"))
            for i in range(self.num_upsamples)
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]))
        self.conv_post = WNConv1d(uic // 2 ** self.num_upsamples, 1, k_post, padding=k_post // 2, padding_mode=mode,
                                  bias=option(h, "conv_post_bias"))

    def forward(self, mel, inference_padding=False):
        """mel [B, num_mels, T] -> audio [B, 1, T * hop].

        inference_padding=True reproduces Coqui's and SpeechBrain's `inference()`: the mel is first
        replicate-padded by the toolkit's `inference_padding` frames (5) on each side and the audio is
        returned untrimmed, (T + 2 * pad) * hop samples, the content shifted by pad * hop. Off by default:
        the plain generator, as the original's forward (and NeMo's, ParallelWaveGAN's, Hugging Face's)."""
        with compute_in_bf16(self.compute_dtype == torch.bfloat16):
            return self._forward(mel, inference_padding)

    def _forward(self, mel, inference_padding):
        mel = check_mel(mel, self.config["num_mels"], self.conv_pre.weight.dtype)
        if inference_padding:
            mel = F.pad(mel, (self.inference_padding,) * 2, mode="replicate")
        # conv_pre on our kernel too when fused: its sums then run in an order that does not depend on the
        # length, which exact streaming needs (oneDNN's conv picks its blocking by length). Not under autocast:
        # there the fp16 weight gradient of this one layer measured ~4x eager autocast's error (a 80-channel,
        # 7-frame input), while the layer is ~0.1% of the FLOPs.
        on_op = self.fused and self.conv_pre.kernel_size % 2 and not torch.is_autocast_enabled(mel.device.type)
        x = _fused_conv(mel, self.conv_pre, 1.0) if on_op else self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            if self.fused:
                x = ops.lrelu_conv_transpose1d(x, up.weight, up.bias, up.stride, up.padding, LRELU_SLOPE,
                                               up.output_padding)
            else:
                x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            if self.fused:  # each block adds its share of the MRF average as it goes
                xs = None
                for block in blocks:
                    xs = block(x, True, accum=xs, scale=1.0 / self.num_kernels)
                x = xs
            else:
                xs = None
                for block in blocks:  # no name holds a block's output past the sum (see ResBlock1.forward)
                    xs = block(x) if xs is None else xs + block(x)
                x = xs / self.num_kernels
        if self.fp32_output and torch.is_autocast_enabled(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self._post(x.float())
        return self._post(x)

    def _post(self, x):
        if self.fused:
            return _fused_conv(x, self.conv_post, POST_LRELU_SLOPE, epilogue="tanh")
        return torch.tanh(self.conv_post(F.leaky_relu(x, POST_LRELU_SLOPE)))

    @property
    def sampling_rate(self):
        """The sample rate of the audio (and of the wavs `mel_spectrogram` takes): the toolkit's features',
        else the config's `sampling_rate` (HiFi-GAN's 22050 when the config has none)."""
        rate = (self.features or {}).get("sample_rate")
        return int(rate if rate is not None else self.config.get("sampling_rate", AUDIO_DEFAULTS["sampling_rate"]))

    def mel_spectrogram(self, wav, sample_rate=None):
        """wav [T] or [B, T] at `sampling_rate` -> the features this model was trained on, [B, num_mels, frames].

        Another toolkit's model (from_pretrained) gets that toolkit's front end exactly (vocoder_ext.features:
        framing, window, filterbank, log base and floor, normalisation); the original's gets HiFi-GAN's
        (vocoder_ext.audio.mel_spectrogram) with the config's audio settings. `sample_rate`, when given, is
        the wav's: an error unless it is the model's (nothing is resampled)."""
        if sample_rate is not None and int(sample_rate) != self.sampling_rate:
            raise ValueError(f"wav: sample rate {sample_rate} Hz, but this model's features are computed at "
                             f"{self.sampling_rate} Hz (no resampling is done)")
        if self.features is not None:
            from .. import features
            return features.mel_spectrogram(wav, self.features)
        h = {**AUDIO_DEFAULTS, **self.config}
        mel = audio.mel_spectrogram(wav, n_fft=h["n_fft"], num_mels=h["num_mels"], sampling_rate=h["sampling_rate"],
                                    hop_size=h["hop_size"], win_size=h["win_size"], fmin=h["fmin"], fmax=h["fmax"])
        return mel.unsqueeze(0) if mel.dim() == 2 else mel

    @property
    def inference_padding(self):
        """Mel frames the toolkit's `inference()` replicate-pads on each side (Coqui, SpeechBrain: 5)."""
        pad = (self.features or {}).get("inference_padding") or 0
        if pad <= 0:
            toolkit = (self.features or {}).get("toolkit", "the original HiFi-GAN")
            raise ValueError(f"inference_padding=True: this model's toolkit ({toolkit}) pads nothing at "
                             "inference; only Coqui and SpeechBrain models have an inference padding")
        return pad

    def remove_weight_norm(self):
        """Fold weight normalization into plain weights (what inference scripts do); idempotent."""
        return remove_weight_norm(self)

    @property
    def weight_normed(self):
        return self.conv_pre.weight_normed

    # ---- checkpoints -------------------------------------------------------------------------
    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Accepts the original flat keys, NVIDIA's nested `resblocks.S.K.*` (any kernel order),
        `parametrizations.weight.original0/1`, plain weights after weight-norm removal (either way)
        and `module.` prefixes. Strict by default: every missing/unexpected key and shape mismatch
        is listed in one error."""
        converted = convert_generator_state_dict(state_dict, self, strict=strict)
        return super().load_state_dict(converted, strict=strict, assign=assign)

    @classmethod
    def from_pretrained(cls, path, fused=True, map_location="cpu", config=None, strict=True, compute_dtype=None):
        """Load a generator checkpoint: the original's `g_XXXXXXXX` (config.json beside it), NVIDIA's
        `hifigan_gen_checkpoint_*.pt`, ours (`save_pretrained`), or another toolkit's: a Hugging Face
        SpeechT5HifiGan folder, a NeMo `.nemo` archive, a Coqui `model_file.pth`, a ParallelWaveGAN
        `checkpoint-*steps.pkl` or an ESPnet joint text2wav `.pth` (recognised by structure; the config
        carries what the toolkit's generator does differently: PWG/ESPnet's odd-scale upsample paddings,
        SpeechBrain's reflect padding, bias-free convs). A folder picks its latest generator file. `config` overrides the checkpoint's own (needed for a g_ file without
        config.json). `model.features` describes the input features another toolkit's model expects
        (its mel front end, normalisation, inference padding); None for the original's format.
        compute_dtype: as HiFiGAN's."""
        state_dict, h, _, features = read_generator(path, config=config, map_location=map_location)
        model = cls(h, fused=fused, compute_dtype=compute_dtype)
        model.features = features
        if any(k.endswith(".weight") and not k.endswith("parametrizations.weight") for k in state_dict
               if k.startswith("conv_pre")):
            model.remove_weight_norm()  # the checkpoint was saved without weight norm
        model.load_state_dict(state_dict, strict=strict)
        if isinstance(map_location, (str, torch.device)):
            model.to(map_location)
        return model

    def save_pretrained(self, path):
        """Write our checkpoint format (config embedded) atomically; a folder gets `generator.pt`."""
        if os.path.isdir(path):
            path = os.path.join(path, "generator.pt")
        save_generator(path, self.state_dict(), self.config)
        return path
