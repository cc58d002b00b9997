"""Long inputs: window plans, the splice, windowed vs one-pass decoding, and batch vs alone."""

import numpy as np
import pytest
import torch

from cald_asr.decode.long_audio import plan_windows, splice
from cald_asr.inference import Speech2Text

from decode_util import save_seeded, tiny_config


def tones(seconds: float, seed: int, fs: int = 16000) -> np.ndarray:
    """A 0.25 s-step random melody over a noise floor: posteriors that change over time, and a spectrum
    whose dynamic range stays under the log-mel's 80 dB clamp (so per-window clamping changes nothing)."""
    rng = np.random.default_rng(seed)
    n, seg = int(seconds * fs), int(0.25 * fs)
    freq = np.repeat(rng.uniform(100, 6000, n // seg + 1), seg)[:n]
    return (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / fs) + 0.03 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize(
    "n,window,overlap,stride",
    [(1000, 300, 100, 1), (16000 * 47 + 123, 16000 * 6, 16000 * 2, 320), (3001, 1000, 250, 4), (5000, 700, 0, 7)],
)
def test_plan_covers_the_input_and_partitions_the_frames(n, window, overlap, stride):
    plan = plan_windows(n, window, overlap, stride)
    win_f, ovl_f = window // stride, overlap // stride
    assert plan[0].start == 0 and plan[-1].end == n
    for a, b in zip(plan, plan[1:]):
        assert a.end - a.start == win_f * stride  # full windows but the last
        assert a.end - b.start == ovl_f * stride  # consecutive windows overlap by `overlap`
        assert a.keep_to == b.keep_from  # kept frames are contiguous, never doubled
        # a kept frame is at least overlap/2 frames inside the window it comes from
        assert a.keep_to <= a.frame0 + win_f - ovl_f // 2 and b.keep_from >= b.frame0 + ovl_f // 2
    assert all(w.start == w.frame0 * stride for w in plan)
    assert plan[-1].end - plan[-1].start > ovl_f * stride


def test_short_input_is_one_window():
    (w,) = plan_windows(100, 300, 100, 1)
    assert (w.start, w.end, w.keep_from, w.keep_to) == (0, 100, 0, -1)
    assert len(plan_windows(300, 300, 100, 1)) == 1 and len(plan_windows(301, 300, 100, 1)) == 2


def test_splice_reassembles_the_global_frames():
    stride, n = 4, 4003
    G = np.random.default_rng(0).standard_normal((n // stride, 5))
    plan = plan_windows(n, 1000, 200, stride)
    outs = [G[w.frame0 : w.frame0 + (w.end - w.start) // stride] for w in plan]
    np.testing.assert_array_equal(splice(plan, outs), G)


@pytest.fixture(scope="module")
def local_model_dir(tmp_path_factory):
    """Whisper-shaped CTC model with no transformer layer and zero positions: each output frame depends only
    on ~60 ms of audio around it (log-mel window, two k=3 convolutions), a local receptive field."""
    # the zeroed table must cover the one-pass length: past it Whisper's positions continue by formula
    return save_seeded(
        tiny_config(n_layers=0, max_source_positions=4000),
        tmp_path_factory.mktemp("local"),
        seed=3,
        head_gain=8.0,
        edit=lambda m: m.encoder.positional_embedding.zero_(),
    )


def test_windowed_equals_one_pass_for_a_local_model(local_model_dir):
    """With a receptive field inside overlap/2 the splice must reproduce one-pass posteriors frame by frame:
    any misplaced window offset or a kept frame near a window edge would show here."""
    x = tones(40.0, seed=0)
    one = Speech2Text(local_model_dir, long_audio="one_pass")
    feats, _ = one.model.frontend(torch.from_numpy(x)[None])
    assert float(feats.min()) > float(feats.max()) - 2.0  # the premise: the log-mel clamp is inactive
    win = Speech2Text(local_model_dir, long_audio="windowed", window_sec=6.0, overlap_sec=2.0)
    assert win.uses_windows(len(x)) and not one.uses_windows(len(x))
    a, b = one.log_probs_batch([x])[0], win.log_probs_batch([x])[0]
    assert a.shape == b.shape == (2000, 9)
    np.testing.assert_allclose(b, a, atol=1e-5)
    ha, hb = one.search(a)[0], win.search(b)[0]
    assert len(set(ha.token_ids)) >= 3 and len(ha.token_ids) > 20  # a text that could go wrong
    assert hb.text == ha.text and hb.score == pytest.approx(ha.score, abs=1e-3)

    # control: without overlap, frames at the window edges lack context and differ
    cut = Speech2Text(local_model_dir, long_audio="windowed", window_sec=6.0, overlap_sec=0.0)
    c = cut.log_probs_batch([x])[0]
    bad = np.nonzero(np.abs(c - a).max(1) > 1e-3)[0]
    assert len(bad) > 0 and all(min(f % 300, 300 - f % 300) <= 2 for f in bad)


def test_windowed_short_input_equals_one_pass(teacher_dir, yesno16k):
    _, _, audio = yesno16k
    x = next(iter(audio.values()))
    win = Speech2Text(teacher_dir, long_audio="windowed", window_sec=30.0)
    one = Speech2Text(teacher_dir, long_audio="one_pass")
    assert not win.uses_windows(len(x))
    np.testing.assert_array_equal(win.log_probs_batch([x])[0], one.log_probs_batch([x])[0])
    assert win(x) == one(x)


def test_auto_mode_picks_windows_for_attention_and_one_pass_for_students(teacher_dir, student_dir):
    teacher = Speech2Text(teacher_dir, window_sec=30.0)
    student = Speech2Text(student_dir, window_sec=30.0)
    assert not teacher.linear_time and student.linear_time
    assert teacher.uses_windows(16000 * 31) and not teacher.uses_windows(16000 * 29)
    assert not student.uses_windows(16000 * 600)
    assert not Speech2Text(teacher_dir, long_audio="one_pass").uses_windows(16000 * 600)


@pytest.mark.parametrize("which", ["student_dir", "teacher_dir"])
def test_long_file_one_pass_equals_same_audio_in_a_batch(which, request, yesno16k):
    """A 40 s input decoded in one pass alone gives what it gives inside a padded batch of shorter inputs."""
    model_dir = request.getfixturevalue(which)
    _, _, audio = yesno16k
    long_x = np.concatenate([tones(34.0, seed=1), *list(audio.values())[:1]])
    shorts = list(audio.values())[1:3]
    s2t = Speech2Text(model_dir, long_audio="one_pass")
    alone = s2t.log_probs_batch([long_x])[0]
    batched = s2t.log_probs_batch([shorts[0], long_x, shorts[1]], batch_size=3)
    np.testing.assert_allclose(batched[1], alone, atol=1e-4)
    for x, lp in zip(shorts, (batched[0], batched[2])):
        np.testing.assert_allclose(lp, s2t.log_probs_batch([x])[0], atol=1e-4)
    assert s2t.search(batched[1])[0].text == s2t.search(alone)[0].text
    assert s2t.decode_batch([shorts[0], long_x], batch_size=2)[1][0].text == s2t(long_x)[0].text
