"""HiFi-GAN discriminators: multi-period (MPD) and multi-scale (MSD).

Same architecture, math and parameter names as the original HiFi-GAN code (jik876/hifi-gan,
``models.py``), so the ``'mpd'`` and ``'msd'`` entries of an original ``do_XXXXXXXX`` checkpoint
load with ``load_state_dict(..., strict=True)``::

    ckpt = torch.load("do_02500000", map_location="cpu")
    mpd = MultiPeriodDiscriminator(); mpd.load_state_dict(ckpt["mpd"])
    msd = MultiScaleDiscriminator();  msd.load_state_dict(ckpt["msd"])

State-dict keys therefore use the legacy normalisation names:

* weight norm (``torch.nn.utils.weight_norm``): ``<conv>.weight_g``, ``<conv>.weight_v``, ``<conv>.bias``
* spectral norm (``torch.nn.utils.spectral_norm``, first MSD sub-discriminator only):
  ``<conv>.weight_orig``, ``<conv>.weight_u``, ``<conv>.weight_v``, ``<conv>.bias``

All discriminators take waveforms shaped ``[B, 1, T]`` (any ``T >= 1``; MPD needs ``T > p/2``
for reflect padding) and return ``(logits, feature_maps)`` per sub-discriminator, where
``logits`` is ``[B, N]`` and ``feature_maps`` is the list of every layer's output (after the
leaky ReLU; the last entry is ``conv_post``'s output before flattening).

``fused=True`` runs every layer through ``vocoder_ext.ops.conv1d_lrelu`` (conv + bias + leaky-ReLU in one
op, with its own backward); the MPD's ``(k, 1)`` conv2ds are that op over ``[B, C, T / p, p]``, each of
the p columns convolved along time.
Same outputs, feature maps and gradients as the eager path. ``concat_fwd=True`` (NVIDIA's flag) runs real
and generated audio through each sub-discriminator in one batch.
"""
from __future__ import annotations

import warnings
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops

__all__ = [
    "LRELU_SLOPE",
    "DiscriminatorP",
    "MultiPeriodDiscriminator",
    "DiscriminatorS",
    "MultiScaleDiscriminator",
]

LRELU_SLOPE = 0.1

# (logits per sub-discriminator for real, for generated, feature maps for real, for generated)
DiscriminatorOutputs = Tuple[List[Tensor], List[Tensor], List[List[Tensor]], List[List[Tensor]]]


