"""Helpers of the decoding tests: seeded tiny models in our model format, test signals."""

from pathlib import Path

import torch

from cald_asr.models.model_file import build_model, save_model

YESNO_TOKENS = ["<blank>", "<unk>", "<space>", "N", "O", "E", "S", "Y", "<sos/eos>"]
TINY_WHISPER = dict(n_mels=80, d_model=32, n_heads=2, n_layers=1, ffn_dim=64)


def tiny_config(**encoder_conf):
    return {
        "model": "asr_ctc",
        "frontend": "whisper_logmel",
        "frontend_conf": {"n_mels": 80},
        "encoder": "whisper",
        "encoder_conf": {**TINY_WHISPER, **encoder_conf},
        "token_list": YESNO_TOKENS,
        "token_type": "char",
    }


def save_seeded(config, out_dir: Path, seed: int, head_gain: float = 1.0, edit=None) -> Path:
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        # a random CTC head gives near-uniform posteriors; a larger gain makes greedy paths vary
        model.ctc.weight.mul_(head_gain)
        if edit is not None:
            edit(model)
    return save_model(model, config, out_dir)
