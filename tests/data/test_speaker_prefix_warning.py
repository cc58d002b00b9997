"""Kaldi's rule that utterance ids begin with their speaker id: a dir breaking it is still valid, but the
validator warns, counting the offenders and naming the first ones by line (real yesno recordings)."""

import subprocess
import sys

import pytest

from cald_asr.data.kaldi_dir import utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import inspect_data_dir, validate_data_dir

from shared_data import SHARED_DATA

YESNO = SHARED_DATA / "yesno" / "waves_yesno"


def write_dir(d, utt2spk):
    if not YESNO.is_dir():
        pytest.skip(f"shared corpus {YESNO} not present")
    names = sorted(p.stem for p in YESNO.glob("*.wav"))[: len(utt2spk)]
    utts = dict(zip(sorted(utt2spk), names))
    write_kv(d / "wav.scp", {u: str(YESNO / f"{n}.wav") for u, n in utts.items()})
    write_kv(d / "text", {u: " ".join("YES" if c == "1" else "NO" for c in n.split("_")) for u, n in utts.items()})
    write_kv(d / "utt2spk", utt2spk)
    write_kv(d / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    return d


def validate(d):
    return subprocess.run(
        [sys.executable, "-m", "cald_asr.bin.validate_data_dir", str(d)], capture_output=True, text=True
    )


def test_ids_not_prefixed_by_their_speaker_warn_with_the_count_and_the_first_ones(tmp_path):
    # a-1 .. a-3 keep the rule; b1..b5 belong to speaker 'bob' and do not begin with it
    utt2spk = {**{f"a-{i}": "a" for i in range(1, 4)}, **{f"b{i}": "bob" for i in range(1, 6)}}
    d = write_dir(tmp_path / "set", utt2spk)
    assert validate_data_dir(d) == []  # a warning, not a problem
    r = validate(d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (
        f"WARNING: {d}/utt2spk: 5 of 8 utterance id(s) do not begin with their speaker id: line 4 'b1' (speaker "
        "'bob'), line 5 'b2' (speaker 'bob'), line 6 'b3' (speaker 'bob') and 2 more; sorted by utterance, a "
        "speaker's utterances are then not together (Kaldi's rule: name them <speaker>-<id>)"
    ) in r.stderr.splitlines()
    assert r.stderr.splitlines()[-1] == f"{d}: OK"
    assert len(inspect_data_dir(d).warnings) == 1


def test_prefixed_ids_and_unknown_speakers_do_not_warn(tmp_path):
    prefixed = write_dir(tmp_path / "prefixed", {"bob-1": "bob", "bob-2": "bob", "carol_1": "carol"})
    own = write_dir(tmp_path / "own", {"u1": "u1", "u2": "u2"})  # <utt> <utt>: speakers unknown
    for d in (prefixed, own):
        r = validate(d)
        assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr
        assert inspect_data_dir(d).warnings == []
