#!/usr/bin/env python3
"""Build the small bundled speech corpus in this directory (``data/``).

The corpus is a tiny LJSpeech-style set of short English utterances that is
synthesized completely offline, so it can be shipped with the repository and
regenerated bit-for-bit by anyone.  It is meant for smoke tests, examples and
quick overfitting runs of the vocoder -- not for training a real model.

Required Debian packages (tested on Debian 12 "bookworm")::

    apt-get update && apt-get install -y flite espeak-ng sox

Required Python packages: numpy, soundfile (both in the project's .venv).

Regenerate the whole corpus (from the repository root)::

    .venv/bin/python data/make_corpus.py

What the script does (deterministically -- fixed sentences, fixed voice,
speed and pitch per utterance):

1. synthesizes every sentence below with ``flite`` (voices slt, rms, awb,
   kal16; 16 kHz output) or ``espeak-ng`` (several voices / speeds / pitches;
   22.05 kHz output);
2. converts every file with sox to 22050 Hz, mono, 16 bit, with a 50 Hz
   high-pass (DC removal) and without dither, so runs are reproducible
   (``sox -D in.wav -r 22050 -b 16 -c 1 out.wav highpass 50 rate -v``);
3. trims leading/trailing silence, leaving a 50 ms margin, and peak-normalises
   to -1 dBFS;
4. writes ``wavs/<ID>.wav`` (22050 Hz mono PCM_16), ``metadata.csv``
   (``ID|text|normalized text``, no header, as in LJSpeech) and the file lists
   in ``filelists/``:
   * ``train.txt`` / ``validation.txt``: one ``wavs/<ID>.wav`` per line
     (NVIDIA DeepLearningExamples layout),
   * ``train_ljs.txt`` / ``validation_ljs.txt``: ``ID|text|normalized text``
     (original HiFi-GAN layout).

Everything generated (wavs/, metadata.csv, filelists/) is deleted and rebuilt
on every run.  All sentences were written for this project (original text).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
SAMPLE_RATE = 22050
MARGIN_S = 0.050          # silence kept before the first / after the last sound
TRIM_THRESHOLD_DB = -42.0  # relative to the file's peak
PEAK_DBFS = -1.0
MIN_DUR_S, MAX_DUR_S = 1.0, 6.0

# Voice table.  The ID group (VX001, VX002, ...) identifies the voice, in the
# same spirit as the chapter number in LJSpeech ids (LJ001-0001).
#   key: (group, engine, voice, options)
VOICES = {
    "slt":    ("VX001", "flite", "slt", {}),
    "rms":    ("VX002", "flite", "rms", {}),
    "awb":    ("VX003", "flite", "awb", {}),
    "kal16":  ("VX004", "flite", "kal16", {}),
    "es_us":  ("VX005", "espeak-ng", "en-us", {"speed": 160, "pitch": 50}),
    "es_f3":  ("VX006", "espeak-ng", "en+f3", {"speed": 150, "pitch": 60}),
    "es_m3":  ("VX007", "espeak-ng", "en+m3", {"speed": 170, "pitch": 40}),
    "es_en":  ("VX008", "espeak-ng", "en", {"speed": 140, "pitch": 55}),
}

# (voice key, text, normalized text).  Normalized text is what is spoken;
# it expands numbers and abbreviations exactly like LJSpeech's third column.
# Every sentence is original text written for this repository.
SENTENCES = [
    # --- flite slt -------------------------------------------------------
    ("slt", "The kettle sang on the stove.", None),
    ("slt", "Please close the window.", None),
    ("slt", "She painted the fence pale green.", None),
    ("slt", "Nobody heard the bell at noon.", None),
    ("slt", "A river runs behind the mill.", None),
    ("slt", "We found 3 shells.", "We found three shells."),
    ("slt", "The map was in the glove box.", None),
    ("slt", "His voice was calm.", None),
    ("slt", "Bring a warm coat today.", None),
    ("slt", "The children laughed at the puppet show, "
            "and the puppets bowed.", None),
    ("slt", "Dr. Lane will see you now.", "Doctor Lane will see you now."),
    ("slt", "Thin clouds drifted over the hills.", None),
    ("slt", "Is this the road to the harbor?", None),
    ("slt", "Fresh bread smells wonderful.", None),
    # --- flite rms -------------------------------------------------------
    ("rms", "The train left on time.", None),
    ("rms", "Turn left at the light.", None),
    ("rms", "A heavy box sat by the door.", None),
    ("rms", "The dog chased a ball.", None),
    ("rms", "Keep your receipt, please.", None),
    ("rms", "He fixed the bicycle chain.", None),
    ("rms", "Meet me at 6 by the fountain.", "Meet me at six by the fountain."),
    ("rms", "The soup needs salt.", None),
    ("rms", "Our garden grows beans and squash.", None),
    ("rms", "Thunder rolled across the valley.", None),
    ("rms", "Could you pass the pencil?", None),
    ("rms", "The lamp flickered and went out.", None),
    # --- flite awb -------------------------------------------------------
    ("awb", "The ferry crossed the bay at dawn.", None),
    ("awb", "Rain tapped on the roof.", None),
    ("awb", "The baker shaped the dough by hand.", None),
    ("awb", "Sheep grazed on the slope.", None),
    ("awb", "Write your name at the top of the page, "
            "then turn it over.", None),
    ("awb", "The clock struck 9.", "The clock struck nine."),
    ("awb", "A boat drifted toward the pier.", None),
    ("awb", "Her letter came late.", None),
    ("awb", "The path was very muddy.", None),
    ("awb", "Put the jar on the shelf.", None),
    ("awb", "The fox slipped into the woods.", None),
    ("awb", "Which key opens the shed?", None),
    # --- flite kal16 -----------------------------------------------------
    ("kal16", "The radio played an old song.", None),
    ("kal16", "Check the tires before you drive.", None),
    ("kal16", "The museum opens at ten.", None),
    ("kal16", "Mix the paint with a stick.", None),
    # --- espeak-ng -------------------------------------------------------
    ("es_us", "The market was busy.", None),
    ("es_us", "Water the plants every other day.", None),
    ("es_us", "The printer is out of paper.", None),
    ("es_us", "A bright kite hung above the field.", None),
    ("es_f3", "The cat slept in the sun.", None),
    ("es_f3", "Lock the gate when you leave.", None),
    ("es_f3", "The tea is still too hot.", None),
    ("es_f3", "Snow covered the quiet street.", None),
    ("es_m3", "The engine started on the first try.", None),
    ("es_m3", "Add 2 eggs to the bowl.", "Add two eggs to the bowl."),
    ("es_m3", "The stars were sharp and cold.", None),
    ("es_en", "The owl called from the pine.", None),
    ("es_en", "Save a seat for me, please.", None),
    ("es_en", "The bridge was painted red.", None),
]

# Fixed validation set: a mix of voices (both engines, female and male).
VALIDATION_IDS = [
    "VX001-0005",  # flite slt
    "VX002-0003",  # flite rms
    "VX003-0007",  # flite awb
    "VX004-0002",  # flite kal16
    "VX006-0002",  # espeak-ng en+f3
    "VX007-0003",  # espeak-ng en+m3
]


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def synthesize(voice_key: str, text: str, out_wav: Path) -> None:
    _, engine, voice, opts = VOICES[voice_key]
    if engine == "flite":
        run(["flite", "-voice", voice, "-t", text, "-o", str(out_wav)])
    elif engine == "espeak-ng":
        run(["espeak-ng", "-v", voice, "-s", str(opts["speed"]),
             "-p", str(opts["pitch"]), "-w", str(out_wav), text])
    else:  # pragma: no cover
        raise ValueError(engine)


def resample(in_wav: Path, out_wav: Path) -> None:
    # A gentle 50 Hz high-pass first: some flite voices (rms, awb) carry a
    # slowly varying DC offset during speech that would otherwise leave a
    # step at the start/end of the utterance and defeat silence trimming.
    # -D: no dither.  sox's default TPDF dither is random, which would make
    # the output differ from run to run; the final 16-bit quantisation is
    # done once more after normalisation anyway.
    run(["sox", "-D", str(in_wav), "-r", str(SAMPLE_RATE), "-b", "16",
         "-c", "1", str(out_wav), "highpass", "50", "rate", "-v"])


def trim_and_normalize(x: np.ndarray) -> np.ndarray:
    """Trim silence (keeping MARGIN_S on each side) and peak-normalise."""
    x = x.astype(np.float64)
    peak = np.max(np.abs(x))
    if peak <= 0:
        raise RuntimeError("silent synthesis output")
    # Short-time envelope (10 ms frames) so single clicks do not count.
    frame = int(0.010 * SAMPLE_RATE)
    n_frames = len(x) // frame
    env = np.sqrt(np.mean(x[: n_frames * frame].reshape(n_frames, frame) ** 2,
                          axis=1))
    thr = np.max(env) * 10 ** (TRIM_THRESHOLD_DB / 20)
    active = np.nonzero(env > thr)[0]
    margin = int(round(MARGIN_S * SAMPLE_RATE))
    first, last = active[0] * frame, (active[-1] + 1) * frame
    start = max(0, first - margin)
    end = min(len(x), last + margin)
    # espeak-ng starts speaking at sample 0: pad with digital silence so that
    # every file has the full margin on both sides.
    pad_l = start - (first - margin)
    pad_r = (last + margin) - end
    x = x[start:end]
    # Short fades (5 ms) so the cut points do not click.
    fade = int(0.005 * SAMPLE_RATE)
    ramp = np.linspace(0.0, 1.0, fade)
    x[:fade] *= ramp
    x[-fade:] *= ramp[::-1]
    x = np.concatenate([np.zeros(pad_l), x, np.zeros(pad_r)])
    target = 10 ** (PEAK_DBFS / 20)
    x = x * (target / np.max(np.abs(x)))
    return x


def main() -> int:
    for tool in ("flite", "espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"error: '{tool}' not found; run: "
                     "apt-get install -y flite espeak-ng sox")

    wav_dir = HERE / "wavs"
    list_dir = HERE / "filelists"
    for d in (wav_dir, list_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    meta_path = HERE / "metadata.csv"

    counters: dict[str, int] = {}
    rows = []  # (id, text, normalized, voice_key, duration)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for voice_key, text, norm in SENTENCES:
            norm = norm if norm is not None else text
            group = VOICES[voice_key][0]
            counters[group] = counters.get(group, 0) + 1
            utt_id = f"{group}-{counters[group]:04d}"
            raw = tmp / f"{utt_id}.raw.wav"
            rs = tmp / f"{utt_id}.22k.wav"
            synthesize(voice_key, norm, raw)
            resample(raw, rs)
            x, sr = sf.read(rs, dtype="float64", always_2d=False)
            assert sr == SAMPLE_RATE and x.ndim == 1, (utt_id, sr, x.shape)
            y = trim_and_normalize(x)
            dur = len(y) / SAMPLE_RATE
            if not (MIN_DUR_S <= dur <= MAX_DUR_S):
                raise RuntimeError(f"{utt_id}: duration {dur:.2f}s outside "
                                   f"[{MIN_DUR_S}, {MAX_DUR_S}] s: {text!r}")
            pcm = np.round(y * 32767.0).astype(np.int16)
            sf.write(wav_dir / f"{utt_id}.wav", pcm, SAMPLE_RATE,
                     subtype="PCM_16", format="WAV")
            rows.append((utt_id, text, norm, voice_key, dur))

    ids = [r[0] for r in rows]
    missing = sorted(set(VALIDATION_IDS) - set(ids))
    if missing:
        raise RuntimeError(f"validation ids not in corpus: {missing}")

    def ljs(r):
        return f"{r[0]}|{r[1]}|{r[2]}\n"

    with open(meta_path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(ljs(r) for r in rows)
    train = [r for r in rows if r[0] not in VALIDATION_IDS]
    val = [r for r in rows if r[0] in VALIDATION_IDS]
    for name, subset in (("train", train), ("validation", val)):
        with open(list_dir / f"{name}.txt", "w", encoding="utf-8",
                  newline="\n") as f:
            f.writelines(f"wavs/{r[0]}.wav\n" for r in subset)
        with open(list_dir / f"{name}_ljs.txt", "w", encoding="utf-8",
                  newline="\n") as f:
            f.writelines(ljs(r) for r in subset)

    # Summary.
    total = sum(r[4] for r in rows)
    print(f"corpus written to {HERE}")
    print(f"  utterances : {len(rows)} (train {len(train)}, "
          f"validation {len(val)})")
    print(f"  total audio: {total:.1f} s  (min {min(r[4] for r in rows):.2f} s,"
          f" max {max(r[4] for r in rows):.2f} s, "
          f"mean {total / len(rows):.2f} s)")
    print("  per voice  :")
    for key, (group, engine, voice, opts) in VOICES.items():
        sel = [r for r in rows if r[3] == key]
        if not sel:
            continue
        extra = "".join(f" {k}={v}" for k, v in opts.items())
        print(f"    {group} {engine:9s} {voice:6s}{extra:18s} "
              f"{len(sel):3d} utts {sum(r[4] for r in sel):6.1f} s")
    size = sum(p.stat().st_size for p in wav_dir.iterdir())
    print(f"  wav bytes  : {size} ({size / 1e6:.2f} MB)")
    print(f"  validation : {', '.join(VALIDATION_IDS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
