"""An independent, plain implementation of NVIDIA DLE's WaveGlow (Tacotron2/waveglow/model.py and
loss_function.py), written for the tests from the published math: pure torch, nothing from
vocoder_ext. Parameter names are NVIDIA's (torch.nn.utils.weight_norm's weight_g / weight_v, one
`cond_layers` entry per WN layer), so state dicts load both ways.

The flow, per step k of n_flows, on audio folded into n_group channels:
    (every n_early_every steps, n_early_size channels leave as output early)
    x = W_k x                                      invertible 1x1 conv, log|det W_k| per column
    x0, x1 = halves of x
    log_s, b = WN_k(x0, mel)                        WaveNet-like, conditioned on the upsampled mel
    x1 = exp(log_s) * x1 + b                        affine coupling
and inference runs it backwards from noise."""
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


def weight_norm(conv):
    """The legacy hook-based weight norm NVIDIA uses (keys weight_g, weight_v), without its
    deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(conv)


def remove_weight_norm(conv):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.remove_weight_norm(conv)


class Invertible1x1Conv(nn.Module):
    """z -> W z over the channel axis; W starts as a random rotation (det +1)."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv1d(c, c, 1, bias=False)
        q, _ = torch.linalg.qr(torch.randn(c, c))
        if torch.det(q) < 0:
            q[:, 0] = -q[:, 0]
        with torch.no_grad():
            self.conv.weight.copy_(q.unsqueeze(-1))

    def forward(self, z):
        batch, _, n_groups = z.shape
        w = self.conv.weight[:, :, 0]
        log_det_w = batch * n_groups * torch.logdet(w.float())
        return self.conv(z), log_det_w

    def inverse(self, z):
        # computed afresh at every call (never cached), in float64, then used at z's dtype
        w_inv = self.conv.weight[:, :, 0].double().inverse()
        return F.conv1d(z, w_inv.to(z.dtype).unsqueeze(-1))


