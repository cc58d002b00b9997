import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from cald_asr.data.collate import pad_collate
from cald_asr.data.dataset import ASRDataset
from cald_asr.data.format_dir import FormatOptions, format_data_dir
from cald_asr.data.kaldi_dir import DataDirError, read_kv, write_kv
from cald_asr.data.sampler import LengthBucketBatchSampler
from cald_asr.text import CharTokenizer, TokenList

from datalayer_util import AN4_FEAT, FSDD, read_an4_mfcc, write_fsdd_dir

NAMES = ["0_george_0", "1_george_0", "2_jackson_0", "5_theo_3", "9_lucas_1", "4_nicolas_7"]


@pytest.fixture
def dumped(tmp_path):
    write_fsdd_dir(tmp_path / "in", NAMES)
    format_data_dir(tmp_path / "in", tmp_path / "dump", FormatOptions(fs=16000, nj=1), progress=False)
    return tmp_path / "dump"


def char_tokenizer(texts):
    chars = sorted({t for s in texts for t in CharTokenizer().text2tokens(s)})
    return CharTokenizer(TokenList.build(chars))


def test_sound_items_match_dumped_wavs(dumped):
    texts = read_kv(dumped / "text")
    ds = ASRDataset(dumped, tokenizer=char_tokenizer(texts.values()))
    assert ds.speech_type == "sound" and len(ds) == len(NAMES)
    num_samples = read_kv(dumped / "utt2num_samples")
    assert ds.lengths == [int(num_samples[u]) for u in ds.utt_ids]
    wav = read_kv(dumped / "wav.scp")
    for i, utt in enumerate(ds.utt_ids):
        item = ds[i]
        assert item["utt_id"] == utt
        ref, fs = sf.read(wav[utt], dtype="float32")
        assert fs == 16000 and item["speech"].dtype == torch.float32
        torch.testing.assert_close(item["speech"], torch.from_numpy(ref))
        assert item["text_ids"].dtype == torch.long
        assert ds.tokenizer.decode(item["text_ids"].tolist()) == texts[utt]


def test_loader_with_sampler_and_collate(dumped):
    ds = ASRDataset(dumped, tokenizer=char_tokenizer(read_kv(dumped / "text").values()))
    cap = 40000
    sampler = LengthBucketBatchSampler(ds.lengths, cap, seed=0)
    seen = []
    for batch in DataLoader(ds, batch_sampler=sampler, collate_fn=pad_collate):
        b, t = batch["speech"].shape
        assert b * t <= cap or b == 1
        assert t == batch["speech_lengths"].max().item()
        for j, utt in enumerate(batch["utt_ids"]):
            assert batch["speech_lengths"][j].item() == ds.lengths[ds.utt_ids.index(utt)]
        seen += batch["utt_ids"]
    assert sorted(seen) == ds.utt_ids


def test_without_tokenizer_text_ids_are_empty(dumped):
    item = ASRDataset(dumped)[0]
    assert item["text_ids"].shape == (0,)


def test_feature_items(tmp_path):
    files = sorted((AN4_FEAT / "fash").glob("*.mfc"))[:3]
    mats = {f"fash_{p.stem}": read_an4_mfcc(p) for p in files}
    d = tmp_path / "feats"
    d.mkdir()
    kaldiio.save_ark(str(d / "feats.ark"), mats, scp=str(d / "feats.scp"))
    write_kv(d / "text", {u: "A B" for u in mats})
    ds = ASRDataset(d)
    assert ds.speech_type == "kaldi_ark"
    assert ds.lengths == [mats[u].shape[0] for u in ds.utt_ids]  # measured: no utt2num_frames here
    for i, utt in enumerate(ds.utt_ids):
        assert ds[i]["speech"].shape == (mats[utt].shape[0], 13)
        np.testing.assert_array_equal(ds[i]["speech"].numpy(), mats[utt])


def test_segments_are_cut_from_the_recording(tmp_path):
    x, fs = sf.read(FSDD / "7_theo_0.wav", dtype="float32")
    d = tmp_path / "seg"
    write_kv(d / "wav.scp", {"theo_rec": str(FSDD / "7_theo_0.wav")})
    write_kv(d / "segments", {"theo_a": "theo_rec 0.10 0.20", "theo_b": "theo_rec 0.20 -1"})
    write_kv(d / "text", {"theo_a": "x", "theo_b": "y"})
    ds = ASRDataset(d)
    np.testing.assert_array_equal(ds[0]["speech"].numpy(), x[800:1600])
    np.testing.assert_array_equal(ds[1]["speech"].numpy(), x[1600:])
    assert ds.lengths == [800, len(x) - 1600]


def test_utterance_without_audio_is_an_error(dumped):
    text = read_kv(dumped / "text")
    text["zz_extra"] = "zero"
    write_kv(dumped / "text", text)
    with pytest.raises(DataDirError, match=r"text: 1 utterance\(s\) have no entry in wav.scp, e.g. 'zz_extra'"):
        ASRDataset(dumped)
