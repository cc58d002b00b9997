"""read_ct2_model against files written by CTranslate2's own serializer and the real Whisper tiny.en teacher."""

import struct

import numpy as np
import pytest
import torch
from ctranslate2.specs import model_spec

from cald_asr.models.ct2_reader import CT2FormatError, read_ct2_model
from cald_asr.models.encoders import default_whisper_tiny_en_path


class _Leaf(model_spec.LayerSpec):
    def __init__(self):
        self.weight = None


class _AllDtypesSpec(model_spec.ModelSpec):
    """One variable of every dtype CTranslate2 writes, plus a duplicate that becomes an alias."""

    def __init__(self, rng):
        super().__init__()
        w = rng.standard_normal((3, 4)).astype(np.float32)
        self.a = _Leaf()
        self.a.weight = w
        self.b = _Leaf()
        self.b.weight = w.copy()
        self.num_heads = np.int16(6)
        self.i8 = rng.integers(-128, 128, (2, 3), dtype=np.int8)
        self.i16 = rng.integers(-30000, 30000, (5,), dtype=np.int16)
        self.i32 = rng.integers(-(2**31), 2**31 - 1, (7,), dtype=np.int32)
        self.f16 = rng.standard_normal((2, 2, 2)).astype(np.float16)
        self.bf16 = torch.tensor([1.5, -2.25, 3.0e10, 1e-3], dtype=torch.bfloat16)

    @property
    def name(self):
        return "AllDtypesSpec"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A model.bin written by ctranslate2.specs (the reference writer) and the values put in it."""
    spec = _AllDtypesSpec(np.random.default_rng(0))
    expected = {
        "a/weight": spec.a.weight,
        "num_heads": np.array(spec.num_heads),
        "i8": spec.i8,
        "i16": spec.i16,
        "i32": spec.i32,
        "f16": spec.f16,
        "bf16": spec.bf16.float().numpy(),
    }
    spec.validate()
    spec.optimize()  # aliases b/weight to the identical a/weight
    out = tmp_path_factory.mktemp("ct2")
    spec.save(str(out))
    return out / "model.bin", expected


def test_reads_every_dtype_written_by_ctranslate2(written):
    path, expected = written
    name, variables, aliases = read_ct2_model(path)
    assert name == "AllDtypesSpec"
    assert aliases == {"b/weight": "a/weight"}
    assert set(variables) == set(expected)
    for key, value in expected.items():
        got = variables[key]
        assert got.shape == value.shape, key
        if key != "bf16":
            assert got.dtype == value.dtype, key
        np.testing.assert_array_equal(got, value, err_msg=key)


def test_parts_concatenate_in_order(written, tmp_path):
    path, _ = written
    data = path.read_bytes()
    cut = len(data) // 3  # an arbitrary byte, mid-variable
    parts = [tmp_path / "part1", tmp_path / "part2"]
    parts[0].write_bytes(data[:cut])
    parts[1].write_bytes(data[cut:])
    whole = read_ct2_model(path)
    split = read_ct2_model(parts)
    assert split[0] == whole[0] and split[2] == whole[2]
    for key in whole[1]:
        np.testing.assert_array_equal(split[1][key], whole[1][key])
    with pytest.raises(CT2FormatError, match="part2"):
        read_ct2_model(parts[::-1])  # wrong order: part2 first has no valid header


def test_real_whisper_tiny_en_layout():
    name, variables, aliases = read_ct2_model(default_whisper_tiny_en_path())
    assert name == "WhisperSpec"
    # Sizes from the package description: 80 mels -> d 384, 4 layers, 6 heads, FFN 1536, 1500 positions.
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert variables["encoder/conv1/weight"].dtype == np.float16
    assert int(variables["encoder/num_heads"]) == 6
    layers = {k.split("/")[1] for k in variables if k.startswith("encoder/layer_") and "layer_norm" not in k}
    assert layers == {f"layer_{i}" for i in range(4)}
    assert variables["encoder/layer_3/self_attention/linear_0/weight"].shape == (3 * 384, 384)
    assert variables["encoder/layer_0/ffn/linear_0/weight"].shape == (1536, 384)
    assert variables["encoder/position_encodings/encodings"].shape == (1500, 384)
    # Whisper's key projection has no bias; the fused q,k,v bias stores zeros for it.
    for i in range(4):
        bias = variables[f"encoder/layer_{i}/self_attention/linear_0/bias"]
        assert np.all(bias[384:768] == 0) and np.any(bias[:384] != 0)
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


@pytest.mark.parametrize("keep", [3, 10, 1_000_000])
def test_truncated_file_names_the_file(tmp_path, keep):
    src = default_whisper_tiny_en_path()
    with open(src, "rb") as f:
        head = f.read(keep)
    bad = tmp_path / f"truncated_{keep}.bin"
    bad.write_bytes(head)
    with pytest.raises(CT2FormatError, match=rf"{bad.name}.*truncated"):
        read_ct2_model(bad)


def test_wrong_version_and_trailing_bytes_name_the_file(written, tmp_path):
    path, _ = written
    data = path.read_bytes()
    bad = tmp_path / "version5.bin"
    bad.write_bytes(struct.pack("<I", 5) + data[4:])
    with pytest.raises(CT2FormatError, match=r"version5\.bin.*version 5"):
        read_ct2_model(bad)
    extra = tmp_path / "trailing.bin"
    extra.write_bytes(data + b"\0\0")
    with pytest.raises(CT2FormatError, match=r"trailing\.bin.*trailing bytes"):
        read_ct2_model(extra)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        read_ct2_model(tmp_path / "missing.bin")
