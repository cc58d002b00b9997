"""The five guiding strategies on yesno (docs/cald-method.md, section 3): where the student's kept weights
start from, and which teacher it matches at which step. Runs go through asr_train's own build_config /
build_models and the trainer's train(), with the guide object instrumented to record what it did."""

import re

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cald_asr.distill.guides import Guide

from train_helpers import build, cald_args, datasets, max_abs_diff, state_of, train_in_process

# the method's table, restated here rather than imported, so the code is checked against the spec
EXPECTED_START = {
    "unguided": "pretrained",
    "target": "finetuned",
    "trajectory": "pretrained",
    "waypoint": "pretrained",
    "hybrid": "finetuned",
}
QUIET = ["--valid_every", 100, "--checkpoint_every", 100]


def is_mixer(key: str) -> bool:
    return ".self_attn." in key


def spy_teacher_outputs(guide, record):
    inner = guide.teacher_outputs

    def spy(batch, step):
        out = inner(batch, step)
        record(step, out)
        return out

    guide.teacher_outputs = spy


@pytest.mark.parametrize("strategy", list(EXPECTED_START))
def test_student_and_teacher_at_the_start(strategy, yesno, teacher, tmp_path):
    _, student, fields, guide, _ = build(cald_args(strategy, yesno, teacher, tmp_path / "run"))
    pretrained, finetuned = state_of(yesno.init), state_of(teacher.best)
    source = {"pretrained": pretrained, "finetuned": finetuned}[EXPECTED_START[strategy]]
    s = state_of(student)
    kept = [k for k in source if not is_mixer(k)]
    # the two candidate starts differ in kept tensors, so matching one of them identifies it
    assert any(not torch.equal(pretrained[k], finetuned[k]) for k in kept)
    assert sorted(k for k in s if not is_mixer(k)) == sorted(kept)
    for k in kept:
        assert torch.equal(s[k], source[k]), k
    attention = {k for k in source if is_mixer(k)}
    mixer = {k for k in s if is_mixer(k)}
    assert attention and mixer and not attention & mixer, "every attention replaced by a new mixer"
    assert fields["mixer"] == "bimamba2" and fields["cald_strategy"] == strategy

    if strategy in ("target", "hybrid"):
        assert max_abs_diff(state_of(guide.teacher), finetuned) == 0
    elif strategy == "trajectory":
        assert max_abs_diff(state_of(guide.teacher), pretrained) == 0
    elif strategy == "waypoint":
        assert [n for n, _ in guide.snapshots] == [2, 4, 6]
    else:
        assert type(guide) is Guide and getattr(guide, "teacher", None) is None


def test_waypoint_teacher_is_the_next_snapshot(yesno, teacher, tmp_path):
    snaps = sorted(int(d.name[len("step_") :]) for d in teacher.snapshots.glob("step_*"))
    assert snaps == [2, 4, 6]
    used, weights = [], {}

    def instrument(guide):
        def record(step, out):
            n = guide.snapshots[guide.current][0]
            used.append((step, n))
            weights.setdefault(n, state_of(guide.teacher))

        spy_teacher_outputs(guide, record)

    steps = 8
    train_in_process(
        cald_args("waypoint", yesno, teacher, tmp_path / "run", "--max_steps", steps, *QUIET), yesno, instrument
    )
    # student step s (0-based: s steps done) uses the first snapshot saved after s, the last once past it
    expected = [(s, min([n for n in snaps if n > s], default=snaps[-1])) for s in range(steps)]
    assert used == expected
    assert sorted(weights) == snaps
    for n, w in weights.items():
        assert max_abs_diff(w, state_of(teacher.snapshots / f"step_{n}")) == 0, n


def logged_steps(out, term):
    """Steps whose train.log line, TensorBoard scalars and checkpointed history carry `term`."""
    lines = re.finditer(r"step (\d+)/\d+ epoch \d+ (.*)", (out / "train.log").read_text())
    log = [(int(m.group(1)), m.group(2)) for m in lines]
    from_log = [s for s, rest in log if f" {term} " in f" {rest}"]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    from_tb = [e.step for e in acc.Scalars(f"train/{term}")] if f"train/{term}" in acc.Tags()["scalars"] else []
    history = torch.load(out / "checkpoint.pt", weights_only=True)["history"]
    from_history = [h["step"] for h in history if f"train/{term}" in h]
    assert from_log == from_tb == from_history
    return from_log, [s for s, _ in log]


@pytest.mark.parametrize("switch_off", ["3", "0.5"])  # a step, or a fraction of max_steps
def test_hybrid_switches_distillation_off(switch_off, yesno, teacher, tmp_path):
    calls = []

    def instrument(guide):
        spy_teacher_outputs(guide, lambda step, out: calls.append(step))

    guide, state, out = train_in_process(
        cald_args(
            "hybrid", yesno, teacher, tmp_path / "run", "--switch_off_step", switch_off, "--max_steps", 6, *QUIET
        ),
        yesno,
        instrument,
    )
    assert state["step"] == 6
    assert calls == [0, 1, 2], "the teacher runs for the first switch_off_step steps only"
    for term in ("layer", "logits"):
        with_term, all_steps = logged_steps(out, term)
        assert all_steps == [1, 2, 3, 4, 5, 6]
        assert with_term == [1, 2, 3], term
    assert max_abs_diff(state_of(guide.teacher), state_of(teacher.best)) == 0


