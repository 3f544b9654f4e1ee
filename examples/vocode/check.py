"""CI's check of examples/vocode: export a seeded V2 generator with `python -m vocoder_ext export --dynamic-frames`,
run the C++ program (built by CMake against libtorch and the op library) on a mel of another length than the
export's example, and compare its wav with the model run in Python (max abs difference <= 1e-5); mels of a
shape the package does not serve must be refused.

    python examples/vocode/check.py cmake-build/vocode
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

from vocoder_ext import HiFiGAN

TOLERANCE = 1e-5


def main(binary):
    with tempfile.TemporaryDirectory(prefix="vocode-check-") as tmp:
        torch.manual_seed(0)
        checkpoint = HiFiGAN("v2").save_pretrained(os.path.join(tmp, "v2.pt"))
        package = os.path.join(tmp, "v2.pt2")
        subprocess.run([sys.executable, "-m", "vocoder_ext", "export", "--checkpoint", checkpoint, "--out", package,
                        "--dynamic-frames", "--frames", "32", "--max-frames", "512"], check=True)
        mel = (torch.randn(80, 57, generator=torch.Generator().manual_seed(1)) - 4).numpy()
        np.save(os.path.join(tmp, "mel.npy"), mel)
        wav = os.path.join(tmp, "out.wav")
        subprocess.run([binary, package, os.path.join(tmp, "mel.npy"), wav], check=True)
        got, rate = sf.read(wav, dtype="float32")
        model = HiFiGAN.from_pretrained(checkpoint).remove_weight_norm().eval()
        with torch.no_grad():
            want = model(torch.from_numpy(mel)[None])[0, 0].numpy()
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        print(f"vocode (C++) vs Python: {got.shape[0]} samples at {rate} Hz, max abs difference {diff:.3g}")
        if got.shape != want.shape or rate != model.sampling_rate or not diff <= TOLERANCE:
            sys.exit(f"examples/vocode differs from Python: shape {got.shape} vs {want.shape}, rate {rate}, "
                     f"max abs difference {diff} (tolerance {TOLERANCE})")
        # a mel the package was not exported for is refused with the shapes, not run
        for shape in ((79, 20), (80, 513)):
            np.save(os.path.join(tmp, "bad.npy"), np.zeros(shape, np.float32))
            bad = subprocess.run([binary, package, os.path.join(tmp, "bad.npy"), wav], capture_output=True, text=True)
            expected = "expected a mel of 80 channels and 1..512 frames"
            if bad.returncode == 0 or expected not in bad.stderr or "frame #" in bad.stderr:
                sys.exit(f"examples/vocode on a {shape} mel: expected a one-line error with '{expected}', got exit "
                         f"{bad.returncode} and stderr {bad.stderr!r}")
        print("vocode refuses mels of the wrong shape")


if __name__ == "__main__":
    main(sys.argv[1])
