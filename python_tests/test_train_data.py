"""train/data.py (the HiFi-GAN training dataset) and vocoder_ext/filelist.py."""
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

from train.data import AudioMelDataset, DataError
from vocoder_ext.audio import load_wav, mel_spectrogram, save_wav
from vocoder_ext.filelist import read_filelist

DATA = REPO / "data"
SR, HOP, SEG = 22050, 256, 8192
H = {"sampling_rate": SR, "n_fft": 1024, "num_mels": 80, "hop_size": HOP, "win_size": 1024,
     "fmin": 0, "fmax": 8000, "fmax_for_loss": None}


def make_wav(path, samples, sr=SR, peak=0.5):
    """A fresh random wav (noise plus a sine of random pitch) -> the samples as load_wav returns them."""
    t = torch.arange(samples) / sr
    y = 0.3 * torch.randn(samples) + torch.sin(2 * torch.pi * (100 + 900 * torch.rand(())) * t)
    save_wav(path, y / y.abs().max() * peak, sr)
    return load_wav(path)[0]


def mel_of(audio, fmax=8000):
    return mel_spectrogram(audio, 1024, 80, SR, HOP, 1024, 0, fmax)


def ds(paths, **kw):
    return AudioMelDataset([str(p) for p in paths], H, **kw)


# ---- filelists ------------------------------------------------------------------------------
@pytest.fixture
def corpus(tmp_path):
    for name in ("A-1", "A-2"):
        make_wav(tmp_path / "wavs" / f"{name}.wav", 3000)
    return tmp_path


def test_filelist_both_formats(corpus):
    (corpus / "plain.txt").write_text(f"wavs/A-1.wav\n\n  \n{corpus / 'wavs' / 'A-2.wav'}\n")
    (corpus / "ljs.txt").write_text("A-1|Some text.|Some text.\nA-2|More.|More.\n")
    expected = [str(corpus / "wavs" / "A-1.wav"), str(corpus / "wavs" / "A-2.wav")]
    assert read_filelist(corpus / "plain.txt", corpus) == expected  # relative and absolute paths
    assert read_filelist(corpus / "ljs.txt", corpus) == expected


def test_filelist_errors(corpus):
    with pytest.raises(FileNotFoundError, match="none.txt"):
        read_filelist(corpus / "none.txt", corpus)
    (corpus / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match=r"empty\.txt is empty"):
        read_filelist(corpus / "empty.txt", corpus)
    (corpus / "gap.txt").write_text("A-1|x|x\nA-9|y|y\n")
    with pytest.raises(FileNotFoundError) as e:
        read_filelist(corpus / "gap.txt", corpus)
    assert "A-9.wav" in str(e.value) and "gap.txt" in str(e.value) and "line 2" in str(e.value)


def test_demo_turns_filelist_errors_into_user_errors(corpus):
    from vocoder_ext.cli.common import UserError
    from vocoder_ext.cli.demo import read_filelist as demo_read_filelist
    (corpus / "empty.txt").write_text("")
    with pytest.raises(UserError, match="is empty"):
        demo_read_filelist(str(corpus / "empty.txt"), str(corpus))


