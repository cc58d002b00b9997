"""Mixed precision (amp: bf16 | fp16) on CPU: bf16 losses near float32's, a bf16 run that learns, fp16 loss
scaling that skips an overflowed step, lowers the scale and goes on."""

import re
from pathlib import Path

import pytest
import torch

from cald_asr.bin import asr_train
from cald_asr.data.collate import pad_collate
from cald_asr.precision import autocast
from cald_asr.train.checkpoint import CHECKPOINT_NAME
from cald_asr.train.trainer import StepNorm, compute_loss, train

from train_helpers import build, cald_args, datasets, std_args

# bf16 keeps 8 significant bits (relative rounding 2^-9 per operation); over a 2-layer encoder and a loss sum
# the measured relative difference of each term is ~1e-3 to 1e-2 (here, AVX-512 and AVX2 alike)
BF16_REL = 5e-2


def loss_terms(cfg, model, guide, items, amp):
    norm = StepNorm(len(items), int(model.output_lengths(torch.tensor([len(i["speech"]) for i in items])).sum()), 1)
    model.zero_grad(set_to_none=True)
    with autocast(amp, torch.device("cpu")):
        loss, stats = compute_loss(model, pad_collate(items), cfg, guide, 0, norm)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return stats, grad


@pytest.mark.parametrize("strategy", [None, "target"])
def test_a_bf16_step_is_near_the_float32_step(yesno, teacher, tmp_path, strategy):
    argv = cald_args(strategy, yesno, teacher, tmp_path / "run") if strategy else std_args(yesno, tmp_path / "run")
    cfg, model, fields, guide, _ = build(argv)
    train_set, _, _ = datasets(fields, yesno)
    items = [train_set[i] for i in range(4)]
    model.train()
    torch.manual_seed(0)
    s32, g32 = loss_terms(cfg, model, guide, items, "none")
    torch.manual_seed(0)
    s16, g16 = loss_terms(cfg, model, guide, items, "bf16")
    assert set(s32) == set(s16) == ({"ctc", "layer", "logits"} if strategy else {"ctc"})
    for k in s32:
        assert abs(s16[k] - s32[k]) <= BF16_REL * abs(s32[k]), (k, s16[k], s32[k])
    cos = float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))
    assert cos > 0.99, f"bf16 gradient direction: cosine {cos:.4f}"


def test_a_bf16_run_learns(yesno, tmp_path):
    out = tmp_path / "run"
    args = ["--max_steps", 30, "--valid_every", 100, "--log_every", 5, "--amp", "bf16"]
    assert asr_train.main(std_args(yesno, out, *args)) == 0
    ctc = [float(x) for x in re.findall(r"step \d+/30 epoch \d+ ctc ([0-9.]+)", (out / "train.log").read_text())]
    assert len(ctc) == 6 and ctc[-1] < 0.5 * ctc[0], ctc


def test_an_fp16_overflow_skips_the_step_and_halves_the_scale(yesno, tmp_path):
    out = tmp_path / "run"
    cfg, model, fields, guide, args = build(
        std_args(yesno, out, "--max_steps", 5, "--valid_every", 100, "--amp", "fp16")
    )
    train_set, valid_set, tokenizer = datasets(fields, yesno)
    calls = []

    def overflow_once(g):  # the first backward's gradient overflows, as a too-high loss scale makes it
        calls.append(1)
        return g * float("inf") if len(calls) == 1 else g

    next(model.parameters()).register_hook(overflow_once)
    state = train(cfg, model, train_set, valid_set, tokenizer, Path(out), fields, guide)
    log = (out / "train.log").read_text()
    # the forced overflow, then the real ones of a fresh scale (65536 is too high for this loss in fp16): each
    # skip halves the scale until the gradients fit; none is a non-finite batch, and the run does its 5 steps
    skips = state["overflow_skips"]
    assert "step 0: fp16 gradients overflowed, batch skipped; loss scale 65536 -> 32768 (1 overflow" in log
    assert skips >= 1 and log.count("fp16 gradients overflowed") == skips
    assert state["step"] == 5 and state["nonfinite_total"] == 0
    assert len(calls) == 5 + skips, "one backward per step and per skipped batch"
    ck = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    assert ck["scaler"]["scale"] == 65536.0 / 2**skips  # no growth within 2000 clean steps
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_amp_needs_float32_parameters(yesno, tmp_path, capsys):
    argv = std_args(yesno, tmp_path / "run", "--max_steps", 2, "--amp", "bf16", "--dtype", "float64")
    assert asr_train.main(argv) == 1
    assert "amp bf16 mixes with float32 parameters" in capsys.readouterr().err
