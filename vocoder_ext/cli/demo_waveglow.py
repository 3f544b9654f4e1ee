"""The demo's WaveGlow row: NVIDIA's WaveGlow (256 channels by default) with RANDOM weights -- no trained
WaveGlow ships with the package -- on the first second of the first utterance's Tacotron2 mel, fused vs eager with the same
noise z, so the user sees the second vocoder run and both paths agree. Its zero-initialised `end` layers
are randomised too (small), or every coupling would be the identity and the WN stacks would not matter."""
import os

import torch

from .. import audio
from ..models import WaveGlow
from .common import DEFAULT_SAMPLING_RATE, UserError, stem

SIGMA = 0.9  # NVIDIA's inference default
MAX_FRAMES = 86  # ~1 s of audio: a 256-channel WaveGlow runs at ~0.3x real time on 2 CPU cores


def build_waveglow(channels, seed):
    with torch.random.fork_rng():  # seed only this model, not the caller's random stream
        torch.manual_seed(seed)
        model = WaveGlow(WN_config={"n_layers": 8, "n_channels": channels, "kernel_size": 3})
        for wn in model.WN:
            torch.nn.init.normal_(wn.end.weight, std=0.02)
            torch.nn.init.normal_(wn.end.bias, std=0.02)
    return model.remove_weight_norm().eval()


@torch.inference_mode()
def waveglow_row(path, channels, device, out_dir, repeats, seed, timed):
    """Vocode `path`'s Tacotron2 mel on both paths; write both wavs; -> one table row.
    `timed(fn, device, repeats)` -> (output, median seconds) is the demo's timer."""
    model = build_waveglow(channels, seed).to(device)
    try:
        y, _ = audio.load_wav(path, sampling_rate=DEFAULT_SAMPLING_RATE)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"cannot make the mel of {path}: {str(e).removeprefix('load_wav: ')}") from e
    mel = audio.tacotron2_mel_spectrogram(y)[:, :MAX_FRAMES].unsqueeze(0).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(model.noise_shape(mel), generator=generator, device=device)
    outputs = {}
    for fused in (True, False):
        model.fused = fused
        outputs[fused] = timed(lambda: model.infer(mel, SIGMA, z)[0].float().cpu(), device, repeats)
    name = stem(path)
    for fused, (wav, _) in outputs.items():
        peak = wav.abs().max().clamp(min=1e-9)  # random weights: scale into [-1, 1] to write the file
        audio.save_wav(os.path.join(out_dir, f"{name}_waveglow_{'fused' if fused else 'eager'}.wav"),
                       wav / peak * 0.95, DEFAULT_SAMPLING_RATE)
    (fused_audio, fused_s), (eager_audio, eager_s) = outputs[True], outputs[False]
    return {"utterance": name, "vocoder": f"WaveGlow {channels} ch, UNTRAINED (random weights), sigma {SIGMA}",
            "audio_s": fused_audio.numel() / DEFAULT_SAMPLING_RATE, "fused_s": fused_s, "eager_s": eager_s,
            "max_abs_diff": (fused_audio - eager_audio).abs().max().item()}
