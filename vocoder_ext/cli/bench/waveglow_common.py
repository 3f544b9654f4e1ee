"""What the sections of `bench --waveglow` share: the model they time and the FLOP counts they quote.

The model is NVIDIA's WaveGlow config (80 mels, 12 flows, n_group 8, an early output of 2 channels every 4
flows, 8 WN layers of kernel 3) with `channels` WN channels and seeded random weights; the `end` conv of each
WN is randomised too (a fresh model's couplings are the identity, a trained model's are not).

FLOP counts are 2 per multiply-add of every convolution and matrix product. Elementwise work (the tanh *
sigmoid gates, bias and residual adds, the couplings' exp) is not counted in a model's or a WN layer's
count; it is the whole count of the affine coupling op, which has no multiply-adds (see `coupling_flop`).
"""
import torch

from ...models import WaveGlow
from ..common import DEFAULT_SAMPLING_RATE

SIGMA = 0.9  # inference: NVIDIA's default
TRAIN_SIGMA = 1.0  # training: NVIDIA's WaveGlowLoss sigma
N_LAYERS, KERNEL = 8, 3


def build_model(channels, seed, fused, weight_norm=False):
    """WaveGlow(NVIDIA's config, `channels` WN channels), random weights from `seed` (the same for any
    `fused`), weight norm removed unless `weight_norm`; in eval mode (callers set train())."""
    torch.manual_seed(seed)
    model = WaveGlow(WN_config={"n_layers": N_LAYERS, "n_channels": channels, "kernel_size": KERNEL}, fused=fused)
    for wn in model.WN:
        torch.nn.init.normal_(wn.end.weight, std=0.02)
        torch.nn.init.normal_(wn.end.bias, std=0.02)
    if not weight_norm:
        model.remove_weight_norm()
    return model.eval()


def grouped_length(seconds, n_group=8):
    """T of the [B, C, T] tensors inside WaveGlow: seconds * 22050 / n_group time steps."""
    return max(1, round(seconds * DEFAULT_SAMPLING_RATE / n_group))


# ---- FLOP counts (2 per multiply-add) ---------------------------------------------------------
def wn_layer_flop(channels, kernel, rows, length, batch):
    """One WN layer: the dilated conv C -> 2C (K taps) and the 1x1 res/skip conv C -> rows (2C, or C on
    the last layer): 2*T*B*(2C*C*K + rows*C)."""
    return 2 * length * batch * (2 * channels * channels * kernel + rows * channels)


def conditioning_flop(channels, n_layers, cond_in, length, batch):
    """A flow's conditioning, all layers at once: [2C * n_layers, n_mel * n_group] x [n_mel * n_group, T]:
    2*T*B*(2C*n_layers)*(n_mel*n_group)."""
    return 2 * length * batch * 2 * channels * n_layers * cond_in


def coupling_flop(n_half, length, batch):
    """The reverse affine coupling (x - b) * exp(-log_s): 3 per element (subtract, exp, multiply), B*n_half*T
    elements; the only op counted by its elementwise work."""
    return 3 * batch * n_half * length


def invertible_conv_flop(c, length, batch):
    """The c x c mixing W^-1 x: 2*B*T*c*c (the c x c inverse itself, O(c^3) once, is not counted)."""
    return 2 * batch * length * c * c


def infer_flop(model, frames, batch):
    """One `model.infer` of `frames` mel frames: the mel upsampling (a transposed conv, 2*B*frames*n_mel^2*K)
    and, per flow, the start conv (n_half -> C), the conditioning, the 8 WN layers, the end conv
    (C -> 2 n_half) and the inverse 1x1 conv, at T = frames * 256 / n_group."""
    up = model.upsample
    flop = 2 * batch * frames * up.in_channels * up.out_channels * up.kernel_size[0]
    length = frames * model.hop_length // model.n_group
    for k in range(model.n_flows):
        wn, c = model.WN[k], model.convinv[k].conv.in_channels
        channels, n_half = wn.n_channels, c // 2
        flop += 2 * length * batch * n_half * channels  # start
        flop += conditioning_flop(channels, wn.n_layers, model.n_mel_channels * model.n_group, length, batch)
        for i, in_layer in enumerate(wn.in_layers):
            rows = channels if i == wn.n_layers - 1 else 2 * channels
            flop += wn_layer_flop(channels, in_layer.weight.shape[-1], rows, length, batch)
        flop += 2 * length * batch * channels * 2 * n_half  # end
        flop += invertible_conv_flop(c, length, batch)
    return flop


def flop_per_audio_second(model):
    """infer_flop per second of audio at 22050 Hz, batch 1 (every term is linear in frames, so any frame
    count gives the same rate)."""
    frames = 256
    return infer_flop(model, frames, 1) / (frames * model.hop_length / DEFAULT_SAMPLING_RATE)
