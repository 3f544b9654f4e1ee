"""An independent implementation of the original HiFi-GAN generator math (jik876 / NVIDIA DLE),
written for the tests from the paper's and configs' description: torch.nn layers with
torch.nn.utils.parametrizations.weight_norm, nothing from vocoder_ext. Also makes checkpoints in
the layouts users have on disk."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

PRESETS = {
    "v1": dict(resblock="1", upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
               upsample_initial_channel=512, resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
    "v2": dict(resblock="1", upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
               upsample_initial_channel=128, resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
    "v3": dict(resblock="2", upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
               upsample_initial_channel=256, resblock_kernel_sizes=[3, 5, 7],
               resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]]),
}
TINY = dict(resblock="1", upsample_rates=[4, 2], upsample_kernel_sizes=[8, 4], upsample_initial_channel=16,
            resblock_kernel_sizes=[3, 5], resblock_dilation_sizes=[[1, 3], [1, 2]])


def wn_conv(c_in, c_out, k, dilation=1):
    return weight_norm(nn.Conv1d(c_in, c_out, k, dilation=dilation, padding=dilation * (k - 1) // 2))


class OrigResBlock1(nn.Module):
    def __init__(self, ch, k, dilations):
        super().__init__()
        self.convs1 = nn.ModuleList(wn_conv(ch, ch, k, d) for d in dilations)
        self.convs2 = nn.ModuleList(wn_conv(ch, ch, k) for _ in dilations)

    def forward(self, x):
        for c1, c2 in zip(self.convs1, self.convs2):
            x = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1)) + x
        return x


class OrigResBlock2(nn.Module):
    def __init__(self, ch, k, dilations):
        super().__init__()
        self.convs = nn.ModuleList(wn_conv(ch, ch, k, d) for d in dilations)

    def forward(self, x):
        for c in self.convs:
            x = c(F.leaky_relu(x, 0.1)) + x
        return x


class OrigGenerator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.h = h
        uic = h["upsample_initial_channel"]
        self.conv_pre = weight_norm(nn.Conv1d(80, uic, 7, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(uic // 2 ** i, uic // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"])))
        block = OrigResBlock1 if h["resblock"] == "1" else OrigResBlock2
        self.resblocks = nn.ModuleList(
            block(uic // 2 ** (i + 1), k, d) for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"]))
        self.conv_post = weight_norm(nn.Conv1d(uic // 2 ** len(self.ups), 1, 7, padding=3))
        nk = len(h["resblock_kernel_sizes"])
        self.nk = nk
        with torch.no_grad():  # non-trivial gains and weights, so g/v mix-ups show
            for m in self.modules():
                if hasattr(m, "parametrizations"):
                    v = m.parametrizations.weight.original1
                    g = m.parametrizations.weight.original0
                    v.normal_(0, 1)
                    g.copy_(torch.rand_like(g) + 0.6)
                    m.bias.normal_(0, 0.05)

    def forward(self, mel):
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            x = sum(self.resblocks[i * self.nk + j](x) for j in range(self.nk)) / self.nk
        return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def legacy_state_dict(self):
        """Keys as torch.nn.utils.weight_norm (the original's) names them: weight_g / weight_v."""
        return {k.replace("parametrizations.weight.original0", "weight_g")
                 .replace("parametrizations.weight.original1", "weight_v"): v
                for k, v in self.state_dict().items()}

    def plain_state_dict(self):
        """Keys after remove_weight_norm: plain `weight`."""
        out = {}
        for name, m in self.named_modules():
            if hasattr(m, "parametrizations"):
                out[f"{name}.weight"] = m.weight.detach().clone()
                out[f"{name}.bias"] = m.bias.detach().clone()
        return out

    def nvidia_state_dict(self, kernel_order):
        """NVIDIA DLE's nested `resblocks.S.K.*` keys, blocks listed in `kernel_order` (e.g. [11, 7, 3])."""
        sizes = self.h["resblock_kernel_sizes"]
        out = {}
        for k, v in self.legacy_state_dict().items():
            parts = k.split(".")
            if parts[0] == "resblocks":
                n = int(parts[1])
                stage, j = divmod(n, self.nk)
                new_j = kernel_order.index(sizes[j])
                k = ".".join(["resblocks", str(stage), str(new_j)] + parts[2:])
            out[k] = v
        return out
