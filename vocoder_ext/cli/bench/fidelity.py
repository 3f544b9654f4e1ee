"""The `fidelity` section of the bench (--fidelity): how far bf16 compute moves the generator's audio.

Models: the demo checkpoint (the newest generator in checkpoints/demo/, trained; skipped where absent) and a
random-weight model of each --configs (seeded with --seed, weight norm removed, as in the e2e section).
Each vocodes every utterance of data/filelists/validation.txt (--fidelity-utterances: the first N), analysed
with the model's own `mel_spectrogram`, at fp32 on the fused path (the reference: exact, equal to eager to
~1e-7) and at bf16 three ways:

  fused_bf16          the fused fp32 model inside compute_in_bf16() (our kernels: bf16 products, fp32 sums;
                      activations stay fp32 between layers)
  fused_bf16_tensors  the fused model .to(torch.bfloat16) fed a bf16 mel (our kernels on bf16 tensors:
                      activations rounded to bf16 between layers)
  eager_bf16          PyTorch's bf16: the eager model .to(torch.bfloat16) fed a bf16 mel

Per model and variant: the SNR of the bf16 audio against the fp32 audio (min and mean over the utterances,
dB), and the mean L1 between their log-mels: train.hifigan's validation mel (vocoder_ext.audio.mel_spectrogram
at the config's fmax_for_loss). For scale, the fp32 audio's mel L1 against the recording's, the recipe's
validation mel L1 (only the trained checkpoint's means anything). The log-mel clamps at 1e-5, so the
mel L1 between bf16 and fp32 audio comes mostly from near-silent bins that bf16's error floor (~50 dB
below the signal) lifts off the clamp; elsewhere the two log-mels agree far more closely.
"""
import copy
import os
import statistics

import torch
import torch.nn.functional as F

from ... import audio
from ...checkpoint.hifigan import latest_generator_file
from ...filelist import read_filelist
from ...models.config import AUDIO_DEFAULTS
from ...models.hifigan import HiFiGAN
from ...runtime.precision import compute_in_bf16
from ..common import UserError, stem
from ..demo import DEFAULT_CHECKPOINT
from ..precision import bf16_kernels, snr_db
from .timing import fmt, log, table

DEMO_FOLDER = DEFAULT_CHECKPOINT  # the folder `make demo` reads
DATA = "data"
FILELIST = os.path.join(DATA, "filelists", "validation.txt")
VARIANTS = ("fused_bf16", "fused_bf16_tensors", "eager_bf16")


def demo_checkpoint():
    """The demo generator `make demo` uses (the newest in checkpoints/demo/), or None where there is none."""
    try:
        return latest_generator_file(DEMO_FOLDER)
    except FileNotFoundError:
        return None


def fidelity_section(configs, settings):
    try:
        wavs = read_filelist(FILELIST, DATA)[:settings["fidelity_utterances"]]
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--fidelity needs the bundled corpus (run from the repo root): {e}") from e
    rows = []
    checkpoint = demo_checkpoint()
    if checkpoint:
        model = HiFiGAN.from_pretrained(checkpoint, fused=True).remove_weight_norm().eval()
        rows += model_rows("demo checkpoint", checkpoint, model, wavs)
    else:
        rows.append({"model": "demo checkpoint", "source": DEMO_FOLDER,
                     "status": f"skipped: no generator in {DEMO_FOLDER}/"})
    for name, h in configs:
        torch.manual_seed(settings["seed"])
        model = HiFiGAN(h, fused=True).remove_weight_norm().eval()
        rows += model_rows(f"{name} (random)", f"seed {settings['seed']}", model, wavs)
    return {"filelist": FILELIST, "utterances": [stem(w) for w in wavs], "bf16_kernels": bf16_kernels(),
            "rows": rows}


