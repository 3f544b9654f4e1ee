"""`python -m vocoder_ext mel INPUT -o OUT_DIR`: wav file or folder -> log-mel spectrograms: HiFi-GAN's front
end, (--frontend tacotron2) the Tacotron2/WaveGlow one, or (--checkpoint) exactly the features that HiFi-GAN
checkpoint was trained on (another toolkit's front end for its files)."""
import os

import numpy as np
import torch

from .. import audio
from ..models import HiFiGAN
from .common import UserError, list_inputs, progress, stem


FRONTENDS = {"hifigan": audio.mel_spectrogram, "tacotron2": audio.tacotron2_mel_spectrogram}
# The front-end settings and their defaults (HiFi-GAN's LJSpeech ones); --checkpoint fixes them all.
SETTINGS = {"frontend": "hifigan", "sampling_rate": 22050, "n_fft": 1024, "hop_size": 256, "win_size": 1024,
            "num_mels": 80, "fmin": 0.0, "fmax": 8000.0}


def add_arguments(p):
    p.add_argument("input", help="a wav file, or a folder (all *.wav in it)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for <stem>.npy / <stem>.pt")
    p.add_argument("--checkpoint", help="a HiFi-GAN checkpoint (any format HiFiGAN.from_pretrained reads): write "
                                        "the features that model expects, its toolkit's front end exactly; the "
                                        "settings below then come from the checkpoint")
    p.add_argument("--frontend", choices=tuple(FRONTENDS),
                   help="hifigan: HiFi-GAN's (T // hop frames); tacotron2: Tacotron2's, what WaveGlow was trained "
                        "on (centered STFT, T // hop + 1 frames) (default: hifigan)")
    p.add_argument("--format", choices=("npy", "pt"), default="npy",
                   help="npy: float32 numpy array; pt: a torch tensor (default: npy)")
    p.add_argument("--sampling-rate", type=int,
                   help="the rate every file must have; no resampling is done (default: 22050, or the checkpoint's)")
    for name in ("n_fft", "hop_size", "win_size", "num_mels"):
        p.add_argument("--" + name.replace("_", "-"), type=int, help=f"default: {SETTINGS[name]}")
    p.add_argument("--fmin", type=float, help=f"default: {SETTINGS['fmin']}")
    p.add_argument("--fmax", type=float, help=f"default: {SETTINGS['fmax']}")


def _features_of(args):
    """-> (sampling rate, wav [T] -> mel [num_mels, frames])."""
    given = [name for name in SETTINGS if getattr(args, name) is not None]
    if args.checkpoint:
        if given:
            raise UserError(f"--checkpoint fixes the features (its toolkit's front end); drop "
                            f"{', '.join('--' + n.replace('_', '-') for n in given)}")
        model = HiFiGAN.from_pretrained(args.checkpoint, fused=False)  # CheckpointError: a user error
        return model.sampling_rate, lambda y: model.mel_spectrogram(y)[0]
    s = {name: getattr(args, name) if getattr(args, name) is not None else SETTINGS[name] for name in SETTINGS}
    frontend = FRONTENDS[s.pop("frontend")]
    return s["sampling_rate"], lambda y: frontend(y, **s)


def run(args):
    files = list_inputs(args.input, (".wav",), "wav")
    sampling_rate, features = _features_of(args)
    os.makedirs(args.output, exist_ok=True)
    for path in progress(files, desc="mel"):
        try:
            y, _ = audio.load_wav(path, sampling_rate=sampling_rate)
        except ValueError as e:  # undecodable, not mono, or another sampling rate
            raise UserError(str(e).removeprefix("load_wav: ")) from e
        try:
            with torch.inference_mode():
                mel = features(y)
        except ValueError as e:  # too short for one frame, inconsistent sizes, or unknown toolkit settings
            raise UserError(f"cannot compute the mel of {path}: {e}") from e
        out = os.path.join(args.output, f"{stem(path)}.{args.format}")
        if args.format == "npy":
            np.save(out, mel.numpy().astype(np.float32, copy=False))
        else:
            torch.save(mel.float().contiguous(), out)
