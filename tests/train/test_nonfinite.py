"""A batch whose loss is not finite is skipped, counted and logged; too many in a row stop the run with a
clear FloatingPointError. The bad batch comes from real data: one yesno utterance's samples replaced by
NaN, which the log-mel front end turns into a NaN CTC loss."""

import math
import re

import pytest
import torch

from cald_asr.data.dataset import ASRDataset
from cald_asr.models.model_file import load_model
from cald_asr.train.checkpoint import CHECKPOINT_NAME
from cald_asr.train.trainer import train

from train_helpers import datasets, expected_skips, max_abs_diff, state_of
from train_helpers import trainer_config as config


class NaNAudio(ASRDataset):
    """The dump, with the samples of the chosen utterances replaced by NaN."""

    def __init__(self, data_dir, tokenizer, bad):
        super().__init__(data_dir, tokenizer)
        self.bad = set(bad)

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if item["utt_id"] in self.bad:
            item["speech"] = torch.full_like(item["speech"], math.nan)
        return item


def test_nonfinite_batches_are_skipped_and_counted(yesno, tmp_path):
    model, fields = load_model(yesno.init)
    _, valid_set, tokenizer = datasets(fields, yesno)
    bad = "yesno-0_1_0_0_1_0_1_0"
    train_set = NaNAudio(yesno.train, tokenizer, [bad])
    cfg = config(max_steps=10)
    skips = expected_skips(cfg, train_set.lengths, train_set.utt_ids.index(bad))
    assert skips >= 2, "the run must meet the bad batch (7 batches an epoch, 10 steps)"

    state = train(cfg, model, train_set, valid_set, tokenizer, tmp_path, fields)
    assert state["step"] == 10
    assert state["nonfinite_total"] == skips and state["nonfinite_in_a_row"] == 0
    log = (tmp_path / "train.log").read_text()
    assert len(re.findall(r"non-finite loss or gradient, batch skipped", log)) == skips
    assert f"{skips} batch(es) skipped as non-finite" in log
    final = state_of(tmp_path / "final")
    assert all(torch.isfinite(v).all() for v in final.values())
    assert max_abs_diff(final, state_of(yesno.init)) > 1e-3, "the good batches trained the model"


def test_too_many_nonfinite_batches_in_a_row_stop_the_run(yesno, tmp_path):
    model, fields = load_model(yesno.init)
    _, valid_set, tokenizer = datasets(fields, yesno)
    train_set = NaNAudio(yesno.train, tokenizer, ASRDataset(yesno.train).utt_ids)
    cfg = config(max_steps=10, max_nonfinite_in_a_row=3)
    with pytest.raises(
        FloatingPointError,
        match=r"3 batches in a row had a non-finite loss or gradient; "
        r"stopping at step 0\. Lower the learning rate or check the data",
    ):
        train(cfg, model, train_set, valid_set, tokenizer, tmp_path, fields)
    assert len(re.findall(r"batch skipped", (tmp_path / "train.log").read_text())) == 3
    ck = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert ck["state"]["nonfinite_total"] == 3 and ck["state"]["step"] == 0
    assert max_abs_diff(state_of(model), state_of(yesno.init)) == 0, "no update from a NaN batch"
