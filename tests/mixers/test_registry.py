import pytest
import torch

from cald_asr.mixers import MIXERS, BiMamba, BiMamba2, Linformer, Mamba, Mamba2, build_mixer


def test_table_names_and_types():
    assert MIXERS == {
        "mamba2": Mamba2,
        "mamba": Mamba,
        "bimamba2": BiMamba2,
        "bimamba": BiMamba,
        "linformer": Linformer,
    }


def test_build_passes_conf_and_defaults():
    m = build_mixer("bimamba2", 128)
    assert isinstance(m, BiMamba2) and m.fwd is not m.bwd
    # conversion defaults: expand 1, d_state 128, headdim 64, d_conv 4, ngroups 1
    assert (m.fwd.d_inner, m.fwd.d_state, m.fwd.headdim, m.fwd.d_conv, m.fwd.ngroups) == (128, 128, 64, 4, 1)
    v1 = build_mixer("mamba", 64, d_state=8)
    assert v1.d_state == 8 and v1.dt_rank == 4 and v1.A_log.shape == (128, 8)
    assert build_mixer("linformer", 64, num_heads=4, max_len=100, k=16).E.weight.shape == (100, 16)


def test_unknown_name_lists_known_ones():
    with pytest.raises(ValueError, match="unknown mixer 'mamba3'.*bimamba, bimamba2, linformer, mamba, mamba2"):
        build_mixer("mamba3", 64)


def test_mamba2_parameter_shapes_follow_mamba_ssm():
    m = Mamba2(64, d_state=16, headdim=16, ngroups=2, expand=2)
    # in_proj packs z, x, B, C, dt; the conv runs over x, B, C
    assert m.in_proj.weight.shape == (2 * 128 + 2 * 2 * 16 + 8, 64)
    assert m.conv1d.weight.shape == (128 + 64, 1, 4)
    assert m.A_log.shape == m.D.shape == m.dt_bias.shape == (8,)
    assert (torch.nn.functional.softplus(m.dt_bias) >= 1e-3 - 1e-7).all()
