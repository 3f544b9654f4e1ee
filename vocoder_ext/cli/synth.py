"""`python -m vocoder_ext synth INPUT -o OUT_DIR`: mel or wav file or folder -> wav files, with a checkpoint or a
config, on HiFi-GAN (default) or WaveGlow (--vocoder waveglow, --sigma), optionally denoised (--denoise),
optionally computing in bf16 on the CPU (--precision bf16), HiFi-GAN optionally as a stream of chunks (--stream).

A wav is analysed with the model's own features first (HiFiGAN.mel_spectrogram: another toolkit's front end
for its checkpoints; Tacotron2's for WaveGlow), so the output is its resynthesis."""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from .. import audio
from ..models import Denoiser, HiFiGAN, WaveGlow
from ..runtime.precision import precision_context
from ..streaming import Stream
from . import precision
from .common import UserError, choose_device, list_inputs, model_sampling_rate, progress, stem

# A mel frame of silence after log-compression: the value batched mels are padded with.
MEL_PAD_VALUE = math.log(audio.LOG_CLAMP)


# WaveGlow configs by name, for an untrained model: NVIDIA's NGC checkpoint (256) and DLE's default (512).
WAVEGLOW_CONFIGS = {str(c): {"n_mel_channels": 80, "n_flows": 12, "n_group": 8, "n_early_every": 4, "n_early_size": 2,
                             "WN_config": {"n_layers": 8, "n_channels": c, "kernel_size": 3}} for c in (256, 512)}


def add_arguments(p):
    p.add_argument("--vocoder", choices=("hifigan", "waveglow"), default="hifigan",
                   help="which model the checkpoint or config is (default: hifigan)")
    p.add_argument("input", help="a mel file (.npy or .pt, shape (num_mels, T) or (1, num_mels, T)), a wav file "
                                 "(resynthesised from the model's own features), or a folder of them")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder for <stem>.wav")
    p.add_argument("--checkpoint", help="generator checkpoint file or folder (its latest generator)")
    p.add_argument("--config", help="HiFi-GAN: v1 | v2 | v3 | config.json; WaveGlow: 256 | 512 | config.json (NVIDIA's "
                                    "constructor arguments). With --checkpoint, overrides the checkpoint's config; "
                                    "without one, builds an UNTRAINED model (random weights)")
    p.add_argument("--sigma", type=float, help="WaveGlow's noise scale (default: 0.9, NVIDIA's inference default)")
    p.add_argument("--seed", type=int, help="seed of WaveGlow's noise, for a reproducible output")
    p.add_argument("--denoise", type=float, default=0.0, metavar="STRENGTH",
                   help="subtract STRENGTH x the vocoder's bias spectrum (NVIDIA's denoiser; 0.01 is their "
                        "WaveGlow default); 0 = off (default)")
    p.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                   help="run through the fused ops (default) or plain PyTorch layers")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="mels per forward pass (default: 1); shorter ones are padded with silence, which "
                        "can change the last ~receptive field of their audio slightly")
    p.add_argument("--remove-weight-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="fold weight norm into plain weights before inference (default: on)")
    p.add_argument("--inference-padding", action="store_true",
                   help="reproduce Coqui's / SpeechBrain's inference(): replicate-pad the toolkit's inference_padding "
                        "frames (5) on each side and keep the whole, longer audio (HiFi-GAN checkpoints of those "
                        "toolkits only; default: off, the plain generator)")
    precision.add_argument(p, "the vocoder runs")
    p.add_argument("--stream", action="store_true",
                   help="HiFi-GAN: vocode each mel as a stream of --chunk-frames pieces, as a TTS service would "
                        "(vocoder_ext.stream): with the default lookahead the wav equals the one without --stream")
    p.add_argument("--chunk-frames", type=int, default=32, help="--stream: mel frames per chunk (default: 32)")
    p.add_argument("--lookahead-frames", type=int,
                   help="--stream: frames of right context to wait for (default: the model's exact right "
                        "context, vocoder_ext.receptive_field; fewer: lower latency, approximate audio)")


def load_mel(path, num_mels):
    """A mel file -> float32 tensor [num_mels, frames].

    .npy (no pickles) or .pt (torch.load(weights_only=True), a bare tensor), holding
    [num_mels, frames] or [1, num_mels, frames] floating-point values."""
    try:
        if path.lower().endswith(".npy"):
            mel = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            mel = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # numpy and torch raise many kinds on a corrupt or foreign file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"cannot read mel file {path}: {reason}") from e
    if not isinstance(mel, torch.Tensor):
        raise UserError(f"mel file {path}: expected a tensor, got a {type(mel).__name__}")
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2 or mel.shape[0] != num_mels or mel.shape[1] == 0:
        raise UserError(f"mel file {path}: expected shape ({num_mels}, frames) or (1, {num_mels}, frames), "
                        f"got {tuple(mel.shape)}")
    if not mel.is_floating_point():
        raise UserError(f"mel file {path}: expected floating-point values, got dtype {mel.dtype}")
    if not bool(torch.isfinite(mel).all()):
        raise UserError(f"mel file {path}: contains NaN or inf values")
    return mel.float()


def load_model(vocoder, checkpoint, config, fused):
    """From a checkpoint (config overrides its own), else an UNTRAINED model of `config`, with a warning."""
    if vocoder == "waveglow":
        config = _waveglow_config(config)
        if checkpoint:
            return WaveGlow.from_pretrained(checkpoint, fused=fused, config=config)
        if config is None:
            raise UserError("give --checkpoint PATH (a trained WaveGlow), or --config 256|512|file.json for an "
                            "untrained one")
        model = WaveGlow(**config, fused=fused)
    else:
        if checkpoint:
            return HiFiGAN.from_pretrained(checkpoint, fused=fused, config=config)
        if not config:
            raise UserError("give --checkpoint PATH (a trained generator), or --config v1|v2|v3|file.json "
                            "for an untrained model")
        model = HiFiGAN(config, fused=fused)  # first, so a bad config fails before the warning
    print(f"warning: no --checkpoint: the model ({config}) is UNTRAINED (random weights), "
          f"so the audio will be noise", file=sys.stderr)
    return model


def _waveglow_config(config):
    if config is None or config in WAVEGLOW_CONFIGS:
        return WAVEGLOW_CONFIGS.get(config)
    try:
        with open(config) as f:
            loaded = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"--config {config}: expected 256, 512 or a JSON file of WaveGlow's constructor "
                        f"arguments ({e})") from e
    loaded = loaded.get("waveglow_config", loaded) if isinstance(loaded, dict) else loaded  # NVIDIA/waveglow's config.json
    if not isinstance(loaded, dict):
        raise UserError(f"--config {config}: expected a JSON object, got {type(loaded).__name__}")
    return loaded


