"""Training losses: HiFi-GAN's (LSGAN adversarial, feature matching, mel L1) and WaveGlow's likelihood.

Same math, weights and return conventions as the original HiFi-GAN code (jik876/hifi-gan,
``models.py`` / ``train.py``; NVIDIA's DeepLearningExamples HiFi-GAN is the same), so a training
step reads as in the original::

    y_d_rs, y_d_gs, _, _ = mpd(y, y_g_hat.detach())
    loss_disc_f, losses_disc_f_r, losses_disc_f_g = discriminator_loss(y_d_rs, y_d_gs)
    ...
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = mpd(y, y_g_hat)
    loss_fm_f = feature_loss(fmap_rs, fmap_gs)
    loss_gen_f, losses_gen_f = generator_loss(y_d_gs)
    loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + mel_loss(y_mel, y_g_hat_mel)

The inputs are the lists returned by the discriminators in :mod:`vocoder_ext.models.discriminators`:
one logits tensor ``[B, N_k]`` per sub-discriminator ``k``, and one list of feature maps
(any shapes) per sub-discriminator.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "FEATURE_LOSS_WEIGHT",
    "MEL_LOSS_WEIGHT",
    "discriminator_loss",
    "generator_loss",
    "feature_loss",
    "mel_loss",
    "stft_loss",
    "waveglow_loss",
]

FEATURE_LOSS_WEIGHT = 2.0  # lambda_fm in the paper
MEL_LOSS_WEIGHT = 45.0     # lambda_mel in the paper


def discriminator_loss(
    disc_real_outputs: Sequence[Tensor],
    disc_generated_outputs: Sequence[Tensor],
    *,
    sync: bool = True,
) -> Tuple[Tensor, List[Union[float, Tensor]], List[Union[float, Tensor]]]:
    """LSGAN discriminator loss: ``sum_k mean((1 - D_k(y))^2) + mean(D_k(G(x))^2)``.

    Args:
        disc_real_outputs: per sub-discriminator logits for real audio, each ``[B, N_k]``.
        disc_generated_outputs: the same for generated audio (pass ``y_g_hat.detach()`` to the
            discriminator for the D step).
        sync: True (the original's convention) returns the per-discriminator terms as Python
            floats (``.item()``, one device sync each); False returns them as detached 0-dim
            tensors, with no sync.

    Returns:
        ``(loss, r_losses, g_losses)``: ``loss`` a 0-dim tensor with grad; ``r_losses`` and
        ``g_losses`` the real / generated terms per sub-discriminator, for logging.
    """
    loss = 0
    r_losses, g_losses = [], []
    for dr, dg in zip(disc_real_outputs, disc_generated_outputs):
        r_loss = torch.mean((1 - dr) ** 2)
        g_loss = torch.mean(dg ** 2)
        loss = loss + r_loss + g_loss
        r_losses.append(r_loss.item() if sync else r_loss.detach())
        g_losses.append(g_loss.item() if sync else g_loss.detach())
    return loss, r_losses, g_losses


def generator_loss(disc_outputs: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
    """LSGAN generator (adversarial) loss: ``sum_k mean((1 - D_k(G(x)))^2)``.

    Args:
        disc_outputs: per sub-discriminator logits for generated audio, each ``[B, N_k]``.

    Returns:
        ``(loss, gen_losses)``: the 0-dim total and the per-sub-discriminator terms (tensors
        with grad, as in the original).
    """
    loss = 0
    gen_losses = []
    for dg in disc_outputs:
        l = torch.mean((1 - dg) ** 2)
        gen_losses.append(l)
        loss = loss + l
    return loss, gen_losses


def feature_loss(fmap_r: Sequence[Sequence[Tensor]], fmap_g: Sequence[Sequence[Tensor]]) -> Tensor:
    """Feature-matching loss: ``2 * sum_k sum_l mean(|f_r[k][l] - f_g[k][l]|)``.

    Args:
        fmap_r: per sub-discriminator, the list of feature maps for real audio.
        fmap_g: the same for generated audio (same shapes).

    Returns:
        0-dim tensor. The original does not detach the real features; neither do we (the
        generator step does not update the discriminator, so it only costs memory).
    """
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g):
        for rl, gl in zip(dr, dg):
            loss = loss + torch.mean(torch.abs(rl - gl))
    return loss * FEATURE_LOSS_WEIGHT


def mel_loss(y_mel: Tensor, y_g_hat_mel: Tensor) -> Tensor:
    """Mel-spectrogram L1 loss: ``45 * mean(|y_mel - y_g_hat_mel|)``.

    Args:
        y_mel: target log-mel ``[B, n_mels, frames]``.
        y_g_hat_mel: log-mel of the generated audio, same shape.

    Returns:
        0-dim tensor (the weighted term that enters the generator total).
    """
    return F.l1_loss(y_mel, y_g_hat_mel) * MEL_LOSS_WEIGHT


# ParallelWaveGAN's multi-resolution STFT loss resolutions: (n_fft, hop, window) samples.
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))


def stft_loss(y_hat: Tensor, y: Tensor, resolutions: Sequence[Tuple[int, int, int]] = STFT_RESOLUTIONS) -> Tensor:
    """Multi-resolution STFT loss (Yamamoto et al., ParallelWaveGAN), in fp32: per resolution, the spectral
    convergence ``||S(y) - S(y_hat)||_F / ||S(y)||_F`` plus the L1 of the log magnitudes (Hann windows,
    magnitudes floored at sqrt(1e-7)), averaged over the resolutions.

    Args:
        y_hat: generated audio ``[B, 1, T]`` or ``[B, T]``.
        y: the real audio, same shape.
    """
    if y_hat.shape != y.shape:
        raise ValueError(f"stft_loss: expected y_hat and y of one shape, got {tuple(y_hat.shape)} and {tuple(y.shape)}")
    longest = max(n_fft for n_fft, _, _ in resolutions)
    if y.shape[-1] <= longest // 2:
        raise ValueError(f"stft_loss: expected audio longer than {longest // 2} samples (half the largest FFT, "
                         f"{longest}), got {y.shape[-1]}")
    y_hat, y = (a.float().reshape(-1, a.shape[-1]) for a in (y_hat, y))
    total = 0
    for n_fft, hop, win in resolutions:
        window = torch.hann_window(win, device=y.device)
        m_hat, m = (torch.stft(a, n_fft, hop, win, window, return_complex=True).abs().square().clamp_min(1e-7).sqrt()
                    for a in (y_hat, y))
        total = total + torch.linalg.norm(m - m_hat) / torch.linalg.norm(m) + F.l1_loss(m_hat.log(), m.log())
    return total / len(resolutions)


def waveglow_loss(outputs: Tuple[Tensor, Sequence[Tensor], Sequence[Tensor]], sigma: float = 1.0) -> Tensor:
    """WaveGlow's negative log-likelihood per dimension, as NVIDIA's WaveGlowLoss: for the forward outputs
    (z, log_s_list, log_det_W_list), (sum(z^2) / (2 sigma^2) - sum(log_s) - sum(log_det_W)) / z.numel()."""
    z, log_s_list, log_det_w_list = outputs
    log_s_total = sum(log_s.float().sum() for log_s in log_s_list)
    log_det_w_total = sum(log_det_w.float() for log_det_w in log_det_w_list)
    loss = torch.sum(z.float() * z.float()) / (2 * sigma * sigma) - log_s_total - log_det_w_total
    return loss / z.numel()
