"""utils/split_dev.sh: a dev set of whole speakers held out of a real data dir (FSDD recordings of six
speakers), deterministically: the same seed gives the same bytes, the halves share no speaker and together
are the source; segments dirs keep only the recordings each half uses."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cald_asr.data.kaldi_dir import read_kv, utt2spk_to_spk2utt, write_kv
from cald_asr.data.validate import validate_data_dir

FILES = ("text", "utt2spk", "spk2utt", "wav.scp", "utt2num_samples")
TAKES = {"george": 6, "jackson": 2, "lucas": 2, "nicolas": 4, "theo": 3, "yweweler": 3}  # 20 utterances


@pytest.fixture
def train(fsdd_dir, tmp_path):
    """data/train: digit 2 by six speakers, a different number of takes each."""
    d = tmp_path / "data" / "train"
    utts = {
        f"{s}-2_{s}_{t}": (s, fsdd_dir / "recordings" / f"2_{s}_{t}.wav") for s, n in TAKES.items() for t in range(n)
    }
    write_kv(d / "text", {u: "two" for u in utts})
    write_kv(d / "utt2spk", {u: s for u, (s, _) in utts.items()})
    write_kv(d / "spk2utt", utt2spk_to_spk2utt({u: s for u, (s, _) in utts.items()}))
    write_kv(d / "wav.scp", {u: str(p) for u, (_, p) in utts.items()})
    write_kv(d / "utt2num_samples", {u: 4000 + i for i, u in enumerate(sorted(utts))})
    return d


@pytest.fixture(autouse=True)
def venv_python(monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # its `python`


def split(run_bash, *args):
    return run_bash("utils/split_dev.sh " + " ".join(map(str, args)))


def speakers(d):
    return set(read_kv(d / "utt2spk").values())


def test_whole_speakers_are_held_out_the_same_way_on_every_run(run_bash, train, tmp_path):
    nodev, dev = tmp_path / "data" / "train_nodev", tmp_path / "data" / "train_dev"
    r = split(run_bash, "--dev_speakers", 2, "--seed", 7, train, nodev, dev)
    assert r.returncode == 0, r.stderr
    assert validate_data_dir(nodev) == [] and validate_data_dir(dev) == []
    assert len(speakers(dev)) == 2 and not speakers(dev) & speakers(nodev)
    assert speakers(dev) | speakers(nodev) == set(TAKES)
    for name in FILES:
        whole = read_kv(train / name)
        a, b = read_kv(nodev / name), read_kv(dev / name)
        assert not set(a) & set(b) and {**a, **b} == whole, name
    n_dev = sum(TAKES[s] for s in speakers(dev))
    assert r.stdout.strip() == (
        f"split_dev: {train} -> {nodev} ({20 - n_dev} utts, 4 spk), {dev} ({n_dev} utts, 2 spk: "
        f"{' '.join(sorted(speakers(dev)))})"
    )
    before = {name: (dev / name).read_bytes() for name in FILES}
    r = split(run_bash, "--dev-speakers", 2, "--seed", 7, train, nodev, dev)  # Kaldi's spelling, the same split
    assert r.returncode == 0 and {name: (dev / name).read_bytes() for name in FILES} == before
    picks = set()
    for seed in range(6):
        assert split(run_bash, "--dev_speakers", 2, "--seed", seed, train, nodev, dev).returncode == 0
        picks.add(frozenset(speakers(dev)))
    assert len(picks) > 1  # the seed chooses


def test_a_share_holds_out_the_seeded_prefix_of_speakers_nearest_it(run_bash, train, tmp_path):
    """The documented rule: speakers C-sorted, shuffled by numpy's default_rng(seed); the shortest prefix whose
    utterances reach the share, or one speaker fewer when that is nearer."""
    nodev, dev = tmp_path / "nodev", tmp_path / "dev"
    order = [sorted(TAKES)[i] for i in np.random.default_rng(0).permutation(len(TAKES))]
    cum = list(np.cumsum([TAKES[s] for s in order]))
    seen = set()
    for share in (0.1, 0.25, 0.4, 0.6):
        target = share * 20
        k = next(i + 1 for i, c in enumerate(cum) if c >= target)
        if k > 1 and abs(cum[k - 2] - target) < abs(cum[k - 1] - target):
            k -= 1
        r = split(run_bash, "--dev_share", share, train, nodev, dev)
        assert r.returncode == 0, r.stderr
        assert speakers(dev) == set(order[:k]), share
        seen.add(k)
    assert len(seen) > 2  # the shares above take different numbers of speakers


def test_segments_keep_the_recordings_each_half_uses(run_bash, fsdd_dir, tmp_path):
    d = tmp_path / "seg"
    recs = {f"{s}-rec": fsdd_dir / "recordings" / f"1_{s}_0.wav" for s in ("theo", "lucas", "george")}
    segs = {
        f"{s}-rec-{i}": f"{s}-rec {0.1 * i:.1f} {0.1 * i + 0.1:.1f}"
        for s in ("theo", "lucas", "george")
        for i in (0, 1)
    }
    write_kv(d / "wav.scp", {r: str(p) for r, p in recs.items()})
    write_kv(d / "segments", segs)
    write_kv(d / "text", {u: "one" for u in segs})
    utt2spk = {u: u.split("-")[0] for u in segs}
    write_kv(d / "utt2spk", utt2spk)
    write_kv(d / "spk2utt", utt2spk_to_spk2utt(utt2spk))
    r = split(run_bash, "--dev_speakers", 1, d, tmp_path / "a", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    (held,) = speakers(tmp_path / "b")
    assert list(read_kv(tmp_path / "b" / "wav.scp")) == [f"{held}-rec"]
    assert set(read_kv(tmp_path / "a" / "wav.scp")) == set(recs) - {f"{held}-rec"}
    assert validate_data_dir(tmp_path / "a") == [] and validate_data_dir(tmp_path / "b") == []


def test_what_cannot_be_split_is_one_error_line(run_bash, train, tmp_path):
    r = split(run_bash, "--dev_speakers", 6, train, tmp_path / "a", tmp_path / "b")
    assert r.returncode == 1
    assert (
        r.stderr == f"split_dev: error: {train}/utt2spk: cannot hold out 6 of 6 speakers: at least 1, and 1 must stay\n"
    )
    one = tmp_path / "one"
    write_kv(one / "text", {"george-1": "two", "george-2": "two"})
    write_kv(one / "utt2spk", {"george-1": "george", "george-2": "george"})
    write_kv(one / "spk2utt", {"george": "george-1 george-2"})
    write_kv(one / "wav.scp", {"george-1": read_kv(train / "wav.scp")["george-2_george_0"], "george-2": "x.wav"})
    r = split(run_bash, "--dev_share", 0.5, one, tmp_path / "a", tmp_path / "b")
    assert r.returncode == 1 and "1 speaker(s): holding out whole speakers needs at least 2" in r.stderr
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.txt").write_text("mine")
    r = split(run_bash, "--dev_speakers", 1, train, tmp_path / "a", tmp_path / "keep")
    assert r.returncode == 1 and f"{tmp_path / 'keep'} exists and is not a data dir: not replacing it" in r.stderr
    assert (tmp_path / "keep" / "notes.txt").read_text() == "mine" and not (tmp_path / "a").exists()
    r = split(run_bash, "--dev_speakers", 1, "--dev_share", 0.1, train, tmp_path / "a", tmp_path / "b")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr
