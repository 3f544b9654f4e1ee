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
    def __init__(self, output, total_steps, first_step, enabled=True):
        self.enabled = enabled
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
        self.bar.set_postfix(g=f"{scalars['loss_gen_all']:.2f}", d=f"{scalars['loss_disc_all']:.2f}",
                             mel=f"{scalars['mel_l1']:.3f}", refresh=False)

    def validation(self, step, epoch, mel_l1, samples, sampling_rate):
        """samples: [(name, generated audio [T], its mel [num_mels, F])] of a few utterances."""
        if not self.enabled:
            return
        self.tb.add_scalar("validation/mel_l1", mel_l1, step)
        for name, audio, mel in samples:
            self.tb.add_audio(f"generated/{name}", audio.clamp(-1, 1).cpu(), step, sample_rate=sampling_rate)
            self.tb.add_image(f"mel/{name}", mel_image(mel), step, dataformats="HW")
        self.event("validation", step=step, epoch=epoch, mel_l1=mel_l1)
        self.bar.write(f"step {step}: validation mel L1 {mel_l1:.4f}")

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
