"""HiFi-GAN generator options beyond the original's config keys: what other toolkits' generators need.

Kept apart from models/config.py so the checkpoint readers (below the models in the import graph) can
read a config's options without importing the models.
"""

# Generator options other toolkits' HiFi-GANs need, with the original's values as defaults (None: derived
# per stage, (k - u) // 2 and 0). ParallelWaveGAN/ESPnet pad odd-scale upsamplers u//2 + 1 with output_padding
# 1, size conv_pre/conv_post by `kernel_size`, and may drop biases; SpeechBrain reflect-pads its stride-1
# convs; Coqui may drop conv_post's bias.
OPTIONS = {"upsample_paddings": None, "upsample_output_paddings": None, "padding_mode": "zeros",
           "conv_pre_kernel_size": 7, "conv_post_kernel_size": 7,
           "conv_pre_bias": True, "upsample_bias": True, "resblock_bias": True, "conv_post_bias": True}
PADDING_MODES = ("zeros", "reflect")


def option(h, key):
    """A generator option of config `h` (OPTIONS' default where absent), per-stage lists filled in."""
    value = h.get(key, OPTIONS[key])
    if value is None and key == "upsample_paddings":
        return [(k - u) // 2 for u, k in zip(h["upsample_rates"], h["upsample_kernel_sizes"])]
    if value is None and key == "upsample_output_paddings":
        return [0] * len(h["upsample_rates"])
    return value