class WN(nn.Module):
    """Non-causal WaveNet: dilations 1, 2, 4, ...; gated tanh * sigmoid units conditioned on the mel;
    residual into the next layer, skip summed into `end` (which starts at zero)."""

    def __init__(self, n_in_channels, n_mel_channels, n_layers, n_channels, kernel_size):
        super().__init__()
        assert kernel_size % 2 == 1 and n_channels % 2 == 0
        self.n_layers = n_layers
        self.n_channels = n_channels
        self.start = weight_norm(nn.Conv1d(n_in_channels, n_channels, 1))
        self.in_layers = nn.ModuleList()
        self.cond_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = 2 ** i
            self.in_layers.append(weight_norm(nn.Conv1d(
                n_channels, 2 * n_channels, kernel_size,
                dilation=dilation, padding=dilation * (kernel_size - 1) // 2)))
            self.cond_layers.append(weight_norm(nn.Conv1d(n_mel_channels, 2 * n_channels, 1)))
            last = i == n_layers - 1
            self.res_skip_layers.append(weight_norm(
                nn.Conv1d(n_channels, n_channels if last else 2 * n_channels, 1)))
        self.end = nn.Conv1d(n_channels, 2 * n_in_channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)

    def forward(self, audio, cond):
        c = self.n_channels
        x = self.start(audio)
        skip = 0
        for i in range(self.n_layers):
            pre = self.in_layers[i](x) + self.cond_layers[i](cond)
            acts = torch.tanh(pre[:, :c]) * torch.sigmoid(pre[:, c:])
            res_skip = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = x + res_skip[:, :c]
                skip = skip + res_skip[:, c:]
            else:
                skip = skip + res_skip
        return self.end(skip)


class WaveGlow(nn.Module):
    def __init__(self, n_mel_channels, n_flows, n_group, n_early_every, n_early_size, WN_config):
        super().__init__()
        assert n_group % 2 == 0
        self.n_mel_channels = n_mel_channels
        self.n_flows = n_flows
        self.n_group = n_group
        self.n_early_every = n_early_every
        self.n_early_size = n_early_size
        self.upsample = nn.ConvTranspose1d(n_mel_channels, n_mel_channels, 1024, stride=256)
        self.WN = nn.ModuleList()
        self.convinv = nn.ModuleList()
        remaining = n_group
        for k in range(n_flows):
            if self.drops_early(k):
                remaining -= n_early_size
            self.convinv.append(Invertible1x1Conv(remaining))
            self.WN.append(WN(remaining // 2, n_mel_channels * n_group, **WN_config))
        self.n_remaining_channels = remaining

    def drops_early(self, k):
        return k > 0 and k % self.n_early_every == 0

    def conditioning(self, mel, n_samples):
        """Upsampled mel, first n_samples samples, folded like the audio: channel (m, g) = m*n_group + g."""
        spect = self.upsample(mel)[:, :, :n_samples]
        batch, n_mel, length = spect.shape
        t = length // self.n_group
        spect = spect[:, :, :t * self.n_group].reshape(batch, n_mel, t, self.n_group)
        return spect.transpose(2, 3).reshape(batch, n_mel * self.n_group, t)

    def fold(self, audio):
        """[B, T] -> [B, n_group, T // n_group]: column t holds samples t*n_group ... t*n_group + n_group-1."""
        batch = audio.shape[0]
        t = audio.shape[1] // self.n_group
        return audio[:, :t * self.n_group].reshape(batch, t, self.n_group).transpose(1, 2)

    def forward(self, forward_input):
        """(mel [B, n_mel, F], audio [B, T<=F*256]) -> (z, log_s per flow, log_det_W per flow)."""
        mel, audio = forward_input
        assert self.upsample(mel).shape[2] >= audio.shape[1]
        cond = self.conditioning(mel, audio.shape[1])
        x = self.fold(audio)
        early, log_s_list, log_det_w_list = [], [], []
        for k in range(self.n_flows):
            if self.drops_early(k):
                early.append(x[:, :self.n_early_size])
                x = x[:, self.n_early_size:]
            x, log_det_w = self.convinv[k](x)
            half = x.shape[1] // 2
            out = self.WN[k](x[:, :half], cond)
            b, log_s = out[:, :half], out[:, half:]
            x = torch.cat([x[:, :half], torch.exp(log_s) * x[:, half:] + b], dim=1)
            log_s_list.append(log_s)
            log_det_w_list.append(log_det_w)
        return torch.cat(early + [x], dim=1), log_s_list, log_det_w_list

    def infer_with_noise(self, mel, sigma, z):
        """NVIDIA's `infer`, with its normal draws taken from z [B, n_group, F*256/n_group] in
        `infer_onnx`'s order: z[:, :n_remaining_channels] starts the flow, then the next
        n_early_size channels at each early stage as it is reached (k high to low). Every slice
        is scaled by sigma, as `infer` scales its draws."""
        n_samples = mel.shape[2] * 256  # NVIDIA trims the last kernel - stride = 768 samples
        cond = self.conditioning(mel, n_samples)
        used = self.n_remaining_channels
        x = sigma * z[:, :used]
        for k in reversed(range(self.n_flows)):
            half = x.shape[1] // 2
            out = self.WN[k](x[:, :half], cond)
            b, log_s = out[:, :half], out[:, half:]
            x = torch.cat([x[:, :half], (x[:, half:] - b) / torch.exp(log_s)], dim=1)
            x = self.convinv[k].inverse(x)
            if self.drops_early(k):
                x = torch.cat([sigma * z[:, used:used + self.n_early_size], x], dim=1)
                used += self.n_early_size
        assert used == z.shape[1]
        return x.transpose(1, 2).reshape(x.shape[0], -1)  # unfold the groups back into time

    def infer(self, mel, sigma=1.0):
        """NVIDIA's `infer` exactly: fp32 normal draws on mel's device (the initial noise, then one
        per early stage), cast to mel's dtype."""
        batch, t = mel.shape[0], mel.shape[2] * 256 // self.n_group
        draws = [torch.randn(batch, self.n_remaining_channels, t, device=mel.device)]
        for k in reversed(range(self.n_flows)):
            if self.drops_early(k):
                draws.append(torch.randn(batch, self.n_early_size, t, device=mel.device))
        return self.infer_with_noise(mel, sigma, torch.cat(draws, dim=1).to(mel.dtype))

    def z_in_forward_order(self, z):
        """The noise layout `infer_with_noise` takes -> the layout `forward` returns (early outputs
        of the first stage first, the n_remaining_channels last), so forward(infer(z)) == this."""
        rest = self.n_remaining_channels
        chunks = [z[:, :rest]]
        while rest < z.shape[1]:
            chunks.append(z[:, rest:rest + self.n_early_size])
            rest += self.n_early_size
        return torch.cat(chunks[::-1], dim=1)

    def remove_weightnorm(self):
        for wn in self.WN:
            for conv in [wn.start, *wn.in_layers, *wn.cond_layers, *wn.res_skip_layers]:
                remove_weight_norm(conv)
        return self


def waveglow_loss(outputs, sigma=1.0):
    """NVIDIA's WaveGlowLoss: negative log-likelihood per element of z under N(0, sigma^2), without
    the constant."""
    z, log_s_list, log_det_w_list = outputs
    log_s_total = sum(log_s.sum() for log_s in log_s_list)
    log_det_w_total = sum(log_det_w_list)
    return (torch.sum(z * z) / (2 * sigma * sigma) - log_s_total - log_det_w_total) / z.numel()


def randomize(model, seed):
    """Weights that exercise everything: `end` non-zero (so coupling is not the identity), weight-norm
    gains not equal to |v|, an O(1) upsampled mel, and 1x1 convs that are not rotations (so their
    inverse is not their transpose and log|det| is not 0). Small enough that 12 flows stay finite."""
    gen = torch.Generator().manual_seed(seed)

    def normal(t, std):
        t.copy_(torch.randn(t.shape, generator=gen) * std)

    with torch.no_grad():
        normal(model.upsample.weight, 0.05)
        normal(model.upsample.bias, 0.1)
        for wn in model.WN:
            for conv in [wn.start, *wn.in_layers, *wn.cond_layers, *wn.res_skip_layers]:
                conv.weight_g.copy_(torch.rand(conv.weight_g.shape, generator=gen) + 0.5)
                normal(conv.weight_v, 1.0)
                normal(conv.bias, 0.1)
            normal(wn.end.weight, 0.15 / wn.n_channels ** 0.5)
            normal(wn.end.bias, 0.05)
        for inv in model.convinv:
            w = inv.conv.weight[:, :, 0]
            c = w.shape[0]
            w = w @ (torch.eye(c) + 0.1 * torch.randn(c, c, generator=gen))
            if torch.det(w) < 0:
                w[:, 0] = -w[:, 0]
            inv.conv.weight.copy_(w.unsqueeze(-1))
    return model
