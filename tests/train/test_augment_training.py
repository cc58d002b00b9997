"""Augmentation in training: the teacher reads the augmented batch the student reads, not the clean one; a
run killed and resumed continues the same draws; the teacher cache, which stores clean-input outputs, is
refused with augmentation on."""

import torch

from cald_asr.bin import asr_train
from cald_asr.data.augment import AugmentedDataset
from cald_asr.data.collate import pad_collate
from cald_asr.train.trainer import train

from train_helpers import build, cald_args, datasets, max_abs_diff, state_of, std_args

AUG = [
    "--augment.noise.prob",
    1.0,
    "--augment.noise.snr_db",
    "[0, 10]",
    "--augment.speed.prob",
    0.5,
    "--augment.reverb.prob",
    0.5,
]


def test_the_teacher_reads_the_augmented_batch(yesno, teacher, tmp_path):
    seen = []

    def spy(guide):
        inner = guide.teacher_outputs

        def teacher_outputs(batch, step):
            seen.append((batch["utt_ids"], batch["speech"].clone(), batch["speech_lengths"].clone()))
            return inner(batch, step)

        guide.teacher_outputs = teacher_outputs

    argv = cald_args("target", yesno, teacher, tmp_path / "run", "--max_steps", 2, "--valid_every", 100, *AUG)
    cfg, model, fields, guide, args = build(argv)
    spy(guide)
    train_set, valid_set, tokenizer = asr_train.build_datasets(fields, args, model, cfg)  # as main() reads them
    assert isinstance(train_set, AugmentedDataset)
    train(cfg, model, train_set, valid_set, tokenizer, args.output_dir, fields, guide)
    assert len(seen) == 2
    clean, _, _ = datasets(fields, yesno)
    utts, speech, lengths = seen[0]
    index = [train_set.utt_ids.index(u) for u in utts]
    augmented = pad_collate([train_set[i] for i in index])  # epoch 0, as the run's first step
    assert torch.equal(lengths, augmented["speech_lengths"]) and torch.equal(speech, augmented["speech"])
    plain = pad_collate([clean[i] for i in index])
    n = min(speech.shape[1], plain["speech"].shape[1])
    assert not torch.allclose(speech[:, :n], plain["speech"][:, :n], atol=1e-3), "not the clean audio"


def test_resume_continues_the_same_draws(yesno, tmp_path):
    run = ["--max_steps", 6, "--checkpoint_every", 1, "--valid_every", 100, *AUG]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert asr_train.main(std_args(yesno, straight, *run)) == 0
    assert asr_train.main(std_args(yesno, stopped, *run, "--stop_after", 3)) == 0
    assert asr_train.main(std_args(yesno, stopped, *run, "--resume")) == 0
    assert max_abs_diff(state_of(stopped / "final"), state_of(straight / "final")) <= 1e-6
    plain = tmp_path / "plain"
    assert asr_train.main(std_args(yesno, plain, "--max_steps", 6, "--valid_every", 100)) == 0
    assert max_abs_diff(state_of(plain / "final"), state_of(straight / "final")) > 1e-4, "augmentation acted"


def test_the_teacher_cache_is_refused_with_augmentation(yesno, teacher, tmp_path, capsys):
    argv = cald_args("target", yesno, teacher, tmp_path / "run", "--max_steps", 1, "--cache_teacher", "true", *AUG)
    assert asr_train.main(argv) == 1
    assert "cache_teacher stores the teacher's outputs on clean input" in capsys.readouterr().err
