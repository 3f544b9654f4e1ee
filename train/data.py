"""Training examples for both recipes: (mel, audio segment[, loss-target mel]), as the originals make them.

HiFi-GAN (``front_end="hifigan"``; jik876 ``meldataset.MelDataset``, NVIDIA DeepLearningExamples
``hifigan/data_function.py``): load the wav, peak-normalise it to 0.95 (not when fine-tuning), cut a
random ``segment_size`` segment, and compute the generator's input mel (``fmax``) and the mel-loss
target (``fmax_for_loss``; None = full band) from that very segment. When fine-tuning, the input mel is
read from ``<mels_dir>/<wav stem>.npy`` (e.g. made by a teacher-forced acoustic model) and the audio
segment is cut to match its frames.

WaveGlow (``front_end="tacotron2"``; NVIDIA's ``waveglow/data_function.py`` ``MelAudioLoader``): the
wav as stored (int16 / 32768, no peak normalising), a random segment (zero-padded when the clip is
shorter), and the Tacotron2 mel of that segment (centred STFT: ``S // hop + 1`` frames).

Segment starts are drawn from a generator seeded by (seed, epoch, index), not from a global RNG,
so an epoch is reproducible in any process or DataLoader worker and after a resume.
"""
import math
import os

import numpy as np
import soundfile
import torch
import torch.nn.functional as F

from vocoder_ext.audio import LOG_CLAMP, load_wav, mel_spectrogram, tacotron2_mel_spectrogram
from vocoder_ext.filelist import read_filelist

__all__ = ["DataError", "AudioMelDataset", "AUDIO_KEYS", "FRONT_ENDS", "wav_list"]

AUDIO_KEYS = ("sampling_rate", "n_fft", "num_mels", "hop_size", "win_size", "fmin", "fmax", "fmax_for_loss")
FRONT_ENDS = {"hifigan": AUDIO_KEYS, "tacotron2": AUDIO_KEYS[:-1]}  # -> the audio settings each one reads
PEAK = 0.95  # the recipe's peak level after normalisation
SILENCE_LOG_MEL = math.log(LOG_CLAMP)  # the log-mel of silence


class DataError(ValueError):
    """Bad training data; the message names the file and what was expected vs found."""


