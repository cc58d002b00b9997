"""grad_checkpoint: the same gradients, fewer bytes kept for backward, the same parameter names."""

import copy

import pytest
import torch

from cald_asr.data.collate import pad_collate
from cald_asr.train.grad_checkpoint import enable_grad_checkpoint, encoder_layers
from cald_asr.train.trainer import StepNorm, compute_loss

from train_helpers import build, cald_args, datasets, std_args


def step(model, cfg, guide, items):
    """(gradient, bytes saved for backward) of one loss."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    n_frames = int(model.output_lengths(torch.tensor([len(i["speech"]) for i in items])).sum())
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout masks in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = compute_loss(model, pad_collate(items), cfg, guide, 0, StepNorm(len(items), n_frames, 1))
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, sum(saved)


@pytest.mark.parametrize("strategy", [None, "target"])
def test_same_gradients_fewer_saved_bytes(yesno, teacher, tmp_path, strategy):
    argv = cald_args(strategy, yesno, teacher, tmp_path / "r") if strategy else std_args(yesno, tmp_path / "r")
    cfg, model, fields, guide, _ = build(argv)
    train_set, _, _ = datasets(fields, yesno)
    items = [train_set[i] for i in range(6)]
    model.train()
    plain = copy.deepcopy(model)
    names = list(model.state_dict())
    assert enable_grad_checkpoint(model) == len(encoder_layers(model)) == 2
    assert list(model.state_dict()) == names, "parameter names are unchanged"
    g0, b0 = step(plain, cfg, guide, items)
    g1, b1 = step(model, cfg, guide, items)
    assert g0.keys() == g1.keys()
    scale = max(float(v.abs().max()) for v in g0.values())
    diff = max(float((g0[k] - g1[k]).abs().max()) for k in g0)
    assert diff <= 1e-5 * scale, f"gradients differ by {diff:.3g} (scale {scale:.3g})"
    assert b1 < 0.7 * b0, f"saved for backward: {b1} bytes with checkpointing, {b0} without"


def test_a_model_without_layers_is_refused():
    with pytest.raises(ValueError, match="no encoder layer list"):
        enable_grad_checkpoint(torch.nn.Linear(2, 2))


def test_a_run_with_grad_checkpoint(yesno, tmp_path):
    from cald_asr.bin import asr_train

    out = tmp_path / "run"
    assert (
        asr_train.main(std_args(yesno, out, "--max_steps", 2, "--valid_every", 100, "--grad_checkpoint", "true")) == 0
    )
    assert (
        "grad_checkpoint: 2 encoder layer(s) recompute their activations in backward" in (out / "train.log").read_text()
    )
