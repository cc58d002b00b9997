"""Progress off a terminal: plain lines, by time and by share of the work, never carriage returns."""

import io

from tqdm import tqdm

from cald_asr.data import progress
from cald_asr.data.progress import PlainProgress, progress_bar


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def plain(total, every_s=60.0, every_percent=10.0):
    out, clock = io.StringIO(), Clock()
    return PlainProgress(None, total, "format train", "rec", 0, out, every_s, every_percent, clock), out, clock


def test_a_line_per_tenth_of_the_work_and_a_last_one():
    bar, out, clock = plain(100)
    for _ in range(100):
        clock.t += 1.0  # 100 s in all: every tenth is 10 s after the last line
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10 and "\r" not in out.getvalue()
    assert lines[3] == "format train: 40/100 rec (40 %), 1.00 rec/s, 00:40 elapsed, ETA 01:00"
    assert lines[-1] == "format train: 100/100 rec (100 %), 1.00 rec/s, 01:40 elapsed"


def test_a_fast_loop_prints_its_last_line_alone():
    bar, out, clock = plain(100)
    for _ in range(100):
        clock.t += 0.01  # 1 s in all: every tenth comes sooner than MIN_GAP_S
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines() == ["format train: 100/100 rec (100 %), 100.00 rec/s, 00:01 elapsed"]


def test_a_slow_loop_prints_once_a_minute():
    bar, out, clock = plain(10_000)
    for _ in range(300):
        clock.t += 1.0  # 5 minutes, 3 % of the work
        bar.update(1)
    lines = out.getvalue().splitlines()
    assert [line.split(" rec (")[0] for line in lines] == [f"format train: {n}/10000" for n in (60, 120, 180, 240, 300)]
    assert lines[0].endswith("ETA 2:45:40")  # 9940 rec at 1 rec/s


def test_unknown_total_and_iteration():
    out = io.StringIO()
    items = list(progress_bar(iter(range(5)), desc="read", unit="utt", file=out))
    assert items == list(range(5))
    assert out.getvalue().startswith("read: 5 utt, ") and out.getvalue().count("\n") == 1


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_tqdms_bar():
    assert isinstance(progress_bar(total=3, file=Terminal()), tqdm)
    assert isinstance(progress_bar(total=3, file=io.StringIO()), PlainProgress)
    assert not progress.is_terminal(io.StringIO())
