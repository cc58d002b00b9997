"""A decode config written for ESPnet (ctc_weight, lm_weight, penalty, maxlenratio ...) is accepted with a
warning naming what this CTC-only decoder ignores; a key neither knows is still an error."""

import pytest

from cald_asr.bin.asr_inference import parse_args

REQUIRED = ["--asr_train_config", "m", "--data_path_and_name_and_type", "d,speech,sound", "--output_dir", "o"]


def test_espnet_keys_are_ignored_with_a_warning(tmp_path, capsys):
    conf = tmp_path / "decode_asr.yaml"
    conf.write_text("beam_size: 4\nctc_weight: 0.3\nlm_weight: 0.1\npenalty: 0.0\nmaxlenratio: 0.0\n")
    args = parse_args(["--config", str(conf), *REQUIRED])
    assert args.beam_size == 4, "the keys we use still apply"
    err = capsys.readouterr().err
    assert f"--config {conf}: ignoring ESPnet decoding option(s) ['lm_weight', 'maxlenratio', 'penalty']" in err
    assert args.ctc_weight == 0.3 and not hasattr(args, "lm_weight")


def test_a_key_no_decoder_knows_is_an_error(tmp_path, capsys):
    conf = tmp_path / "decode.yaml"
    conf.write_text("lm_weight: 0.1\nbeam_sise: 4\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(conf), *REQUIRED])
    assert "unknown option(s) ['beam_sise']" in capsys.readouterr().err
