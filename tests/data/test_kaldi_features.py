import kaldiio
import numpy as np
import pytest

from cald_asr.data.features import FeatureError, ark_path_of, load_feats, write_feats

from datalayer_util import AN4_FEAT, read_an4_mfcc

AN4_FILES = [AN4_FEAT / "fash" / f"{n}.mfc" for n in ("an251-fash-b", "an253-fash-b", "cen1-fash-b")]


def test_real_an4_mfcc_round_trip_through_ark(tmp_path):
    mats = {f"fash_{p.stem}": read_an4_mfcc(p) for p in AN4_FILES}
    write_feats(tmp_path / "feats.ark", tmp_path / "feats.scp", sorted(mats.items()))
    scp = dict(line.split(maxsplit=1) for line in (tmp_path / "feats.scp").read_text().splitlines())
    assert list(scp) == sorted(mats)
    for utt, spec in scp.items():
        assert spec.startswith(str(tmp_path / "feats.ark") + ":")
        got = load_feats(utt, spec)
        assert got.dtype == np.float32 and got.shape[1] == 13
        np.testing.assert_array_equal(got, mats[utt])


def test_ark_path_of():
    assert ark_path_of("/a/b.ark:123") == "/a/b.ark"
    assert ark_path_of("/a/b.ark:123[0:9]") == "/a/b.ark"


def test_missing_ark_names_utterance(tmp_path):
    with pytest.raises(FeatureError, match=r"utterance 'u1': feature file '.*gone.ark' does not exist"):
        load_feats("u1", f"{tmp_path / 'gone.ark'}:10")


def test_bad_offset_names_utterance(tmp_path):
    ark = tmp_path / "f.ark"
    kaldiio.save_ark(str(ark), {"u1": np.ones((4, 2), np.float32)})
    with pytest.raises(FeatureError, match=r"utterance 'u2': cannot read features from"):
        load_feats("u2", f"{ark}:6")  # the matrix starts at 3 (after 'u1 '); 6 is inside its header


def test_truncated_ark_names_utterance(tmp_path):
    ark = tmp_path / "f.ark"
    kaldiio.save_ark(str(ark), {"u1": np.ones((40, 13), np.float32)}, scp=str(tmp_path / "f.scp"))
    spec = (tmp_path / "f.scp").read_text().split()[1]
    ark.write_bytes(ark.read_bytes()[:100])
    with pytest.raises(FeatureError, match=r"utterance 'u1': cannot read features"):
        load_feats("u1", spec)