class AudioMelDataset(torch.utils.data.Dataset):
    """Items are ``(mel [num_mels, F], audio [1, S], mel_loss [num_mels, F], wav_path)``, float32, F = S // hop
    (front end "hifigan"), or ``(mel [num_mels, S // hop + 1], audio [1, S], wav_path)`` (front end
    "tacotron2": no loss mel).

    Args:
        wav_paths: the utterances (e.g. from :func:`wav_list`).
        h: audio settings with the HiFi-GAN config names in ``FRONT_ENDS[front_end]``.
        segment_size: samples per training segment (HiFi-GAN: a multiple of ``hop_size``, which its
            generator needs; Tacotron2's centred mel fits any length).
        split: cut a random segment (training, validation loss) or use the whole utterance.
        normalize: peak-normalise to 0.95; None (default): as the recipe does (HiFi-GAN: unless
            fine-tuning, as given mels belong to the audio as stored; WaveGlow: never).
        mels_dir: HiFi-GAN fine-tuning: folder of ``<wav stem>.npy`` input mels, shape (num_mels, T) or
            (1, num_mels, T), with ``T = len(audio) // hop + mel_frame_offset``.
        mel_frame_offset: trailing frames the .npy mels carry beyond ``len // hop`` and that are
            dropped (1 for Tacotron2-style centered-STFT mels).
        seed: with the epoch (:meth:`set_epoch`) and the index, fixes every segment start.
        front_end: "hifigan" (HiFi-GAN's mel) or "tacotron2" (Tacotron2's, which WaveGlow trains on).
    """

    def __init__(self, wav_paths, h, segment_size=8192, split=True, normalize=None, mels_dir=None,
                 mel_frame_offset=0, seed=1234, front_end="hifigan"):
        if front_end not in FRONT_ENDS:
            raise ValueError(f"front_end must be one of {sorted(FRONT_ENDS)}, got {front_end!r}")
        missing = [k for k in FRONT_ENDS[front_end] if k not in h]
        if missing:
            raise ValueError(f"audio settings lack {', '.join(missing)}")
        self.front_end = front_end
        self.h = {k: h[k] for k in FRONT_ENDS[front_end]}
        self.hop = self.h["hop_size"]
        if not (isinstance(segment_size, int) and segment_size > 0):
            raise ValueError(f"segment_size must be a positive int, got {segment_size!r}")
        if front_end == "hifigan" and segment_size % self.hop:
            raise ValueError(f"segment_size must be a positive multiple of hop_size {self.hop}, got {segment_size!r}")
        self.wav_paths = [os.fspath(p) for p in wav_paths]
        if not self.wav_paths:
            raise ValueError("no training utterances (wav_paths is empty)")
        if mels_dir is not None and front_end != "hifigan":
            raise ValueError(f"mels_dir: given input mels are read for the hifigan front end only, not {front_end!r}")
        if mels_dir is not None and not os.path.isdir(mels_dir):
            raise ValueError(f"mels_dir {mels_dir} is not a folder")
        if not (isinstance(mel_frame_offset, int) and mel_frame_offset >= 0):
            raise ValueError(f"mel_frame_offset must be an int >= 0, got {mel_frame_offset!r}")
        self.segment_size, self.split = segment_size, split
        self.normalize = (mels_dir is None and front_end == "hifigan") if normalize is None else normalize
        self.mels_dir, self.mel_frame_offset, self.seed = mels_dir, mel_frame_offset, seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Choose the epoch whose segments are drawn (call before each epoch's DataLoader pass)."""
        self.epoch = epoch

    def __len__(self):
        return len(self.wav_paths)

    def __getitem__(self, i):
        path = self.wav_paths[i]
        try:
            audio, _ = load_wav(path, sampling_rate=self.h["sampling_rate"])
        except (FileNotFoundError, ValueError) as e:  # missing, unreadable, not mono, wrong rate
            raise DataError(f"training wav {path}: {str(e).removeprefix('load_wav: ')}") from e
        if self.normalize:
            peak = audio.abs().max()
            if peak > 0:  # an all-zero file stays as it is
                audio = audio / peak * PEAK
        # Seeded per (seed, epoch, item): the same segment in any worker, process or resumed run.
        rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 100_003 + i)
        if self.mels_dir is None:
            audio = self._cut(audio, rng)
            mel = self._mel(audio, path, self.h["fmax"])
        else:
            mel, audio = self._cut_with_mel(audio, path, rng)
        if self.front_end == "tacotron2":
            return mel, audio.unsqueeze(0), path
        return mel, audio.unsqueeze(0), self._mel(audio, path, self.h["fmax_for_loss"]), path

    def _cut(self, audio, rng):
        """The audio to compute mels from: a random segment, or the whole utterance in whole hops."""
        if not self.split:
            return audio[: len(audio) // self.hop * self.hop]
        if len(audio) >= self.segment_size:
            start = _randint(len(audio) - self.segment_size, rng)
            return audio[start: start + self.segment_size]
        return F.pad(audio, (0, self.segment_size - len(audio)))  # short clip: zero-pad, as the recipe does

    def _cut_with_mel(self, audio, path, rng):
        """Fine-tuning: the .npy mel and the audio it belongs to, cut at the same frame."""
        mel = self._load_mel(path, len(audio))
        frames = mel.shape[1]
        audio = audio[: frames * self.hop]  # samples past the last whole frame have no mel frame
        if not self.split:
            if frames == 0:
                raise DataError(f"training wav {path}: too short for one mel frame "
                                f"(need at least {self.hop} samples, found {len(audio)})")
            return mel, audio
        seg_frames = self.segment_size // self.hop
        if frames >= seg_frames:
            start = _randint(frames - seg_frames, rng)
            return mel[:, start: start + seg_frames], audio[start * self.hop: start * self.hop + self.segment_size]
        # Too short for a segment: pad both with silence. The original pads the mel with 0 (a loud
        # log-mel); log(1e-5) is the log-mel that zero audio actually has.
        mel = F.pad(mel, (0, seg_frames - frames), value=SILENCE_LOG_MEL)
        return mel, F.pad(audio, (0, self.segment_size - len(audio)))

    def check_input_mels(self):
        """Fine-tuning: every .npy mel exists and fits its audio, read from file headers before training
        starts (rather than failing in the middle of an epoch)."""
        for path in self.wav_paths if self.mels_dir is not None else ():
            self._load_mel(path, soundfile.info(path).frames, header_only=True)

    def _load_mel(self, path, num_samples, header_only=False):
        """``<mels_dir>/<stem>.npy`` as float32 [num_mels, len // hop], checked against the audio."""
        mel_path = os.path.join(self.mels_dir, os.path.splitext(os.path.basename(path))[0] + ".npy")
        if not os.path.isfile(mel_path):
            raise DataError(f"no input mel {mel_path} for training wav {path}")
        try:
            mel = np.load(mel_path, allow_pickle=False, mmap_mode="r" if header_only else None)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read input mel {mel_path}: {e}") from e
        num_mels = self.h["num_mels"]
        if mel.ndim == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.ndim != 2 or mel.shape[0] != num_mels:
            raise DataError(f"input mel {mel_path}: expected shape ({num_mels}, T) or (1, {num_mels}, T), "
                            f"found {tuple(np.shape(mel))}")
        audio_frames = num_samples // self.hop
        if mel.shape[1] != audio_frames + self.mel_frame_offset:
            raise DataError(
                f"input mel {mel_path} has {mel.shape[1]} frames but its audio {path} has {audio_frames} "
                f"({num_samples} samples // hop {self.hop}); with --mel_frame_offset {self.mel_frame_offset} "
                f"the mel must have {audio_frames + self.mel_frame_offset} (Tacotron2-style centered-STFT "
                f"mels have one extra frame: --mel_frame_offset 1)")
        return None if header_only else torch.from_numpy(mel[:, :audio_frames].astype(np.float32))

    def _mel(self, audio, path, fmax):
        h = self.h
        mel_fn = tacotron2_mel_spectrogram if self.front_end == "tacotron2" else mel_spectrogram
        try:
            return mel_fn(audio, h["n_fft"], h["num_mels"], h["sampling_rate"], self.hop, h["win_size"], h["fmin"],
                          fmax)
        except ValueError as e:  # too short for one frame
            raise DataError(f"training wav {path}: {str(e).removeprefix(mel_fn.__name__ + ': ')}") from e


def wav_list(filelists, root, sampling_rate, flag):
    """Every wav of the filelists, each checked readable, mono and at the expected rate (headers only),
    before training starts rather than in the middle of an epoch. Errors name `flag` and the file."""
    paths = []
    for filelist in filelists:
        try:
            paths += read_filelist(filelist, root)
        except (OSError, ValueError) as e:
            raise DataError(f"{flag}: {e}") from e
    for path in paths:
        try:
            info = soundfile.info(path)
        except Exception as e:
            raise DataError(f"{flag}: cannot read audio file {path}: {e}") from e
        if info.samplerate != sampling_rate or info.channels != 1:
            raise DataError(f"{flag}: {path} is {info.samplerate} Hz with {info.channels} channel(s); expected mono "
                            f"{sampling_rate} Hz audio")
    return paths


def _randint(high, rng):
    """Uniform int in [0, high], from ``rng``."""
    return int(torch.randint(high + 1, (), generator=rng))
