"""`python -m vocoder_ext mel INPUT -o OUT_DIR`: wav file or folder -> log-mel spectrograms, HiFi-GAN's front
end or (--frontend tacotron2) the Tacotron2/WaveGlow one."""
import os

import numpy as np
import torch

from .. import audio
from .common import UserError, list_inputs, progress, stem


FRONTENDS = {"hifigan": audio.mel_spectrogram, "tacotron2": audio.tacotron2_mel_spectrogram}


def add_arguments(p):
    p.add_argument("input", help="a wav file, or a folder (all *.wav in it)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for <stem>.npy / <stem>.pt")
    p.add_argument("--frontend", choices=tuple(FRONTENDS), default="hifigan",
                   help="hifigan: HiFi-GAN's (T // hop frames); tacotron2: Tacotron2's, what WaveGlow was trained "
                        "on (centered STFT, T // hop + 1 frames) (default: hifigan)")
    p.add_argument("--format", choices=("npy", "pt"), default="npy",
                   help="npy: float32 numpy array; pt: a torch tensor (default: npy)")
    p.add_argument("--sampling-rate", type=int, default=22050,
                   help="the rate every file must have; no resampling is done (default: 22050)")
    p.add_argument("--n-fft", type=int, default=1024)
    p.add_argument("--hop-size", type=int, default=256)
    p.add_argument("--win-size", type=int, default=1024)
    p.add_argument("--num-mels", type=int, default=80)
    p.add_argument("--fmin", type=float, default=0.0)
    p.add_argument("--fmax", type=float, default=8000.0)


def run(args):
    files = list_inputs(args.input, (".wav",), "wav")
    os.makedirs(args.output, exist_ok=True)
    for path in progress(files, desc="mel"):
        try:
            y, _ = audio.load_wav(path, sampling_rate=args.sampling_rate)
        except ValueError as e:  # undecodable, not mono, or another sampling rate
            raise UserError(str(e).removeprefix("load_wav: ")) from e
        try:
            mel = FRONTENDS[args.frontend](y, n_fft=args.n_fft, num_mels=args.num_mels,
                                        sampling_rate=args.sampling_rate, hop_size=args.hop_size,
                                        win_size=args.win_size, fmin=args.fmin, fmax=args.fmax)
        except ValueError as e:  # too short for one frame, or inconsistent sizes
            raise UserError(f"cannot compute the mel of {path}: {e}") from e
        out = os.path.join(args.output, f"{stem(path)}.{args.format}")
        if args.format == "npy":
            np.save(out, mel.numpy().astype(np.float32, copy=False))
        else:
            torch.save(mel.contiguous(), out)
