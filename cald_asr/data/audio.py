"""Load audio named by a Kaldi wav.scp value: a file path or a pipe command ending in '|'.

Multi-channel rule (Kaldi's, from compute-*-feats with --channel=-1): channel 0 is used and a warning is
logged, because a silent downmix would hide a wrongly prepared corpus while an error would block stereo
corpora whose first channel is the intended one. Pass `channel=` to pick another one explicitly.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import soundfile as sf
import soxr

logger = logging.getLogger(__name__)

# soxr 'HQ' is its high-quality preset (20-bit precision, linear phase); 'VHQ' costs more for no audible gain.
RESAMPLE_QUALITY = "HQ"


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


def _read_pipe(spec: str) -> Tuple[np.ndarray, int]:
    cmd = pipe_command(spec)
    try:
        proc = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    except OSError as e:
        raise AudioError(f"pipe '{cmd} |': cannot run ({_short(e)})") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-300:]
        raise AudioError(f"pipe '{cmd} |': command failed with exit status {proc.returncode}: {err}")
    if not proc.stdout:
        raise AudioError(f"pipe '{cmd} |': empty audio (command wrote nothing)")
    try:
        data, fs = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
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


def load_audio(spec: str, target_fs: Optional[int] = None, channel: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Return (mono float32 samples in [-1, 1], sample rate); resampled to target_fs when given."""
    spec = spec.strip()
    data, fs = _read_pipe(spec) if is_pipe(spec) else _read_file(spec)
    if data.shape[0] == 0:
        raise AudioError(f"'{spec}': empty audio (0 samples)")
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