def mel_channels(model):
    return model.n_mel_channels if isinstance(model, WaveGlow) else model.config["num_mels"]


def analyse_wav(path, model):
    """A wav at the model's sample rate -> its features [num_mels, frames] (the model's own front end)."""
    try:
        wav, _ = audio.load_wav(path, sampling_rate=model_sampling_rate(model))
    except ValueError as e:  # undecodable, not mono, or another sampling rate than the model's
        raise UserError(f"{str(e).removeprefix('load_wav: ')} (the model's sample rate)") from e
    try:
        if isinstance(model, WaveGlow):
            return audio.tacotron2_mel_spectrogram(wav, sampling_rate=model_sampling_rate(model)).float()
        return model.mel_spectrogram(wav)[0].float()
    except ValueError as e:  # too short, or the toolkit's features are not fully known
        raise UserError(f"cannot compute the features of {path}: {e}") from e


def load_input(path, model):
    return analyse_wav(path, model) if path.lower().endswith(".wav") else load_mel(path, mel_channels(model))


def silence_frame(model):
    """The model's features of silence, one [num_mels, 1] column: what shorter mels of a batch are padded with."""
    if isinstance(model, WaveGlow) or model.features is None:
        return torch.full((mel_channels(model), 1), MEL_PAD_VALUE)
    frames = model.mel_spectrogram(torch.zeros(1, 16 * model.hop_length))
    return frames[0, :, frames.shape[-1] // 2:][:, :1].float().cpu()


def run(args):
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    precision.check_device(args.precision, args.device)
    device = choose_device(args.device)
    files = list_inputs(args.input, (".npy", ".pt", ".wav"), "mel or wav")
    for path in files:
        if not path.lower().endswith((".npy", ".pt", ".wav")):
            raise UserError(f"input file {path}: expected a mel (.npy or .pt) or a .wav file")
    stems = [stem(p) for p in files]
    if len(set(stems)) != len(stems):  # a.npy and a.pt would both write a.wav
        clash = sorted({s for s in stems if stems.count(s) > 1})
        raise UserError(f"several mel files share a name, so their wavs would overwrite each other: {clash}")

    if args.sigma is not None and (args.vocoder != "waveglow" or args.sigma < 0):
        raise UserError(f"--sigma {args.sigma}: a WaveGlow noise scale >= 0 (with --vocoder waveglow)")
    if args.seed is not None and args.vocoder != "waveglow":
        raise UserError("--seed sets WaveGlow's noise (with --vocoder waveglow); HiFi-GAN is deterministic")
    if not args.denoise >= 0:
        raise UserError(f"--denoise must be >= 0, got {args.denoise}")
    if args.inference_padding and args.vocoder != "hifigan":
        raise UserError("--inference-padding reproduces Coqui's / SpeechBrain's HiFi-GAN inference (not WaveGlow's)")

    if args.stream and (args.vocoder != "hifigan" or args.inference_padding or args.denoise > 0):
        raise UserError("--stream vocodes HiFi-GAN's plain generator (not WaveGlow, --inference-padding or --denoise)")
    if not args.stream and (args.chunk_frames != 32 or args.lookahead_frames is not None):
        raise UserError("--chunk-frames and --lookahead-frames go with --stream")
    model = load_model(args.vocoder, args.checkpoint, args.config, args.fused)
    if args.remove_weight_norm:
        model.remove_weight_norm()
    model.eval()
    if args.inference_padding:
        try:
            model.inference_padding
        except ValueError as e:
            raise UserError(f"--inference-padding: {e}") from e
    # Read (or analyse) every input first, so a bad file stops the run before any synthesis.
    with torch.inference_mode():
        mels = [load_input(p, model) for p in files]
        lengths = {m.shape[1] for m in mels}
        pad_value = silence_frame(model) if args.batch_size > 1 and len(lengths) > 1 else None
    model.to(device)
    denoiser = Denoiser(model, args.denoise) if args.denoise > 0 else None
    if args.seed is not None:
        torch.manual_seed(args.seed)
    sigma = 0.9 if args.sigma is None else args.sigma
    os.makedirs(args.output, exist_ok=True)
    sampling_rate = model_sampling_rate(model)
    with torch.inference_mode(), precision_context(args.precision), progress(total=len(files), desc="synth") as bar:
        if args.stream:
            for i, mel in enumerate(mels):
                audio.save_wav(os.path.join(args.output, f"{stems[i]}.wav"), streamed(mel, model, device, args),
                               sampling_rate)
                bar.update(1)
            return
        for batch in length_sorted_batches(mels, args.batch_size):
            for i, wav in zip(batch, vocode([mels[i] for i in batch], model, device, sigma, denoiser, pad_value,
                                            args.inference_padding)):
                audio.save_wav(os.path.join(args.output, f"{stems[i]}.wav"), wav, sampling_rate)
            bar.update(len(batch))


def streamed(mel, model, device, args):
    """[num_mels, frames] -> float32 CPU audio [frames * hop], the mel fed to vocoder_ext.stream in pieces of
    --chunk-frames frames, as they would arrive from an acoustic model."""
    try:
        state = Stream(model, args.chunk_frames, args.lookahead_frames)
    except ValueError as e:
        raise UserError(f"--stream: {e}") from e
    pieces = [state.push(piece) for piece in torch.split(mel[None].to(device), args.chunk_frames, 2)]
    return torch.cat(pieces + [state.flush()], 2)[0, 0].float().cpu()


def length_sorted_batches(mels, batch_size):
    """Index batches, longest mels first: neighbours in length waste the least padding."""
    order = sorted(range(len(mels)), key=lambda i: mels[i].shape[1], reverse=True)
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def vocode(mels, model, device, sigma=0.9, denoiser=None, pad_value=None, inference_padding=False):
    """[num_mels, frames_i] mels -> float32 CPU audio [frames_i * hop] each, in one forward pass
    (inference_padding: [(frames_i + 2 * pad) * hop], the toolkit's untrimmed inference).

    Shorter mels are padded with silence (pad_value: a [num_mels, 1] column, else the log of the clamp
    floor) and their audio cut back. The generator is not causal, so the last ~receptive field of a
    padded item's audio differs slightly from running it alone."""
    if inference_padding:  # each mel its own replicated edges, before any batch padding
        mels = [F.pad(m[None], (model.inference_padding,) * 2, mode="replicate")[0] for m in mels]
    longest = max(m.shape[1] for m in mels)
    column = torch.full((mels[0].shape[0], 1), MEL_PAD_VALUE) if pad_value is None else pad_value
    batch = torch.stack([torch.cat([m, column.expand(-1, longest - m.shape[1])], 1) for m in mels]).to(device)
    out = model.infer(batch, sigma) if isinstance(model, WaveGlow) else model(batch)[:, 0]
    if denoiser is not None:
        out = denoiser(out)
    out = out.float().cpu()
    return [out[i, :m.shape[1] * model.hop_length] for i, m in enumerate(mels)]
