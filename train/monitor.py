"""What a training run reports (rank 0 only): a tqdm bar, TensorBoard, and a JSON-lines log.

Throughput is stated in audio samples/s and segments/s over all ranks; NVIDIA's script reports
"frames/s" that actually count batch x num_mels, which is why we do not.
"""
import json
import os
import time


LOG_FILE = "train_log.jsonl"
TENSORBOARD_DIR = "tensorboard"


class Monitor:
    """`bar_fields`: {short name: scalar name} of the train scalars shown on the progress bar."""

    def __init__(self, output, total_steps, first_step, enabled=True, bar_fields=None):
        self.enabled, self.bar_fields = enabled, dict(bar_fields or {})
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm
        self.tb = SummaryWriter(os.path.join(output, TENSORBOARD_DIR))
        self.log = open(os.path.join(output, LOG_FILE), "a", encoding="utf-8")
        self.bar = tqdm(total=total_steps, initial=first_step, unit="step", dynamic_ncols=True)

    def event(self, kind, **fields):
        """One JSON line: {"event": kind, "time": unix seconds, **fields}."""
        if self.enabled:
            self.log.write(json.dumps({"event": kind, "time": round(time.time(), 3), **fields}) + "\n")
            self.log.flush()

    def train_step(self, step, epoch, scalars):
        if not self.enabled:
            return
        for name, value in scalars.items():
            self.tb.add_scalar(f"train/{name}", value, step)
        self.event("train", step=step, epoch=epoch, **scalars)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix({short: f"{scalars[name]:.3g}" for short, name in self.bar_fields.items()
                              if name in scalars}, refresh=False)  # (no D loss while the generator warms up)

    def validation(self, step, epoch, metrics, samples=(), sampling_rate=None):
        """metrics: {name: float}; samples: [(name, audio [T], its mel [num_mels, F] or None)] of a few
        utterances, logged as audio (and mel images)."""
        if not self.enabled:
            return
        for name, value in metrics.items():
            self.tb.add_scalar(f"validation/{name}", value, step)
        for name, audio, mel in samples:
            self.tb.add_audio(f"generated/{name}", audio.float().clamp(-1, 1).cpu(), step, sample_rate=sampling_rate)
            if mel is not None:
                self.tb.add_image(f"mel/{name}", mel_image(mel), step, dataformats="HW")
        self.event("validation", step=step, epoch=epoch, **metrics,
                   **({"samples": [name for name, _, _ in samples]} if samples else {}))
        self.bar.write(f"step {step}: validation " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))

    def write(self, message):
        if self.enabled:
            self.bar.write(message)

    def close(self):
        if self.enabled:
            self.bar.close()
            self.tb.close()
            self.log.close()


def mel_image(mel):
    """A log-mel [num_mels, F] as a [0, 1] grayscale image, low frequencies at the bottom."""
    mel = mel.detach().float().cpu()
    lo, hi = mel.min(), mel.max()
    return ((mel - lo) / (hi - lo).clamp(min=1e-5)).flip(0)
