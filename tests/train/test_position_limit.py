"""The trainer's position_limit on yesno: `auto` clamps a recurrent student's positions at the 99th
percentile of the training set's encoder lengths, saves it with the model, and is refused for an
attention model (whose positions are its only source of order)."""

import numpy as np
import pytest

from cald_asr.models.model_file import load_model

from train_helpers import build, cald_args, datasets, std_args, train_in_process

QUIET = ["--valid_every", 100, "--checkpoint_every", 100]


def test_auto_limit_is_saved_with_the_student_and_applied(yesno, teacher, tmp_path):
    argv = cald_args("unguided", yesno, teacher, tmp_path / "run", "--max_steps", 1, "--position_limit", "auto", *QUIET)
    _, state, out = train_in_process(argv, yesno)
    assert state["step"] == 1
    # the expected limit from the data, computed here independently of the trainer's code path
    _, model, fields, _, _ = build(argv)
    train_set = datasets(fields, yesno)[0]
    frames = [int(model.output_lengths(__import__("torch").tensor([n]))[0]) for n in train_set.lengths]
    want = int(np.ceil(np.quantile(np.asarray(frames, dtype=np.float64), 0.99)))
    assert 1 <= want < max(frames) + 1
    for d in ("final", "best"):
        student, config = load_model(out / d)
        assert config["encoder_conf"]["position_limit"] == want
        assert student.encoder.position_limit == want
        pos = student.encoder.positions(want + 5)
        assert (pos[want:] == pos[want - 1]).all()


def test_attention_model_refuses_a_position_limit(yesno, tmp_path):
    argv = std_args(yesno, tmp_path / "std", "--max_steps", 1, "--position_limit", "auto", *QUIET)
    with pytest.raises(ValueError, match="recurrent"):
        train_in_process(argv, yesno)
