"""Streaming vocoders: mel frames in as they arrive, audio out as soon as it is final, equal to the
whole-utterance output (HiFi-GAN's forward; WaveGlow's infer with a given z, fed alongside the mel).

Every output sample depends on a bounded window of mel frames (`receptive_field`). A chunk of frames
[s, e) is vocoded from the window [s - left, e + right) -- clipped to the frames of the utterance, where the
clip is the utterance's own edge -- and its samples are cropped out: every layer's padding at the window's
edges then falls outside what the chunk's samples depend on, so they are exactly the whole utterance's
samples. The stream keeps only the last `left` frames between chunks (its state), never the whole past.

WaveGlow's field is wide: each flow's WN stack reads 255 grouped steps (2040 samples) on each side at
NVIDIA's config, twelve flows ~96 frames, so a chunk costs its window of ~200 frames more than the chunk.

A lookahead below the right context (`lookahead_frames`) emits audio sooner, vocoded as if the utterance
ended where the received frames do: an approximation whose error the README measures.
"""
import math

import torch

from .models.config import option
from .models.hifigan import HiFiGAN
from .models.waveglow import HOP, UPSAMPLE_KERNEL, WaveGlow


def _block_context(h):
    """Samples on each side that one residual block of the MRF reads around an output (the widest kernel's)."""
    widest = 0
    for k, dilations in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]):
        half = (k - 1) // 2
        # ResBlock1: each dilated conv is followed by an undilated one; ResBlock2: the dilated convs alone
        per_conv = [d * half + (half if h["resblock"] == "1" else 0) for d in dilations]
        widest = max(widest, sum(per_conv))
    return widest


def receptive_field(model):
    """(left, right): the mel frames before and after frame t that its audio samples depend on, from the
    model's config (HiFi-GAN: conv_pre, each upsampling layer and residual stack, conv_post; WaveGlow: the
    mel upsampler and every flow's WN stack)."""
    if isinstance(model, WaveGlow):
        return _waveglow_field(model)
    if not isinstance(model, HiFiGAN):
        raise TypeError(f"receptive_field: expected a vocoder_ext.HiFiGAN or WaveGlow, got {type(model).__name__}")
    h = model.config
    frame = 1 << 20  # any frame far from both ends: the field is the same for all of them
    lo, hi = frame * model.hop_length, (frame + 1) * model.hop_length - 1  # its samples, inclusive
    post = option(h, "conv_post_kernel_size") // 2
    lo, hi = lo - post, hi + post
    stages = list(zip(h["upsample_rates"], h["upsample_kernel_sizes"], option(h, "upsample_paddings")))
    block = _block_context(h)
    for u, k, p in reversed(stages):
        lo, hi = lo - block, hi + block
        # transposed conv: output n reads input j where 0 <= n + p - j * u < k
        lo, hi = math.ceil((lo + p - k + 1) / u), (hi + p) // u
    pre = option(h, "conv_pre_kernel_size") // 2
    lo, hi = lo - pre, hi + pre
    return frame - lo, hi - frame


def _dilation(conv):
    return conv.dilation if isinstance(conv.dilation, int) else conv.dilation[0]


