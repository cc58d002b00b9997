"""Progress of a long loop: tqdm's bar on a terminal, plain lines everywhere else.

A bar redraws itself with carriage returns, which a terminal overwrites but a file keeps: in a job log, a
scheduler's output file or `2> log` every refresh piles up into one endless line. So where the stream is not
a terminal, `progress_bar` prints a plain line instead, every `every_s` seconds or every `every_percent` % of
the total, whichever comes first (but not twice within `MIN_GAP_S`: a loop of a second prints its last line
alone), and a last one when the loop ends:

    format train: 1200/3000 rec (40 %), 2.31 rec/s, 08:39 elapsed, ETA 12:59
    format train: 3000/3000 rec (100 %), 2.30 rec/s, 21:44 elapsed

The trainer's, stage 2's and decoding's bars all come from here. It lives in data/, the lowest part that all
three import (docs/architecture.md).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Optional, TextIO

from tqdm import tqdm

EVERY_S = 60.0  # plain lines: at least one a minute ...
EVERY_PERCENT = 10.0  # ... and one per tenth of the work
MIN_GAP_S = 5.0  # ... but a tenth done sooner than this waits for the next line


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def progress_bar(
    iterable: Optional[Iterable] = None,
    *,
    total: Optional[int] = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    file: Optional[TextIO] = None,
    every_s: float = EVERY_S,
    every_percent: float = EVERY_PERCENT,
    **tqdm_kwargs,
):
    """A tqdm bar when `file` (default stderr) is a terminal, else a PlainProgress with the same use (iterate
    over it, or update(n) and close(), or a `with` block). tqdm_kwargs (mininterval, dynamic_ncols, ...) are
    the bar's alone."""
    stream = sys.stderr if file is None else file
    if disable or is_terminal(stream):
        return tqdm(
            iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=stream, **tqdm_kwargs
        )
    return PlainProgress(iterable, total, desc, unit, initial, stream, every_s, every_percent)


class PlainProgress:
    """Counts like a tqdm bar and prints `<desc>: <i>/<n> <unit> (<x> %), <rate>, <elapsed> elapsed, ETA <t>`."""

    def __init__(
        self,
        iterable: Optional[Iterable],
        total: Optional[int],
        desc: str,
        unit: str,
        initial: int,
        file: TextIO,
        every_s: float,
        every_percent: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.file = iterable, total, desc, unit, file
        self.every_s, self.every_percent, self.clock = every_s, every_percent, clock
        self.n = self.start_n = self.printed_n = initial
        self.t0 = self.printed_t = clock()
        self.closed = False

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)
        self.close()

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        since = now - self.printed_t
        share_due = bool(self.total) and 100.0 * (self.n - self.printed_n) >= self.every_percent * self.total
        if (share_due and since >= MIN_GAP_S) or since >= self.every_s:
            self._print(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.n != self.printed_n:
                self._print(self.clock())

    def line(self, now: float) -> str:
        elapsed = now - self.t0
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{rate:.2f} {self.unit}/s", f"{tqdm.format_interval(elapsed)} elapsed"]
        if not self.total:
            return f"{self.desc}: {self.n} {self.unit}, " + ", ".join(parts)
        if self.n < self.total:
            parts.append("ETA " + (tqdm.format_interval((self.total - self.n) / rate) if rate > 0 else "?"))
        percent = 100 * self.n // self.total  # floor: 100 % only when done
        return f"{self.desc}: {self.n}/{self.total} {self.unit} ({percent} %), " + ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)
        self.printed_t, self.printed_n = now, self.n
