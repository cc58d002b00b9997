"""Load audio named by a Kaldi wav.scp value: a file path or a pipe command ending in '|'.

Multi-channel rule (Kaldi's, from compute-*-feats with --channel=-1): channel 0 is used and a warning is
logged, because a silent downmix would hide a wrongly prepared corpus while an error would block stereo
corpora whose first channel is the intended one. Pass `channel=` to pick another one explicitly.

Pipe entries run through the shell as the user, as in Kaldi. Each runs in its own session under a time
limit (`pipe_timeout`, else $CALD_ASR_PIPE_TIMEOUT seconds, else 300): a hung command would otherwise stall
a whole stage, and killing only the shell would leave its children running and holding the pipe open.
Samples that are NaN or infinite make the audio unusable: written as 16-bit PCM they would become
full-scale noise, and in training they turn the loss into NaN.
"""

from __future__ import annotations

import io
import logging
import math
import os
import signal
import subprocess
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

# soxr 'HQ' is its high-quality preset (20-bit precision, linear phase); 'VHQ' costs more for no audible gain.
RESAMPLE_QUALITY = "HQ"
PIPE_TIMEOUT_ENV = "CALD_ASR_PIPE_TIMEOUT"
DEFAULT_PIPE_TIMEOUT_S = 300.0
# Frames decoded at a time when only checking a file: bounds memory for hour-long recordings.
SCAN_BLOCK_FRAMES = 1 << 18


class AudioError(RuntimeError):
    """An audio entry that cannot be used; the message names the path (or command) and the reason."""


def is_pipe(spec: str) -> bool:
    return spec.rstrip().endswith("|")


def pipe_command(spec: str) -> str:
    return spec.rstrip()[:-1].strip()