def _waveglow_field(model):
    per_frame = HOP // model.n_group  # grouped steps per mel frame
    # Each flow's WN reads (K - 1) / 2 * dilation grouped steps on each side per layer; the 1x1 convs, the
    # coupling and the early outputs are per step.
    steps = sum(_dilation(layer) * (layer.weight.shape[-1] - 1) // 2 for wn in model.WN for layer in wn.in_layers)
    frame = 1 << 20
    first = (frame * per_frame - steps) * model.n_group                    # first sample the frame's groups read
    last = ((frame + 1) * per_frame - 1 + steps) * model.n_group + model.n_group - 1
    # the upsampler (ConvTranspose1d, stride HOP, no padding): sample n reads frames (n - K + 1) / HOP .. n / HOP
    return frame - math.ceil((first - UPSAMPLE_KERNEL + 1) / HOP), last // HOP - frame


class Stream:
    """The state of one streamed utterance: `push(mel_piece)` -> the audio that became final, `flush()` -> the
    rest at the end. mel pieces are [B, num_mels, n] with any n >= 0; B, num_mels, dtype and device stay those
    of the first piece. HiFi-GAN's audio is [B, 1, m * hop]; WaveGlow's [B, m * 256], its infer(mel, sigma,
    z) with z pushed alongside: `push(mel_piece, z_piece)`, z_piece [B, n_group, n * 256 / n_group] (the
    columns of infer's z for those frames)."""

    def __init__(self, model, chunk_frames=32, lookahead_frames=None, sigma=0.9):
        self.left, self.right = receptive_field(model)
        self.waveglow = isinstance(model, WaveGlow)
        if self.waveglow and (isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma >= 0):
            raise ValueError(f"sigma: expected a number >= 0, got {sigma!r}")
        self.sigma = sigma
        if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
            raise ValueError(f"chunk_frames: expected an int >= 1, got {chunk_frames!r}")
        if lookahead_frames is None:
            lookahead_frames = self.right
        if isinstance(lookahead_frames, bool) or not isinstance(lookahead_frames, int) or lookahead_frames < 0:
            raise ValueError(f"lookahead_frames: expected an int >= 0 or None (the exact {self.right}), "
                             f"got {lookahead_frames!r}")
        self.model, self.chunk, self.lookahead = model, chunk_frames, lookahead_frames
        self.hop = model.hop_length
        self.z = None          # WaveGlow: the noise columns of the kept frames
        self.exact = lookahead_frames >= self.right
        self.kept = None       # [B, num_mels, n]: the frames from `kept_from` on
        self.kept_from = 0     # absolute index of kept[..., 0]
        self.received = 0      # frames pushed so far
        self.emitted = 0       # frames whose audio went out
        self.finished = False

    def push(self, mel, z=None):
        """Append mel frames (and, for WaveGlow, their noise z); -> the audio of the m frames that became final
        (m may be 0)."""
        if self.finished:
            raise RuntimeError("push: the stream was flushed; start a new Stream for the next utterance")
        self._append(mel, z)
        pieces = []
        while self.received - self.emitted >= self.chunk + self.lookahead:
            pieces.append(self._emit(self.chunk, end=self.emitted + self.chunk + self.lookahead))
        return self._joined(pieces)

    def flush(self):
        """End of the utterance: -> the audio of every frame not yet emitted."""
        if self.finished:
            raise RuntimeError("flush: the stream was already flushed")
        self.finished = True
        if self.kept is None or self.received == self.emitted:
            return self._joined([])
        return self._emit(self.received - self.emitted, end=self.received)

    def _append(self, mel, z):
        n_mels = self.model.n_mel_channels if self.waveglow else self.model.config["num_mels"]
        if not isinstance(mel, torch.Tensor):
            raise TypeError(f"mel piece: expected a torch.Tensor [B, {n_mels}, n], got {type(mel).__name__}")
        if mel.dim() != 3 or mel.shape[1] != n_mels:
            raise ValueError(f"mel piece: expected shape [B, {n_mels}, n], got {tuple(mel.shape)}")
        if self.kept is None:
            if not mel.is_floating_point():
                raise TypeError(f"mel piece: expected a floating-point tensor, got dtype {mel.dtype}")
            self.kept = mel[:, :, :0]
        elif (mel.shape[0], mel.dtype, mel.device) != (self.kept.shape[0], self.kept.dtype, self.kept.device):
            raise ValueError(f"mel piece: expected batch {self.kept.shape[0]}, dtype {self.kept.dtype} and device "
                             f"{self.kept.device} (those of the first piece), got batch {mel.shape[0]}, dtype "
                             f"{mel.dtype}, device {mel.device}")
        if self.waveglow:
            self._append_z(mel, z)
        elif z is not None:
            raise ValueError("push: z is WaveGlow's noise; HiFi-GAN takes the mel alone")
        self.kept = torch.cat([self.kept, mel], 2)
        self.received += mel.shape[2]

    def _append_z(self, mel, z):
        shape = (mel.shape[0], self.model.n_group, mel.shape[2] * HOP // self.model.n_group)
        if not isinstance(z, torch.Tensor) or tuple(z.shape) != shape or not z.is_floating_point():
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"push: WaveGlow streams with a given z: expected a float tensor {shape} ([B, n_group, "
                             f"n * 256 / n_group] for these {mel.shape[2]} frames) beside the mel piece, got {got}")
        self.z = z if self.z is None else torch.cat([self.z, z.to(self.z.dtype)], 2)

    def _emit(self, frames, end):
        """Vocode frames [emitted, emitted + frames) from the window [emitted - left, end)."""
        start = max(0, self.emitted - self.left)
        window = self.kept[:, :, start - self.kept_from:end - self.kept_from]
        offset = (self.emitted - start) * self.hop
        if self.waveglow:
            per_frame = HOP // self.model.n_group
            z = self.z[:, :, (start - self.kept_from) * per_frame:(end - self.kept_from) * per_frame]
            audio = self.model.infer(window, self.sigma, z=z)[:, offset:offset + frames * self.hop]
        else:
            audio = self.model(window)[:, :, offset:offset + frames * self.hop]
        self.emitted += frames
        drop = max(0, self.emitted - self.left) - self.kept_from
        if drop > 0:
            self.kept, self.kept_from = self.kept[:, :, drop:], self.kept_from + drop
            if self.waveglow:
                self.z = self.z[:, :, drop * (HOP // self.model.n_group):]
        return audio

    def _joined(self, pieces):
        if pieces:
            return torch.cat(pieces, -1) if len(pieces) > 1 else pieces[0]
        batch = self.kept.shape[0] if self.kept is not None else 1
        if self.waveglow:
            like = self.model.upsample.weight
            return torch.zeros(batch, 0, dtype=like.dtype, device=like.device)
        like = self.model.conv_post.weight
        return torch.zeros(batch, 1, 0, dtype=like.dtype, device=like.device)


def stream(model, mel_pieces, chunk_frames=32, lookahead_frames=None, sigma=0.9):
    """Vocode an utterance whose mel arrives in pieces (an iterable of [B, num_mels, n] tensors; for WaveGlow,
    of (mel, z) pairs): yields audio as soon as it is final. With the default lookahead (the model's exact
    right context) the pieces joined along time equal `model(whole mel)` (WaveGlow: `model.infer(whole mel,
    sigma, z=whole z)`). See Stream."""
    state = Stream(model, chunk_frames, lookahead_frames, sigma)
    for piece in mel_pieces:
        audio = state.push(*piece) if state.waveglow else state.push(piece)
        if audio.shape[-1]:
            yield audio
    audio = state.flush()
    if audio.shape[-1]:
        yield audio
