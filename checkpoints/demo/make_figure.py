"""Draw checkpoints/demo/spectrogram.png: one validation utterance's log-mel, the original (top) above the demo
generator's resynthesis of it (bottom), same scale. Run from the repository root:

    python checkpoints/demo/make_figure.py [--utterance data/wavs/X.wav] [--checkpoint checkpoints/demo]

Writes the PNG with zlib alone (no plotting library): 80 mel bins (low at the bottom) x frames, each cell
3 x 2 pixels, a 6-pixel white gap between the panels; colour from black through purple and orange to yellow
over the top 80 dB of the original's range.
"""
import argparse
import struct
import zlib

import numpy as np
import torch

from vocoder_ext import HiFiGAN
from vocoder_ext.audio import load_wav

# (position, RGB) anchors of the colour ramp, dark to bright
RAMP = [(0.0, (0, 0, 4)), (0.3, (80, 18, 123)), (0.55, (182, 54, 121)), (0.8, (251, 136, 97)), (1.0, (252, 253, 191))]


def colour(values):
    """[H, W] in 0..1 -> [H, W, 3] uint8 along RAMP."""
    pos = np.array([p for p, _ in RAMP])
    rgb = np.array([c for _, c in RAMP], dtype=np.float64)
    return np.stack([np.interp(values, pos, rgb[:, i]) for i in range(3)], axis=-1).round().astype(np.uint8)


def write_png(path, image):
    """image: [H, W, 3] uint8 -> an RGB PNG file."""
    h, w, _ = image.shape
    raw = b"".join(b"\x00" + image[row].tobytes() for row in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--utterance", default="data/wavs/VX001-0005.wav")
    p.add_argument("--checkpoint", default="checkpoints/demo")
    p.add_argument("--out", default="checkpoints/demo/spectrogram.png")
    args = p.parse_args()
    model = HiFiGAN.from_pretrained(args.checkpoint).eval()
    audio, sr = load_wav(args.utterance)
    audio = torch.as_tensor(audio, dtype=torch.float32)
    with torch.no_grad():
        mel = model.mel_spectrogram(audio[None], sample_rate=sr)
        resynth = model(mel)[:, 0]
        mels = [model.mel_spectrogram(a, sample_rate=sr)[0].numpy() for a in (audio[None], resynth)]
    frames = min(m.shape[1] for m in mels)
    top = mels[0][:, :frames].max()
    low = top - np.log(10.0) * 80 / 20  # the log-mels are natural-log amplitudes: 80 dB below the peak
    panels = [colour(np.clip((m[::-1, :frames] - low) / (top - low), 0, 1)).repeat(3, 0).repeat(2, 1) for m in mels]
    gap = np.full((6, panels[0].shape[1], 3), 255, dtype=np.uint8)
    write_png(args.out, np.concatenate([panels[0], gap, panels[1]]))
    l1 = float(np.abs(mels[0][:, :frames] - mels[1][:, :frames]).mean())
    print(f"wrote {args.out}: {args.utterance}, {frames} frames, mel L1 (input-mel front end) {l1:.3f}")


if __name__ == "__main__":
    main()