@torch.inference_mode()
def model_rows(label, source, model, wavs):
    """-> one row per bf16 variant of `model`, over every wav."""
    log(f"fidelity: {label}, {len(wavs)} utterance(s)")
    eager = copy.deepcopy(model)
    eager.fused = False
    bf16 = {"fused_bf16_tensors": copy.deepcopy(model).to(torch.bfloat16), "eager_bf16": eager.to(torch.bfloat16)}
    h = {**AUDIO_DEFAULTS, **model.config}
    per_variant = {v: [] for v in VARIANTS}
    recording_l1, audio_s = [], 0.0
    for path in wavs:
        try:
            wav, _ = audio.load_wav(path, sampling_rate=model.sampling_rate)
            mel = model.mel_spectrogram(wav).float()
        except ValueError as e:  # another rate than the model's, or too short for one frame
            raise UserError(f"--fidelity: cannot make the mel of {path} for {label}: {e}") from e
        reference = model(mel)[0, 0]
        with compute_in_bf16():
            outputs = {"fused_bf16": model(mel)[0, 0]}
        for variant, bf16_model in bf16.items():
            outputs[variant] = bf16_model(mel.to(torch.bfloat16))[0, 0].float()
        reference_mel = loss_mel(reference, h)
        recording_l1.append(F.l1_loss(reference_mel, loss_mel(wav[..., :reference.numel()], h)).item())
        audio_s += reference.numel() / model.sampling_rate
        for variant, y in outputs.items():
            per_variant[variant].append({"utterance": stem(path), "snr_db": snr_db(y, reference),
                                         "mel_l1": F.l1_loss(loss_mel(y, h), reference_mel).item()})
    rows = []
    for variant, utterances in per_variant.items():
        snrs = [u["snr_db"] for u in utterances]
        exact = any(v is None for v in snrs)  # bit-identical somewhere: no finite mean or minimum to give
        rows.append({"model": label, "source": source, "variant": variant, "status": "ok",
                     "utterances": len(utterances), "audio_s": audio_s,
                     "snr_db_min": None if exact else min(snrs),
                     "snr_db_mean": None if exact else statistics.mean(snrs),
                     "mel_l1_mean": statistics.mean(u["mel_l1"] for u in utterances),
                     "fp32_mel_l1_vs_recording": statistics.mean(recording_l1), "per_utterance": utterances})
    return rows


def loss_mel(y, h):
    """train.hifigan's mel of generated audio (its loss_mel): HiFi-GAN's log-mel up to fmax_for_loss."""
    return audio.mel_spectrogram(y.float().reshape(1, -1), h["n_fft"], h["num_mels"], h["sampling_rate"],
                                 h["hop_size"], h["win_size"], h["fmin"], h["fmax_for_loss"])


def render_fidelity(section, s):
    body = []
    for r in section["rows"]:
        if r["status"] != "ok":
            body.append([r["model"], r["status"], "", "", "", "", "", ""])
            continue
        body.append([r["model"], r["variant"], r["utterances"], fmt(r["audio_s"]), db_cell(r["snr_db_min"]),
                     db_cell(r["snr_db_mean"]), fmt(r["mel_l1_mean"]), fmt(r["fp32_mel_l1_vs_recording"])])
    note = ("" if section["bf16_kernels"] else " This CPU has no AVX512_BF16 (or VOCODER_EXT_CPU_ISA is below it): "
            "our kernels compute fused_bf16 and fused_bf16_tensors in fp32.")
    return "\n".join([
        f"## Fidelity: bf16 vs fp32 audio, {len(section['utterances'])} utterance(s) of {section['filelist']}",
        "",
        "Weight norm removed, eval; mel = the model's own mel_spectrogram of the recording. Reference: the fused "
        "model at fp32. fused_bf16 = the fused fp32 model inside compute_in_bf16() (bf16 products, fp32 sums); "
        "fused_bf16_tensors = the fused model .to(torch.bfloat16), bf16 mel; eager_bf16 = PyTorch's bf16, the "
        "eager model .to(torch.bfloat16), bf16 mel. SNR = 10 log10(sum ref^2 / sum (y - ref)^2) per utterance "
        "(exact: identical); mel L1 = mean |log-mel(y) - log-mel(ref)|, train.hifigan's validation mel "
        "(fmax_for_loss); fp32 mel L1 vs recording = the recipe's validation mel L1 of the reference, for scale "
        "(noise for random weights). Near-silent bins, clamped at log(1e-5) in the reference, dominate the mel L1 "
        "vs fp32: bf16's error floor lifts them off the clamp." + note,
        "",
        table(["model", "variant", "utterances", "audio s", "SNR min dB", "SNR mean dB", "mel L1 vs fp32",
               "fp32 mel L1 vs recording"], body),
    ])


def db_cell(value):
    return "exact" if value is None else f"{value:.1f}"
