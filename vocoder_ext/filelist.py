"""Filelists: which wavs of a corpus an inference demo or a training run uses.

Two line formats are accepted, so both recipes' filelists work unchanged:

- a wav path, e.g. ``wavs/LJ001-0001.wav`` (NVIDIA DeepLearningExamples), relative to the corpus
  root (absolute paths are kept); anything after a ``|`` (a transcript) is ignored;
- ``<id>|text|normalized text`` (the original HiFi-GAN / LJSpeech ``metadata.csv`` form), meaning
  ``<root>/wavs/<id>.wav``.
"""
import os

__all__ = ["read_filelist"]


def read_filelist(filelist, root):
    """-> the wav paths listed in ``filelist`` (in order), joined to ``root``.

    Raises:
        FileNotFoundError: no such filelist, or a listed wav does not exist (the message names the
            wav, the filelist and the line number).
        ValueError: the filelist has no entries.
    """
    filelist = os.fspath(filelist)
    if not os.path.isfile(filelist):
        raise FileNotFoundError(f"no such filelist: {filelist}")
    paths = []
    with open(filelist, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            entry = line.strip().split("|")[0].strip()
            if not entry:
                continue
            if not entry.lower().endswith(".wav"):
                entry = os.path.join("wavs", entry + ".wav")
            path = os.path.join(os.fspath(root), entry)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no such wav: {path} (listed in {filelist}, line {number})")
            paths.append(path)
    if not paths:
        raise ValueError(f"filelist {filelist} is empty")
    return paths
