"""Parallel data loading (num_workers): the same batches as in-process loading, exact resume, a bad utterance
read in a worker raises its own message, a worker that dies stops the run with a message naming it."""

import os
import shutil
import signal

import pytest
import torch

from cald_asr.bin import asr_train
from cald_asr.data.audio import AudioError
from cald_asr.data.kaldi_dir import read_kv, write_kv
from cald_asr.tasks import task_for
from cald_asr.train.checkpoint import CHECKPOINT_NAME
from cald_asr.train.loader import BatchLoader, DataLoadingError
from cald_asr.train.options import DEFAULTS
from cald_asr.train.trainer import rank_shard

from train_helpers import build, std_args

AUGMENT = ["--augment.noise.prob", 0.8, "--augment.speed.prob", 0.5, "--augment.reverb.prob", 0.3]


def loader_cfg(workers):
    return {**DEFAULTS, "num_workers": workers, "loader_timeout_s": 60.0}


def epoch_batches(yesno, tmp_path, workers, epoch):
    cfg, model, fields, _, _ = build(std_args(yesno, tmp_path / "run", *AUGMENT))
    task = task_for(model)
    train_set, _, _ = task.datasets(yesno.train, yesno.valid, fields, model, cfg)
    assert hasattr(train_set, "set_epoch"), "the set is augmented"
    batches = [list(range(i, min(i + 4, len(train_set)))) for i in range(0, len(train_set), 4)]
    loader = BatchLoader(train_set, task.collate(train_set), {**cfg, "num_workers": workers})
    return list(loader.epoch(batches, epoch))


def test_two_workers_load_the_same_batches_as_none(yesno, tmp_path):
    for epoch in (0, 1):
        a = epoch_batches(yesno, tmp_path, 0, epoch)
        b = epoch_batches(yesno, tmp_path, 2, epoch)
        assert len(a) == len(b) > 1
        for x, y in zip(a, b):
            assert x["utt_ids"] == y["utt_ids"]
            assert torch.equal(x["speech"], y["speech"]) and torch.equal(x["speech_lengths"], y["speech_lengths"])
    e0, e1 = epoch_batches(yesno, tmp_path, 2, 0), epoch_batches(yesno, tmp_path, 2, 1)
    assert not torch.equal(e0[0]["speech"], e1[0]["speech"]), "each epoch draws its own augmentation"


def test_kill_and_resume_with_two_workers_continues_exactly(yesno, tmp_path):
    spec = [
        "--max_steps",
        8,
        "--max_batch_size",
        5,
        "--valid_every",
        100,
        "--checkpoint_every",
        1,
        "--dtype",
        "float64",
    ]
    spec += ["--num_workers", 2, *AUGMENT]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert asr_train.main(std_args(yesno, straight, *spec)) == 0
    assert asr_train.main(std_args(yesno, resumed, *spec, "--stop_after", 3)) == 0
    assert asr_train.main(std_args(yesno, resumed, *spec, "--resume")) == 0
    a, b = (torch.load(d / CHECKPOINT_NAME, weights_only=True) for d in (straight, resumed))
    assert a["state"]["step"] == b["state"]["step"] == 8
    assert a["state"]["epoch"] >= 1, "the run crossed an epoch boundary"
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_validation_reads_the_same_dev_batches_through_two_workers(yesno, tmp_path):
    cfg, model, fields, _, _ = build(std_args(yesno, tmp_path / "run"))
    _, valid_set, tokenizer = task_for(model).datasets(yesno.train, yesno.valid, fields, model, cfg)
    task = task_for(model, tokenizer)
    batches = [[0, 1], [2, 3, 4]]
    in_process = task.validate(model, valid_set, batches)
    loader = BatchLoader(valid_set, task.collate(valid_set), {**cfg, "num_workers": 2})
    assert task.validate(model, valid_set, loader.epoch(batches, 0)) == in_process
    assert in_process["n_dev"] == len(valid_set) == 5 and in_process["loss"] > 0


def broken_copy(yesno, tmp_path):
    """The training dump with one utterance's file replaced by bytes no decoder reads."""
    d = tmp_path / "broken"
    shutil.copytree(yesno.train, d)
    scp = read_kv(d / "wav.scp")
    utt = sorted(scp)[3]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(100))
    write_kv(d / "wav.scp", {**scp, utt: str(bad)})
    return d, utt


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_utterance_in_a_worker_raises_its_own_message(yesno, tmp_path, workers):
    d, utt = broken_copy(yesno, tmp_path)
    cfg, model, fields, _, _ = build(std_args(yesno, tmp_path / "run"))
    task = task_for(model)
    train_set, _, _ = task.datasets(d, yesno.valid, fields, model, cfg)
    i = train_set.utt_ids.index(utt)
    loader = BatchLoader(train_set, task.collate(train_set), {**cfg, "num_workers": workers})
    with pytest.raises(AudioError) as e:
        list(loader.epoch([[0, 1], [i, 2]], 0))
    assert f"utterance '{utt}'" in str(e.value) and str(tmp_path / "bad.wav") in str(e.value)
    assert "Traceback" not in str(e.value)


class DiesAt:
    """A dataset whose worker is killed (as the kernel's OOM killer does) when it reads item `k`."""

    def __init__(self, k):
        self.k = k

    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == self.k:
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.tensor([float(i)])


def test_a_worker_that_dies_stops_the_run_naming_it():
    loader = BatchLoader(DiesAt(5), torch.stack, loader_cfg(2))
    with pytest.raises(DataLoadingError, match=r"data loading failed \(DataLoader worker \(pid"):
        list(loader.epoch([[0, 1], [2, 3], [4, 5], [6, 7]], 0))


def test_rank_shard():
    from cald_asr.train.distributed import DistInfo

    assert rank_shard([3, 4, 5], DistInfo(1, 2)) == [4]
    assert rank_shard([3], DistInfo(1, 2)) == [3], "an empty shard reads the batch's first (weight 0)"
