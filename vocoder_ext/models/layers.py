"""Conv layers with weight normalization under the original parameter names.

`torch.nn.utils.weight_norm` (deprecated) names the parameters weight_g / weight_v, which is what
original HiFi-GAN checkpoints hold; the fused path needs the effective weight without running the
module. These layers keep both: `.weight` is g * v / ||v|| (norm over every dim but 0) while weight
normalization is on, and a plain parameter after `remove_weight_norm()`.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def reflect_pad(x, padding):
    """x padded by reflection on both ends (SpeechBrain's stride-1 convs), with a clear error when too short."""
    if x.shape[-1] <= padding:
        raise ValueError(f"reflect padding of {padding} steps needs an input longer than {padding} steps, got "
                         f"{x.shape[-1]} (shape {tuple(x.shape)}): this generator pads its convs by reflection, "
                         "so it needs a few more mel frames")
    return F.pad(x, (padding, padding), mode="reflect")


class WNConv1d(nn.Module):
    """Conv1d, or ConvTranspose1d with `transposed=True`, with weight normalization (dim 0).

    padding_mode "reflect" (stride-1 convs only) pads by reflection instead of zeros; bias=False: no bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 transposed=False, output_padding=0, padding_mode="zeros", bias=True):
        super().__init__()
        if padding_mode not in ("zeros", "reflect") or (padding_mode == "reflect" and (transposed or stride != 1)):
            raise ValueError(f"padding_mode: expected 'zeros', or 'reflect' on a stride-1 Conv1d, got {padding_mode!r} "
                             f"(transposed={transposed}, stride={stride})")
        # Build the plain layer for PyTorch's default init (what the original effectively trains from).
        plain = (nn.ConvTranspose1d if transposed else nn.Conv1d)(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=bias)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.transposed = stride, padding, dilation, transposed
        self.output_padding, self.padding_mode = output_padding, padding_mode
        v = plain.weight.detach()
        self.weight_g = nn.Parameter(torch.linalg.vector_norm(v, dim=(1, 2), keepdim=True))
        self.weight_v = nn.Parameter(v.clone())
        self.bias = nn.Parameter(plain.bias.detach().clone()) if bias else None

    @property
    def weight_normed(self):
        return "weight_g" in self._parameters

    @property
    def weight(self):
        if self.weight_normed:
            return torch._weight_norm(self.weight_v, self.weight_g, 0)
        return self._parameters["weight"]

    def remove_weight_norm(self):
        if not self.weight_normed:
            return
        w = self.weight.detach().clone()
        del self._parameters["weight_g"], self._parameters["weight_v"]
        self._parameters["weight"] = nn.Parameter(w)

    def forward(self, x):
        if self.transposed:
            return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)
        if self.padding_mode == "reflect":
            return F.conv1d(reflect_pad(x, self.padding), self.weight, self.bias, self.stride, 0, self.dilation)
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self):
        extra = "".join(f", {name}={value!r}" for name, value, default in (
            ("output_padding", self.output_padding, 0), ("padding_mode", self.padding_mode, "zeros"),
            ("bias", self.bias is not None, True)) if value != default)
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, transposed={self.transposed}{extra}, "
                f"weight_norm={self.weight_normed}")


def remove_weight_norm(module):
    """Fold the weight normalization of every WNConv1d inside `module` into a plain weight; idempotent."""
    for m in module.modules():
        if isinstance(m, WNConv1d):
            m.remove_weight_norm()
    return module