def test_trajectory_teacher_steps_every_update_every(yesno, teacher, tmp_path):
    after, used = [], {}

    def instrument(guide):
        after.append((0, state_of(guide.teacher), guide.updates))
        inner = guide.after_step

        def spy(batches, step):
            inner(batches, step)
            after.append((step, state_of(guide.teacher), guide.updates))

        guide.after_step = spy
        spy_teacher_outputs(guide, lambda step, out: used.setdefault(step, state_of(guide.teacher)))

    guide, _, out = train_in_process(
        cald_args(
            "trajectory",
            yesno,
            teacher,
            tmp_path / "run",
            "--update_every",
            2,
            "--teacher_lr",
            1e-3,
            "--max_steps",
            5,
            *QUIET,
        ),
        yesno,
        instrument,
    )
    assert [s for s, _, _ in after] == [0, 1, 2, 3, 4, 5]
    assert max_abs_diff(after[0][1], state_of(yesno.init)) == 0
    for (_, before, _), (step, now, updates) in zip(after, after[1:]):
        changed = max_abs_diff(before, now) > 0
        assert changed == (step % 2 == 0), f"teacher {'changed' if changed else 'unchanged'} after step {step}"
        assert updates == step // 2
    assert guide.updates == 2 and guide.optimizer.param_groups[0]["lr"] == 1e-3
    # at 0-based step s the student matches the teacher as it stands after s student steps
    assert sorted(used) == [0, 1, 2, 3, 4]
    for s, w in used.items():
        assert max_abs_diff(w, after[s][1]) == 0, s
    assert torch.load(out / "checkpoint.pt", weights_only=True)["guide"]["updates"] == 2


def test_target_teacher_stays_fixed(yesno, teacher, tmp_path):
    guide, _, out = train_in_process(
        cald_args("target", yesno, teacher, tmp_path / "run", "--max_steps", 3, *QUIET), yesno
    )
    best = state_of(teacher.best)
    assert max_abs_diff(state_of(guide.teacher), best) == 0
    assert not guide.teacher.training
    student = state_of(out / "final")
    assert max(float((student[k] - best[k]).abs().max()) for k in best if not is_mixer(k)) > 0, "student trained"
    assert logged_steps(out, "layer")[0] == [1, 2, 3]


def test_unguided_has_no_teacher(yesno, teacher, tmp_path):
    calls = []

    def instrument(guide):
        spy_teacher_outputs(guide, lambda step, out: calls.append(step))

    guide, state, out = train_in_process(
        cald_args("unguided", yesno, teacher, tmp_path / "run", "--max_steps", 2, *QUIET), yesno, instrument
    )
    assert state["step"] == 2 and calls == []
    assert getattr(guide, "teacher", None) is None and not guide.distils(0)
    assert logged_steps(out, "layer")[0] == [] and logged_steps(out, "logits")[0] == []


def test_new_mixers_follow_the_run_seed(yesno, teacher, tmp_path):
    """The converted student's fresh mixers come from the config's seed, whatever the process drew before,
    so a run built in one process equals the same run built in another (resume and DDP tests rely on it)."""

    def mixers(*extra):
        student = build(cald_args("unguided", yesno, teacher, tmp_path / "run", *extra))[1]
        return {k: v for k, v in state_of(student).items() if is_mixer(k)}

    first = mixers()
    torch.rand(1000)
    assert max_abs_diff(first, mixers()) == 0
    assert max_abs_diff(first, mixers("--seed", 1)) > 0


def test_trajectory_teacher_skips_a_non_finite_update(yesno, teacher, tmp_path):
    """A batch whose teacher loss is not finite leaves the concurrent teacher's weights and optimiser as
    they were (counted in `skipped`, checkpointed); the next finite batch updates it as usual. The bad
    batch is a real yesno batch whose first utterance's samples are NaN."""
    from cald_asr.data.collate import pad_collate

    _, _, fields, guide, _ = build(
        cald_args("trajectory", yesno, teacher, tmp_path / "run", "--update_every", 1, "--teacher_lr", 1e-3, *QUIET)
    )
    train_set, _, _ = datasets(fields, yesno)
    good = pad_collate([train_set[i] for i in range(3)])
    bad = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in good.items()}
    bad["speech"][0] = float("nan")
    before = state_of(guide.teacher)
    guide.after_step([(bad, 1.0)], 1)
    assert guide.skipped == 1 and guide.updates == 0
    assert max_abs_diff(state_of(guide.teacher), before) == 0
    assert not guide.optimizer.state, "no optimiser step was taken"
    guide.after_step([(good, 1.0)], 2)
    assert guide.skipped == 1 and guide.updates == 1
    after = state_of(guide.teacher)
    assert all(torch.isfinite(v).all() for v in after.values()) and max_abs_diff(after, before) > 0
    assert guide.state_dict()["skipped"] == 1