def test_bundled_corpus():
    train = read_filelist(DATA / "filelists" / "train.txt", DATA)
    assert read_filelist(DATA / "filelists" / "train_ljs.txt", DATA) == train and len(train) == 50
    mel, audio, mel_loss, path = ds(train)[3]
    assert path == train[3] and audio.shape == (1, SEG) and mel.shape == mel_loss.shape == (80, SEG // HOP)
    assert abs(audio.abs().max().item() - 0.95) < 1e-5  # the corpus clips are longer than a segment


# ---- on-the-fly mels ------------------------------------------------------------------------
def test_shapes_and_alignment(tmp_path):
    wav = tmp_path / "a.wav"
    raw = make_wav(wav, 20000)
    for split, samples in ((True, SEG), (False, 20000 // HOP * HOP)):
        mel, audio, mel_loss, path = ds([wav], split=split)[0]
        assert path == str(wav)
        assert audio.shape == (1, samples) and audio.dtype == mel.dtype == mel_loss.dtype == torch.float32
        assert mel.shape == mel_loss.shape == (80, samples // HOP)
        torch.testing.assert_close(mel, mel_of(audio[0]), rtol=0, atol=0)  # mel of this very segment
        torch.testing.assert_close(mel_loss, mel_of(audio[0], fmax=None), rtol=0, atol=0)
        assert (mel - mel_loss).abs().max() > 0.1  # fmax_for_loss=None: full band, not 8 kHz
        normalised = raw / raw.abs().max() * 0.95
        if split:  # the segment is a slice of the normalised utterance
            starts = [s for s in range(len(raw) - SEG + 1) if torch.equal(normalised[s:s + SEG], audio[0])]
            assert len(starts) == 1
        else:
            torch.testing.assert_close(audio[0], normalised[:samples])


def test_short_clip_zero_padded(tmp_path):
    raw = make_wav(tmp_path / "a.wav", 3000)
    mel, audio, _, _ = ds([tmp_path / "a.wav"])[0]
    assert audio.shape == (1, SEG) and mel.shape == (80, SEG // HOP)
    torch.testing.assert_close(audio[0, :3000], raw / raw.abs().max() * 0.95)
    assert torch.all(audio[0, 3000:] == 0)


def test_normalisation(tmp_path):
    raw = make_wav(tmp_path / "a.wav", 4096, peak=0.3)
    _, audio, _, _ = ds([tmp_path / "a.wav"], split=False)[0]
    assert abs(audio.abs().max().item() - 0.95) < 1e-6
    _, audio, _, _ = ds([tmp_path / "a.wav"], split=False, normalize=False)[0]
    assert torch.equal(audio[0], raw)
    save_wav(tmp_path / "zero.wav", torch.zeros(4096), SR)  # all-zero: left as is, no NaN
    _, audio, _, _ = ds([tmp_path / "zero.wav"], split=False)[0]
    assert torch.equal(audio, torch.zeros(1, 4096))


def test_deterministic_segments(tmp_path):
    make_wav(tmp_path / "a.wav", 3 * SR)
    make_wav(tmp_path / "b.wav", 3 * SR)
    first = ds([tmp_path / "a.wav", tmp_path / "b.wav"], seed=7)
    again = ds([tmp_path / "a.wav", tmp_path / "b.wav"], seed=7)
    first.set_epoch(4), again.set_epoch(4)
    assert torch.equal(first[1][1], again[1][1]) and torch.equal(first[1][1], first[1][1])
    others = []
    for epoch in (5, 6, 7):
        again.set_epoch(epoch)
        others.append(again[1][1])
    assert not all(torch.equal(first[1][1], o) for o in others)
    assert not torch.equal(ds([tmp_path / "b.wav"], seed=8)[0][1], ds([tmp_path / "b.wav"], seed=9)[0][1])


def test_wav_errors(tmp_path):
    make_wav(tmp_path / "sr16k.wav", 20000, sr=16000)
    with pytest.raises(DataError, match="sr16k.wav") as e:
        ds([tmp_path / "sr16k.wav"])[0]
    assert "16000" in str(e.value) and isinstance(e.value.__cause__, ValueError)
    make_wav(tmp_path / "tiny.wav", 300)
    with pytest.raises(DataError, match="tiny.wav"):
        ds([tmp_path / "tiny.wav"], split=False)[0]


def test_constructor_checks(tmp_path):
    with pytest.raises(ValueError, match="segment_size"):
        ds(["x.wav"], segment_size=8000)
    with pytest.raises(ValueError, match="empty"):
        ds([])
    with pytest.raises(ValueError, match="nope"):
        ds(["x.wav"], mels_dir=tmp_path / "nope")


def test_dataloader_batches(tmp_path):
    paths = [tmp_path / f"{i}.wav" for i in range(3)]
    for p in paths:
        make_wav(p, 10000)
    loader = torch.utils.data.DataLoader(ds(paths), batch_size=2, num_workers=0)
    batches = list(loader)
    mel, audio, mel_loss, names = batches[0]
    assert mel.shape == mel_loss.shape == (2, 80, SEG // HOP) and audio.shape == (2, 1, SEG)
    assert list(names) == [str(p) for p in paths[:2]] and batches[1][1].shape == (1, 1, SEG)


# ---- fine-tuning on given mels --------------------------------------------------------------
@pytest.fixture
def tuned(tmp_path):
    """A 1 s wav and its mel (80, T) -> (wav path, mels dir, audio, mel)."""
    wav = tmp_path / "utt.wav"
    audio = make_wav(wav, 22050)
    mels = tmp_path / "mels"
    mels.mkdir()
    return wav, mels, audio, mel_of(audio)


@pytest.mark.parametrize("batched", [False, True])
def test_finetune_pairs_mel_and_audio(tuned, batched):
    wav, mels, raw, full = tuned
    np.save(mels / "utt.npy", full[None].numpy() if batched else full.numpy())
    frames = SEG // HOP
    d = ds([wav], mels_dir=mels)
    for epoch in range(3):
        d.set_epoch(epoch)
        mel, audio, mel_loss, _ = d[0]
        assert mel.shape == mel_loss.shape == (80, frames) and audio.shape == (1, SEG)
        starts = [s for s in range(full.shape[1] - frames + 1) if torch.equal(full[:, s:s + frames], mel)]
        assert len(starts) == 1
        assert torch.equal(audio[0], raw[starts[0] * HOP: starts[0] * HOP + SEG])  # not normalised
        torch.testing.assert_close(mel_loss, mel_of(audio[0], fmax=None), rtol=0, atol=0)
    mel, audio, _, _ = ds([wav], mels_dir=mels, split=False)[0]
    assert torch.equal(mel, full) and torch.equal(audio[0], raw[: full.shape[1] * HOP])
    _, audio, _, _ = ds([wav], mels_dir=mels, split=False, normalize=True)[0]  # only if asked for
    assert abs(audio.abs().max().item() - 0.95) < 1e-6


def test_finetune_short_utterance_padded_with_silence(tmp_path):
    raw = make_wav(tmp_path / "s.wav", 3000)
    (tmp_path / "mels").mkdir()
    np.save(tmp_path / "mels" / "s.npy", mel_of(raw).numpy())
    mel, audio, _, _ = ds([tmp_path / "s.wav"], mels_dir=tmp_path / "mels")[0]
    frames = 3000 // HOP
    assert mel.shape == (80, SEG // HOP) and audio.shape == (1, SEG)
    assert torch.equal(mel[:, :frames], mel_of(raw))
    assert torch.allclose(mel[:, frames:], torch.full((80, SEG // HOP - frames), float(np.log(1e-5))))  # silence
    assert torch.equal(audio[0, :frames * HOP], raw[:frames * HOP]) and torch.all(audio[0, frames * HOP:] == 0)


def test_finetune_frame_offset(tuned):
    wav, mels, raw, full = tuned
    longer = torch.cat([full, full[:, -1:]], dim=1)  # a Tacotron2-style extra trailing frame
    np.save(mels / "utt.npy", longer.numpy())
    with pytest.raises(DataError) as e:
        ds([wav], mels_dir=mels)[0]
    msg = str(e.value)
    assert "utt.npy" in msg and str(full.shape[1] + 1) in msg and str(full.shape[1]) in msg
    assert "--mel_frame_offset" in msg
    mel, audio, _, _ = ds([wav], mels_dir=mels, mel_frame_offset=1, split=False)[0]
    assert torch.equal(mel, full) and audio.shape == (1, full.shape[1] * HOP)


def test_finetune_mel_errors(tuned):
    wav, mels, _, full = tuned
    with pytest.raises(DataError, match=str(mels / "utt.npy")):  # missing
        ds([wav], mels_dir=mels)[0]
    np.save(mels / "utt.npy", full[:40].numpy())
    with pytest.raises(DataError, match=r"utt\.npy.*\(40, 86\)"):
        ds([wav], mels_dir=mels)[0]
    np.save(mels / "utt.npy", full[None, None].numpy())
    with pytest.raises(DataError, match=r"\(1, 1, 80, 86\)"):
        ds([wav], mels_dir=mels)[0]
