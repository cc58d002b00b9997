"""--check_audio reports recordings whose sample rate differs from the others (or from --fs) and feature
matrices whose dimension differs from the others, each with file:line, the id, what it found and expected."""

import kaldiio
import numpy as np
import soundfile as sf

from cald_asr.bin import validate_data_dir as cli
from cald_asr.data.audio import load_audio
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.data.validate import fix_data_dir, validate_data_dir

from datalayer_util import AN4_FEAT, YESNO, read_an4_mfcc, write_yesno_dir, yesno_names


def resampled_copy(tmp_path, name, fs):
    x, _ = load_audio(str(YESNO / f"{name}.wav"), target_fs=fs)
    path = tmp_path / f"{name}_{fs}.wav"
    sf.write(path, x, fs, subtype="PCM_16")
    return path


def test_rate_differing_from_the_majority(tmp_path):
    names = yesno_names(4)
    odd = resampled_copy(tmp_path, names[1], 16000)
    d = tmp_path / "in"
    write_yesno_dir(d, 4, {f"yesno_{names[1]}": str(odd)})
    assert validate_data_dir(d) == []
    assert validate_data_dir(d, check_audio=True) == [
        f"{d / 'wav.scp'}:2: 'yesno_{names[1]}': sample rate 16000 Hz, expected 8000 Hz "
        "(the rate of 3 of 4 wav.scp entries)"
    ]
    dropped = fix_data_dir(d, tmp_path / "fix.log", check_audio=True)
    assert list(dropped) == [f"yesno_{names[1]}"]
    assert validate_data_dir(d, check_audio=True) == []


def test_rate_differing_from_fs(tmp_path, capsys):
    names = yesno_names(3)
    odd = resampled_copy(tmp_path, names[2], 16000)
    d = tmp_path / "in"
    write_yesno_dir(d, 3, {f"yesno_{names[2]}": str(odd)})
    problems = validate_data_dir(d, check_audio=True, fs=16000)
    assert problems == [
        f"{d / 'wav.scp'}:{i}: 'yesno_{n}': sample rate 8000 Hz, expected 16000 Hz (--fs)"
        for i, n in ((1, names[0]), (2, names[1]))
    ]
    assert cli.main([str(d), "--check_audio", "--fs", "16000"]) == 1
    assert capsys.readouterr().out.splitlines() == problems
    assert cli.main([str(d), "--check_audio", "--fs", "8000"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{d / 'wav.scp'}:3: 'yesno_{names[2]}': sample rate 16000 Hz, expected 8000 Hz (--fs)"
    ]


def test_feature_dimension_differing_from_the_majority(tmp_path):
    files = sorted((AN4_FEAT / "fash").glob("*.mfc"))[:4]
    mats = {f"fash_{p.stem}": read_an4_mfcc(p) for p in files}
    odd = sorted(mats)[2]
    mats[odd] = np.concatenate([mats[odd], mats[odd][:, :3]], axis=1)  # 16 coefficients instead of 13
    d = tmp_path / "feats"
    d.mkdir()
    kaldiio.save_ark(str(d / "feats.ark"), mats, scp=str(d / "feats.scp"))
    write_kv(d / "text", {u: "A B" for u in mats})
    write_kv(d / "utt2spk", {u: "fash" for u in mats})
    write_kv(d / "spk2utt", {"fash": " ".join(sorted(mats))})
    assert validate_data_dir(d) == []
    spec = read_kv(d / "feats.scp")[odd]
    assert validate_data_dir(d, check_audio=True) == [
        f"{d / 'feats.scp'}:3: utterance '{odd}': features '{spec}' have dimension 16, expected 13 "
        "(the dimension of 3 of 4 matrices)"
    ]
