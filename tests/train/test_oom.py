"""A batch that runs out of memory (injected: torch.OutOfMemoryError, the error CUDA's allocator raises,
from the forward or the backward pass of every step whose batch holds one chosen yesno utterance).
skip_oom_batches: true skips and counts it and trains on; off, the run stops with an error naming the batch
and the options that bound it, and the last checkpoint stays the one to resume from."""

import re

import pytest
import torch

import cald_asr.train.trainer as trainer
from cald_asr.models.model_file import load_model
from cald_asr.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cald_asr.train.oom import BatchOutOfMemory
from cald_asr.train.trainer import train

from train_helpers import datasets, expected_skips, max_abs_diff, state_of, trainer_config

BAD = "yesno-0_1_0_0_1_0_1_0"


def _raise_oom(*_):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")


def inject_oom(monkeypatch, where: str) -> list:
    """Every batch holding BAD runs out of memory in its forward or backward pass; -> the calls seen."""
    real, calls = trainer.compute_loss, []

    def compute_loss(model, batch, *args, **kw):
        bad = BAD in batch["utt_ids"]
        calls.append(bad)
        if bad and where == "forward":
            _raise_oom()
        loss, stats = real(model, batch, *args, **kw)
        if bad:  # a tensor hook runs inside loss.backward()
            loss.register_hook(_raise_oom)
        return loss, stats

    monkeypatch.setattr(trainer, "compute_loss", compute_loss)
    return calls


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_out_of_memory_batches_are_skipped_and_counted(yesno, tmp_path, monkeypatch, where):
    model, fields = load_model(yesno.init)
    train_set, valid_set, tokenizer = datasets(fields, yesno)
    cfg = trainer_config(max_steps=10, skip_oom_batches=True)
    skips = expected_skips(cfg, train_set.lengths, train_set.utt_ids.index(BAD))
    assert skips >= 2, "the run must meet the bad batch (7 batches an epoch, 10 steps)"
    calls = inject_oom(monkeypatch, where)

    state = train(cfg, model, train_set, valid_set, tokenizer, tmp_path, fields)
    assert state["step"] == 10 and state["oom_skips"] == skips and state["nonfinite_total"] == 0
    assert sum(calls) == skips
    log = (tmp_path / "train.log").read_text()
    lines = re.findall(r"out of memory on a batch of (\d+) utterance\(s\) .*padded size \d+ \(longest.*skipped", log)
    assert len(lines) == skips
    assert f"{skips} as out of memory" in log
    final = state_of(tmp_path / "final")
    assert all(torch.isfinite(v).all() for v in final.values())
    assert max_abs_diff(final, state_of(yesno.init)) > 1e-3, "the other batches trained the model"


def test_out_of_memory_stops_the_run_naming_the_batch(yesno, tmp_path, monkeypatch):
    model, fields = load_model(yesno.init)
    train_set, valid_set, tokenizer = datasets(fields, yesno)
    cfg = trainer_config(max_steps=20, checkpoint_every=1)
    inject_oom(monkeypatch, "forward")
    with pytest.raises(BatchOutOfMemory) as err:
        train(cfg, model, train_set, valid_set, tokenizer, tmp_path, fields)
    msg = str(err.value)
    step = int(re.match(r"step (\d+): out of memory on a batch of \d+ utterance\(s\) \(", msg).group(1))
    assert BAD in msg or "more)" in msg
    for part in ("padded size ", "(longest ", "padded sum of squared lengths", "batch_bins (", "batch_sq_bins ("):
        assert part in msg
    assert "set skip_oom_batches: true" in msg
    # nothing of the failed step reached the checkpoint: it holds the steps before it, and loads
    ck = load_checkpoint(tmp_path / CHECKPOINT_NAME, torch.device("cpu"))
    assert ck["state"]["step"] == step and ck["state"].get("oom_skips", 0) == 0