def weight_norm(module: nn.Module) -> nn.Module:
    """Legacy ``torch.nn.utils.weight_norm`` (keys ``weight_g``/``weight_v``), without its FutureWarning.

    The legacy form is used on purpose: its state-dict keys are the ones original checkpoints hold.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
        return nn.utils.weight_norm(module)


def spectral_norm(module: nn.Module) -> nn.Module:
    """Legacy ``torch.nn.utils.spectral_norm`` (keys ``weight_orig``/``weight_u``/``weight_v``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*spectral_norm.*", category=FutureWarning)
        return nn.utils.spectral_norm(module)



def _conv_stack(convs, conv_post, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    """Shared tail of both sub-discriminators: (flattened logits, every layer's output)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


def _normalized_weight(conv: nn.Module) -> Tensor:
    """The weight `conv(x)` would use: its weight/spectral-norm pre-hooks run as a forward would run them
    (spectral norm's power iteration included, in training mode), then `conv.weight`."""
    for hook in conv._forward_pre_hooks.values():
        hook(conv, ())
    return conv.weight


def _fused_conv_stack(convs, conv_post, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
    """_conv_stack on ops.conv1d_lrelu over x [N, C, T] or [N, C, T, W] (the MPD's columns)."""
    fmap = []
    for conv, slope in [(c, LRELU_SLOPE) for c in convs] + [(conv_post, 1.0)]:
        w = _normalized_weight(conv)
        if w.dim() == 4:  # the MPD's (k, 1) kernels
            w = w.squeeze(3)
        x = ops.conv1d_lrelu(x, w, conv.bias, conv.stride[0], conv.padding[0], conv.groups, slope)
        fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


def _both(d: nn.Module, y: Tensor, y_hat: Tensor, concat: bool):
    """(d(y), d(y_hat)), as one batch when `concat`: the halves of every output are views."""
    if not concat:
        return d(y), d(y_hat)
    logits, fmap = d(torch.cat([y, y_hat]))
    n = y.shape[0]
    return (logits[:n], [f[:n] for f in fmap]), (logits[n:], [f[n:] for f in fmap])

class DiscriminatorP(nn.Module):
    """One period sub-discriminator of the MPD.

    The waveform ``[B, 1, T]`` is reflect-padded on the right to a multiple of ``period`` and
    folded to ``[B, 1, T/period, period]``; 2-D convs with ``(k, 1)`` kernels then see each
    phase of the period as a separate column.

    Args:
        period: the fold period ``p``.
        kernel_size, stride: along the folded time axis. As in the original code the padding
            is ``(2, 0)`` whatever ``kernel_size`` is (it equals "same" padding for the
            default 5).
        use_spectral_norm: spectral instead of weight norm (the MPD never uses it).

    Forward: ``x [B, 1, T] -> (logits [B, N], fmap)`` with ``len(fmap) == 6``.
    """

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3,
                 use_spectral_norm: bool = False, fused: bool = False):
        super().__init__()
        self.period, self.fused = period, fused
        norm_f = spectral_norm if use_spectral_norm else weight_norm
        pad = (2, 0)  # original: get_padding(5, 1), independent of kernel_size
        chans = [1, 32, 128, 512, 1024]
        convs = [nn.Conv2d(cin, cout, (kernel_size, 1), (stride, 1), padding=pad)
                 for cin, cout in zip(chans[:-1], chans[1:])]
        convs.append(nn.Conv2d(1024, 1024, (kernel_size, 1), 1, padding=pad))
        self.convs = nn.ModuleList(norm_f(c) for c in convs)
        self.conv_post = norm_f(nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), mode="reflect")
            t = t + n_pad
        x = x.view(b, c, t // self.period, self.period)
        if self.fused:
            return _fused_conv_stack(self.convs, self.conv_post, x)
        return _conv_stack(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """MPD: one :class:`DiscriminatorP` per period (default 2, 3, 5, 7, 11).

    Forward: ``(y [B, 1, T], y_hat [B, 1, T]) -> (y_d_rs, y_d_gs, fmap_rs, fmap_gs)``, lists
    with one entry per period: logits ``[B, N_p]`` for real / generated audio and their lists
    of feature maps.
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), fused: bool = False, concat_fwd: bool = False):
        super().__init__()
        self.periods = tuple(periods)
        self.concat_fwd = concat_fwd
        self.discriminators = nn.ModuleList(DiscriminatorP(p, fused=fused) for p in self.periods)

    @property
    def fused(self) -> bool:
        return self.discriminators[0].fused

    @fused.setter
    def fused(self, value: bool):
        for d in self.discriminators:
            d.fused = value

    def forward(self, y: Tensor, y_hat: Tensor) -> DiscriminatorOutputs:
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for d in self.discriminators:
            (y_d_r, fmap_r), (y_d_g, fmap_g) = _both(d, y, y_hat, self.concat_fwd)
            y_d_rs.append(y_d_r)
            fmap_rs.append(fmap_r)
            y_d_gs.append(y_d_g)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs


class DiscriminatorS(nn.Module):
    """One scale sub-discriminator of the MSD (MelGAN-style grouped 1-D conv stack).

    Forward: ``x [B, 1, T] -> (logits [B, N], fmap)`` with ``len(fmap) == 8``.
    """

    # (in, out, kernel, stride, groups, padding)
    LAYERS = (
        (1, 128, 15, 1, 1, 7),
        (128, 128, 41, 2, 4, 20),
        (128, 256, 41, 2, 16, 20),
        (256, 512, 41, 4, 16, 20),
        (512, 1024, 41, 4, 16, 20),
        (1024, 1024, 41, 1, 16, 20),
        (1024, 1024, 5, 1, 1, 2),
    )

    def __init__(self, use_spectral_norm: bool = False, fused: bool = False):
        super().__init__()
        self.fused = fused
        norm_f = spectral_norm if use_spectral_norm else weight_norm
        self.convs = nn.ModuleList(
            norm_f(nn.Conv1d(cin, cout, k, s, groups=g, padding=p))
            for cin, cout, k, s, g, p in self.LAYERS)
        self.conv_post = norm_f(nn.Conv1d(1024, 1, 3, 1, padding=1))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        if self.fused:
            return _fused_conv_stack(self.convs, self.conv_post, x)
        return _conv_stack(self.convs, self.conv_post, x)


class MultiScaleDiscriminator(nn.Module):
    """MSD: three :class:`DiscriminatorS` on the raw, 2x and 4x average-pooled waveform.

    The first sub-discriminator uses spectral norm, the other two weight norm.

    Args:
        meanpool_padding: padding of the two ``AvgPool1d(4, 2)`` layers between scales.
            2 as in the original HiFi-GAN (jik876, default); NVIDIA's DeepLearningExamples
            HiFi-GAN uses 1. It changes the pooled lengths, not the parameters, so both kinds
            of checkpoints load either way; choose the one the checkpoint was trained with.

    Forward: ``(y [B, 1, T], y_hat [B, 1, T]) -> (y_d_rs, y_d_gs, fmap_rs, fmap_gs)``, as for
    :class:`MultiPeriodDiscriminator`, one entry per scale.
    """

    def __init__(self, meanpool_padding: int = 2, fused: bool = False, concat_fwd: bool = False):
        super().__init__()
        self.concat_fwd = concat_fwd
        self.discriminators = nn.ModuleList([
            DiscriminatorS(use_spectral_norm=True, fused=fused),
            DiscriminatorS(fused=fused),
            DiscriminatorS(fused=fused),
        ])
        self.meanpools = nn.ModuleList([
            nn.AvgPool1d(4, 2, padding=meanpool_padding),
            nn.AvgPool1d(4, 2, padding=meanpool_padding),
        ])

    fused = MultiPeriodDiscriminator.fused

    def forward(self, y: Tensor, y_hat: Tensor) -> DiscriminatorOutputs:
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = [], [], [], []
        for i, d in enumerate(self.discriminators):
            if i != 0:
                y = self.meanpools[i - 1](y)
                y_hat = self.meanpools[i - 1](y_hat)
            (y_d_r, fmap_r), (y_d_g, fmap_g) = _both(d, y, y_hat, self.concat_fwd)
            y_d_rs.append(y_d_r)
            fmap_rs.append(fmap_r)
            y_d_gs.append(y_d_g)
            fmap_gs.append(fmap_g)
        return y_d_rs, y_d_gs, fmap_rs, fmap_gs
