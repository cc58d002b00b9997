"""The model file format: config.yaml + model.safetensors; reload identity and clear errors."""

import pytest
import torch
import yaml

from cald_asr.convert import convert_model
from cald_asr.frontend import WhisperLogMel
from cald_asr.models.asr_ctc import ASRCTCModel
from cald_asr.models.encoders import BertEncoder, WhisperEncoder, default_minilm_path
from cald_asr.models.model_file import ModelFileError, load_model, model_config, save_model
from cald_asr.models.text_classifier import TextClassifier

TOKENS = ["<blank>", "<unk>", "<space>", "E", "N", "O", "S", "Y"]
STUDENTS = [
    (None, None),
    ("bimamba2", dict(d_state=16, headdim=16)),
    ("bimamba", dict(d_state=8)),
    ("linformer", dict(max_len=400, k=16, sharing="layerwise")),
]


def tiny_whisper_ctc():
    torch.manual_seed(0)
    enc = WhisperEncoder(n_mels=80, d_model=64, n_heads=4, n_layers=2, ffn_dim=128)
    return ASRCTCModel(enc, len(TOKENS), WhisperLogMel())


@pytest.mark.parametrize("mixer,conf", STUDENTS)
def test_save_and_reload_gives_identical_outputs(tmp_path, mixer, conf):
    model = tiny_whisper_ctc()
    fields = dict(token_list=TOKENS)
    if mixer:
        convert_model(model, mixer, conf)
        fields.update(mixer=mixer, mixer_conf=conf)
    model.eval()
    save_model(model, model_config(model, **fields), tmp_path / "m")
    loaded, config = load_model(tmp_path / "m")
    assert config["token_list"] == TOKENS and config.get("mixer") == mixer
    wav = torch.randn(2, 16000)
    lengths = torch.tensor([16000, 11000])
    a, b = model(wav, lengths), loaded(wav, lengths)
    assert torch.equal(a.logits, b.logits)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.yaml", "model.safetensors"]


def test_text_classifier_round_trip_on_minilm(tmp_path):
    model = TextClassifier(BertEncoder.from_pretrained(default_minilm_path()), 2).eval()
    save_model(model, model_config(model, labels=["negative", "positive"]), tmp_path)
    loaded, _ = load_model(tmp_path / "config.yaml")
    ids = torch.randint(1000, 2000, (2, 12))
    lengths = torch.tensor([12, 7])
    assert torch.equal(model(ids, lengths).logits, loaded(ids, lengths).logits)


@pytest.fixture
def saved(tmp_path):
    model = tiny_whisper_ctc()
    return save_model(model, model_config(model, token_list=TOKENS), tmp_path / "m")


def test_missing_weights_file_is_named(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="model.safetensors: model weights not found"):
        load_model(saved)


def test_truncated_weights_file_is_named(saved):
    w = saved / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(ModelFileError, match=r"model.safetensors: cannot read model weights"):
        load_model(saved)


def test_pickle_is_not_a_model_file(saved):
    torch.save(tiny_whisper_ctc().state_dict(), saved / "model.safetensors")
    with pytest.raises(ModelFileError, match="cannot read model weights"):
        load_model(saved)


def test_missing_config_is_named(tmp_path):
    with pytest.raises(ModelFileError, match="config.yaml: model config not found"):
        load_model(tmp_path / "config.yaml")


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("encoder", "transformerxl", "unknown encoder 'transformerxl'; known: .*whisper"),
        ("mixer", "bimamba3", "unknown mixer 'bimamba3'; known: .*bimamba2"),
        ("model", "seq2seq", "unknown model 'seq2seq'"),
    ],
)
def test_config_naming_unknown_parts_is_refused_with_the_file(saved, key, value, message):
    path = saved / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config[key] = value
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ModelFileError, match=f"{path}: {message}"):
        load_model(saved)


def test_weights_of_another_architecture_are_refused(saved, tmp_path):
    other = tiny_whisper_ctc()
    convert_model(other, "bimamba2", dict(d_state=16, headdim=16))
    save_model(
        other,
        model_config(other, token_list=TOKENS, mixer="bimamba2", mixer_conf=dict(d_state=16, headdim=16)),
        tmp_path / "student",
    )
    with pytest.raises(ModelFileError, match="weights do not match"):
        load_model(saved / "config.yaml", tmp_path / "student" / "model.safetensors")


def _edit_config(saved, **changes):
    path = saved / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for k, v in changes.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_configs_carry_a_format_version_and_unknown_keys_are_refused(saved):
    from cald_asr.models.model_file import FORMAT_VERSION

    assert yaml.safe_load((saved / "config.yaml").read_text())["format_version"] == FORMAT_VERSION
    path = _edit_config(saved, ctc_dropuot=0.1)
    with pytest.raises(ModelFileError, match=rf"{path}: unknown key\(s\) 'ctc_dropuot' in a model config"):
        load_model(saved)
    _edit_config(saved, ctc_dropuot=None, format_version="2.0")
    with pytest.raises(ModelFileError, match=rf"{path}: format_version 2.0 is newer than this cald-asr reads"):
        load_model(saved)
    _edit_config(saved, format_version="1.7")  # a newer minor version adds nothing this one must understand
    load_model(saved)


def test_a_config_written_before_format_versions_still_loads(saved):
    _edit_config(saved, format_version=None)
    model, config = load_model(saved)
    assert "format_version" not in config and config["token_list"] == TOKENS


def test_a_model_dir_is_replaced_whole_or_not_at_all(saved):
    """A save that fails half-way (here: a config value YAML cannot write) leaves the old weights and config,
    together; a save that succeeds replaces both and keeps what else the dir holds."""
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    (saved / "decode_default").mkdir()
    other = tiny_whisper_ctc()
    with torch.no_grad():
        other.ctc.bias.add_(1.0)
    with pytest.raises(Exception):
        save_model(other, model_config(other, token_list=TOKENS, trained_steps=object()), saved)
    assert {p.name: p.read_bytes() for p in saved.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m"], "no temporary dir is left behind"

    save_model(other, model_config(other, token_list=TOKENS, trained_steps=7), saved)
    loaded, config = load_model(saved)
    assert config["trained_steps"] == 7 and torch.equal(loaded.ctc.bias, other.ctc.bias)
    assert (saved / "decode_default").is_dir(), "other contents of the dir are kept"
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m"]