def probe_audio_file(path: str) -> Optional[str]:
    """Check a plain file without decoding it fully; return the reason it is unusable, or None if fine."""
    p = Path(path)
    if not p.exists():
        return f"'{path}': file does not exist"
    if not p.is_file():
        return f"'{path}': unreadable (not a regular file)"
    if not os.access(p, os.R_OK):
        return f"'{path}': unreadable (permission denied)"
    try:
        info = sf.info(str(p))
    except Exception as e:  # libsndfile raises its own error types for every kind of bad header
        return f"'{path}': not a readable audio file ({_short(e)})"
    if info.frames <= 0:
        return f"'{path}': empty audio (0 samples)"
    return None


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def pipe_timeout_s(value: Optional[float] = None) -> float:
    """The time limit of one pipe command: `value`, else $CALD_ASR_PIPE_TIMEOUT, else 300 s."""
    source = "pipe_timeout"
    if value is None:
        raw = os.environ.get(PIPE_TIMEOUT_ENV, "").strip()
        if not raw:
            return DEFAULT_PIPE_TIMEOUT_S
        source = PIPE_TIMEOUT_ENV
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{PIPE_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{source}={value!r}: the pipe timeout must be a positive number of seconds")
    return float(value)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command's whole process group (the shell and everything it started), then reap the shell."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    proc.wait()


def _read_pipe(spec: str, timeout: Optional[float] = None) -> Tuple[np.ndarray, int]:
    cmd = pipe_command(spec)
    limit = pipe_timeout_s(timeout)
    try:
        # Own session = own process group, so that a timeout can kill the command's children too.
        proc = subprocess.Popen(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise AudioError(f"pipe '{cmd} |': cannot run ({_short(e)})") from None
    try:
        out, err_bytes = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AudioError(
            f"pipe '{cmd} |': timed out after {limit:g} s and was killed with its child processes; "
            f"raise the limit with the environment variable {PIPE_TIMEOUT_ENV}=<seconds> (default "
            f"{DEFAULT_PIPE_TIMEOUT_S:g}) or validate_data_dir --pipe_timeout"
        ) from None
    except BaseException:  # interrupted: leave no command running behind us
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        err = err_bytes.decode("utf-8", "replace").strip()[-300:]
        raise AudioError(f"pipe '{cmd} |': command failed with exit status {proc.returncode}: {err}")
    if not out:
        raise AudioError(f"pipe '{cmd} |': empty audio (command wrote nothing)")
    try:
        data, fs = sf.read(io.BytesIO(out), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"pipe '{cmd} |': output is not readable audio ({_short(e)})") from None
    return data, fs


def _read_file(path: str) -> Tuple[np.ndarray, int]:
    problem = probe_audio_file(path)
    if problem is not None:
        raise AudioError(problem)
    try:
        data, fs = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"'{path}': not a readable audio file ({_short(e)})") from None
    return data, fs


def resample(x: np.ndarray, fs_in: int, fs_out: int) -> np.ndarray:
    if fs_in == fs_out:
        return x
    return soxr.resample(x, fs_in, fs_out, quality=RESAMPLE_QUALITY).astype(np.float32, copy=False)


def _check_finite(spec: str, n_bad: int, n_total: int) -> None:
    if n_bad:
        raise AudioError(f"'{spec}': {n_bad} of {n_total} samples are NaN or infinite (non-finite audio)")


def scan_audio(spec: str, pipe_timeout: Optional[float] = None) -> Tuple[int, int]:
    """Decode every sample once, as load_audio would, and return (sample rate, frames); raises AudioError
    for all that load_audio rejects. Files are read in blocks, so this needs little memory."""
    spec = spec.strip()
    if is_pipe(spec):
        data, fs = _read_pipe(spec, pipe_timeout)
        if data.shape[0] == 0:
            raise AudioError(f"'{spec}': empty audio (0 samples)")
        _check_finite(spec, int(np.count_nonzero(~np.isfinite(data))), data.size)
        return int(fs), int(data.shape[0])
    problem = probe_audio_file(spec)
    if problem is not None:
        raise AudioError(problem)
    frames = n_bad = n_total = 0
    try:
        with sf.SoundFile(spec) as f:
            fs = f.samplerate
            for block in f.blocks(blocksize=SCAN_BLOCK_FRAMES, dtype="float32", always_2d=True):
                frames += block.shape[0]
                n_bad += int(np.count_nonzero(~np.isfinite(block)))
                n_total += block.size
    except Exception as e:
        raise AudioError(f"'{spec}': not a readable audio file ({_short(e)})") from None
    if frames == 0:
        raise AudioError(f"'{spec}': empty audio (0 samples)")
    _check_finite(spec, n_bad, n_total)
    return int(fs), frames


def load_audio(
    spec: str, target_fs: Optional[int] = None, channel: Optional[int] = None, pipe_timeout: Optional[float] = None
) -> Tuple[np.ndarray, int]:
    """Return (mono float32 samples in [-1, 1], sample rate); resampled to target_fs when given.
    `pipe_timeout` (seconds) limits a pipe command; None: $CALD_ASR_PIPE_TIMEOUT, else 300."""
    spec = spec.strip()
    data, fs = _read_pipe(spec, pipe_timeout) if is_pipe(spec) else _read_file(spec)
    if data.shape[0] == 0:
        raise AudioError(f"'{spec}': empty audio (0 samples)")
    # Every channel counts, as in scan_audio: a file with NaN anywhere is broken, whichever channel is used.
    _check_finite(spec, int(np.count_nonzero(~np.isfinite(data))), data.size)
    n_ch = data.shape[1]
    if channel is None:
        if n_ch > 1:
            logger.warning("'%s' has %d channels; using channel 0 (pass channel= to choose)", spec, n_ch)
        channel = 0
    if not 0 <= channel < n_ch:
        raise AudioError(f"'{spec}': channel {channel} requested but the audio has {n_ch} channel(s)")
    x = np.ascontiguousarray(data[:, channel])
    if target_fs is not None and target_fs != fs:
        x = resample(x, fs, int(target_fs))
        fs = int(target_fs)
    return x, int(fs)


def write_wav(path: os.PathLike | str, x: np.ndarray, fs: int) -> None:
    """Write 16-bit PCM; clip first because resampling can overshoot +-1 and PCM would wrap around."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    sf.write(str(tmp), np.clip(x, -1.0, 1.0), fs, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
