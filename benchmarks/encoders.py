"""Encoder time and peak memory against audio length: a recipe's attention teacher, in one pass (its
positions extended) and in 30-second windows, against its converted linear-time students, on real
speech; batch 1, float32, 2 threads (CPU) or one GPU. Also the real-time factor and WER of full
decoding (Speech2Text, greedy CTC) at each length.

    python benchmarks/encoders.py --teacher egs/fsdd/asr1/exp/asr_teacher_whisper_tiny_en_char/best \
        --students egs/fsdd/asr1/exp/cald_target_bimamba2_char/best [...] \
        [--lengths 10 30 60 120 300 600] [--budget 6] [--out benchmarks/out/encoders] [--device cpu|cuda]
    python benchmarks/encoders.py --synthetic tiny_en ...   # same shapes, seeded random weights

Audio: the 300 official FSDD test recordings (index 0-4, all speakers) joined into one stream with
the recipe's gap rule (50-300 ms of silence between recordings, 100 ms at the ends; seeded), long
enough for the longest length; a length L is the stream's recordings that end before L seconds,
padded with silence to exactly L seconds (so its transcript is known). Written once to
`<work-dir>/audio/` (default: under --out) as 8 kHz 16-bit wav + JSON, and reused (`--audio-dir` to
point at a copy; `--noise-audio` times noise bursts where neither a copy nor the corpus is at hand).

What is timed:
- `encoder`: the encoder alone (conv front end, layers, final norm) on precomputed log-mel
  features, under inference_mode. `one_pass`: the whole input at once. `windowed`: the windows
  Speech2Text uses (30 s, 5 s overlap, starts every 25 s), one after another, batch 1.
- `decode`: Speech2Text on the 16 kHz waveform: front end, model, CTC posteriors, greedy search and
  the hypothesis' CTC score; the teacher in windows (its default for long inputs; also in one pass
  with --decode-teacher-one-pass), students in one pass. RTF = decode seconds / audio seconds; WER
  against the stream's transcript.
After a warm-up call on 1 s of input, each time is the fastest of the first call and the repeats
after it while `--budget` seconds last
(at least one, at most five); at each length the models are measured in turn (`--rounds` > 1
alternates their order and keeps each one's fastest).

Peak memory: on CPU each measurement runs in a fresh subprocess and reports its resident-set
growth during the first call: the kernel's high-water mark (VmHWM, reset through
/proc/self/clear_refs right before the call) minus the resident size just before it, so the
weights, features and interpreter are not counted (ru_maxrss where clear_refs is refused); freed
memory glibc still holds is handed back first (malloc_trim), else the call would reuse it unseen. On CUDA,
everything runs in this process and peak memory is torch's allocator: max_memory_allocated during
the call minus memory_allocated before it.

FLOPs are analytic forward counts, multiply-add = 2 (see the *_flops functions): front-end convs,
attention projections and scores (QK^T, PV), feed-forward blocks, and the mixers as
benchmarks/mixers.py counts them; norms, activations, softmax and the CTC head are left out. The
one-pass teacher over a student is the speed-up a student could reach if both ran at the same
FLOP rate ("limit"); the measured speed-up over it is reported as a fraction of the limit.

Writes encoders.json, encoders.md and encoders.png to --out. The `load` column is the highest
1-minute load average seen while measuring that row (above ~1 other jobs shared the two cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the package comes from this checkout
    sys.path.insert(0, str(ROOT))

# Every measurement reads and resamples the stream; what only WER or --synthetic needs is imported where it is
# used, since a bare GPU machine has only the packages benchmarks/gpu_encoders.sh installs from wheels.
from cald_asr.corpora.fsdd import DIGIT_WORDS, EDGE_SAMPLES, SAMPLE_RATE, Recording, fill_stream, read_recordings  # noqa: E402
from cald_asr.data.audio import load_audio, resample, write_wav  # noqa: E402
from cald_asr.report.machine import describe_machine  # noqa: E402

THREADS = 2
DEFAULT_LENGTHS = [10, 30, 60, 120, 300, 600]
WINDOW_SEC, OVERLAP_SEC = 30.0, 5.0
FS_STREAM, FS_MODEL = SAMPLE_RATE, 16000
STREAM_SEED = 2024


# ---- analytic forward FLOPs (multiply-add = 2) ---------------------------------------------
def attention_flops(T: int, d: int) -> Dict[str, int]:
    return {"attn_proj": 8 * T * d * d, "attn_scores": 4 * T * T * d}  # q,k,v,o; QK^T and PV


def mamba2_flops(
    T: int,
    d: int,
    d_state: int = 128,
    headdim: int = 64,
    expand: int = 1,
    ngroups: int = 1,
    chunk_size: Optional[int] = None,
    d_conv: int = 4,
) -> int:
    """One direction; benchmarks/mixers.py's count, with expand and groups."""
    from cald_asr.mixers.ops.ssd import DEFAULT_CHUNK

    L, n, g = chunk_size or DEFAULT_CHUNK, d_state, ngroups
    di = expand * d
    h = di // headdim
    proj = 2 * T * d * (2 * di + 2 * g * n + h) + 2 * T * di * d
    conv = 2 * T * (di + 2 * g * n) * d_conv
    ssd = 2 * T * L * g * n + 2 * T * L * di + 4 * T * di * n  # C.B^T, M@X, chunk states, state->output
    return proj + conv + ssd


def mamba_flops(
    T: int, d: int, d_state: int = 16, expand: int = 2, dt_rank: Optional[int] = None, d_conv: int = 4
) -> int:
    """One direction of Mamba (v1), as benchmarks/mixers.py counts it."""
    di, n = expand * d, d_state
    r = dt_rank or math.ceil(d / 16)
    proj = 2 * T * d * 2 * di + 2 * T * di * (r + 2 * n) + 2 * T * r * di + 2 * T * di * d
    return proj + 2 * T * di * d_conv + 7 * T * di * n


def linformer_flops(T: int, d: int, k: int = 256) -> int:
    return 8 * T * d * d + 4 * T * k * d + 4 * T * k * d  # projections; E^T K, F^T V; attention


MIXER_KEYS = {  # the mixer_conf keys each count reads
    "bimamba2": ("d_state", "headdim", "expand", "ngroups", "chunk_size", "d_conv"),
    "mamba2": ("d_state", "headdim", "expand", "ngroups", "chunk_size", "d_conv"),
    "bimamba": ("d_state", "expand", "dt_rank", "d_conv"),
    "mamba": ("d_state", "expand", "dt_rank", "d_conv"),
    "linformer": ("k",),
}


def mixer_flops(mixer: Optional[str], conf: Dict[str, Any], T: int, d: int) -> Dict[str, int]:
    """Forward FLOPs of one layer's token mixer over T frames, by component."""
    if not mixer:
        return attention_flops(T, d)
    if mixer not in MIXER_KEYS:
        raise ValueError(f"no FLOP count for mixer {mixer!r}; known: {sorted(MIXER_KEYS)}")
    kw = {k: conf[k] for k in MIXER_KEYS[mixer] if k in (conf or {})}
    if mixer in ("bimamba2", "mamba2"):
        return {"mixer": (2 if mixer == "bimamba2" else 1) * mamba2_flops(T, d, **kw)}
    if mixer in ("bimamba", "mamba"):
        return {"mixer": (2 if mixer == "bimamba" else 1) * mamba_flops(T, d, **kw)}
    return {"mixer": linformer_flops(T, d, **kw)}


def encoder_flops(config: Dict[str, Any], n_feats: int) -> Dict[str, int]:
    """Forward FLOPs of a Whisper-type encoder (conv1 k3, conv2 k3 stride 2, layers of mixer + FFN)
    on n_feats log-mel frames, by component, plus 'total'."""
    if config.get("encoder") != "whisper":
        raise ValueError(f"FLOP counts cover the whisper encoder only, not {config.get('encoder')!r}")
    c = config["encoder_conf"]
    m, d, ffn, layers = c.get("n_mels", 80), c.get("d_model", 384), c.get("ffn_dim", 1536), c.get("n_layers", 4)
    T = (n_feats + 1) // 2  # conv2: k3, stride 2, pad 1
    out = {"conv1": 2 * n_feats * m * d * 3, "conv2": 2 * T * d * d * 3}
    per_layer = mixer_flops(config.get("mixer"), config.get("mixer_conf") or {}, T, d)
    per_layer["ffn"] = 4 * T * d * ffn
    for k, v in per_layer.items():
        out[k] = layers * v
    out["total"] = sum(out.values())
    return out


def feature_windows(n_feats: int, feats_per_sec: float = 100.0, stride: int = 2):
    """The windows Speech2Text decodes a long input in, in feature frames (decode/long_audio.py)."""
    from cald_asr.decode.long_audio import plan_windows

    return plan_windows(
        n_feats, int(round(WINDOW_SEC * feats_per_sec)), int(round(OVERLAP_SEC * feats_per_sec)), stride
    )


def windowed_flops(config: Dict[str, Any], n_feats: int) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for w in feature_windows(n_feats):
        for k, v in encoder_flops(config, w.end - w.start).items():
            out[k] = out.get(k, 0) + v
    return out


# ---- audio: FSDD test recordings joined into one stream ------------------------------------
def fsdd_pool(corpus_dir: Path) -> List[Recording]:
    """The official FSDD test recordings (take index 0-4), read and checked by the corpus module."""
    pool = [r for r in read_recordings(corpus_dir).values() if r.split == "test"]
    if not pool:
        raise FileNotFoundError(
            f"{Path(corpus_dir) / 'recordings'}: no FSDD test recordings ({{digit}}_{{speaker}}_{{0-4}}.wav)"
        )
    return pool


def noise_pool(n: int = 300, seed: int = STREAM_SEED) -> List[Recording]:
    """Stand-in recordings where no corpus is at hand (a bare GPU machine): seeded noise bursts of
    FSDD's length range, digit -1 (no transcript). Time and memory do not depend on the content."""
    rng = np.random.default_rng(seed)
    return [
        Recording(
            f"noise_{k}",
            -1,
            "noise",
            k,
            Path("noise"),
            (rng.standard_normal(int(rng.integers(FS_STREAM * 3 // 10, FS_STREAM * 6 // 10))) * 3000).astype(np.int16),
        )
        for k in range(n)
    ]


def build_stream(pool: Sequence[Recording], seconds: float, seed: int = STREAM_SEED):
    """(int16 audio at 8 kHz, [(onset sample, n samples, digit)]): the recipe's test_long stream
    (cald_asr.corpora.fsdd.fill_stream: passes over the shuffled pool, its gap rule of 50-300 ms of
    silence between recordings and 100 ms at both ends), of exactly `seconds`."""
    audio, parts, onsets = fill_stream(np.random.default_rng(seed), pool, int(round(seconds * FS_STREAM)))
    return audio, [(on, int(r.samples.size), r.digit) for on, r in zip(onsets, parts)]


def stream_files(audio_dir: Path):
    return audio_dir / "fsdd_test_stream.wav", audio_dir / "fsdd_test_stream.json"


def ensure_stream(audio_dir: Path, seconds: float, corpus_dir: Optional[Path], noise: bool = False) -> Path:
    """The stream's wav + JSON in audio_dir, at least `seconds` long; built if absent: from the FSDD
    corpus, or (noise=True and no corpus) from noise bursts."""
    wav_path, meta_path = stream_files(audio_dir)
    if meta_path.is_file() and json.loads(meta_path.read_text())["seconds"] >= seconds:
        return audio_dir
    if corpus_dir is None and not noise:
        raise FileNotFoundError(
            f"{meta_path}: no audio stream of {seconds} s here, and no FSDD corpus to build one "
            "from (give --corpus-dir, --audio-dir with a stream, or --noise-audio)"
        )
    pool = fsdd_pool(corpus_dir) if corpus_dir is not None else noise_pool()
    audio, parts = build_stream(pool, seconds)
    write_wav(wav_path, audio.astype(np.float32) / 32768.0, FS_STREAM)  # 16-bit PCM: the samples come back exact
    meta_path.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "fs": FS_STREAM,
                "seed": STREAM_SEED,
                "source": str(corpus_dir) if corpus_dir is not None else "noise",
                "parts": parts,
            }
        )
    )
    return audio_dir


def cut(audio_dir: Path, seconds: float):
    """(float32 waveform at 16 kHz of exactly `seconds`, transcript): the stream's recordings that end
    before `seconds`, the rest silence."""
    wav_path, meta_path = stream_files(audio_dir)
    meta = json.loads(meta_path.read_text())
    n = int(round(seconds * FS_STREAM))
    kept = [(on, size, digit) for on, size, digit in meta["parts"] if on + size + EDGE_SAMPLES <= n]
    x = np.zeros(n, dtype=np.float32)
    if kept:
        end = kept[-1][0] + kept[-1][1]
        stream, fs = load_audio(str(wav_path))
        if fs != FS_STREAM:
            raise ValueError(f"{wav_path}: the stream is {fs} Hz, its JSON and this benchmark say {FS_STREAM} Hz")
        x[:end] = stream[:end]
    return upsample(x), " ".join(DIGIT_WORDS[d] for _, _, d in kept if d >= 0)


def upsample(x: np.ndarray) -> np.ndarray:
    """8 -> 16 kHz as stage 2 does it (cald_asr.data.audio.resample: soxr, HQ)."""
    return resample(x, FS_STREAM, FS_MODEL)


def word_errors(ref: str, hyp: str) -> int:
    """Substitutions + deletions + insertions, as the recipe scores (cald_asr.scoring)."""
    from cald_asr.scoring import score_texts

    return score_texts({"stream": ref}, {"stream": hyp}).totals().err


# ---- models --------------------------------------------------------------------------------
SYNTHETIC = {
    # Whisper tiny.en's encoder and the FSDD recipe's students (conf/mixer/*.yaml)
    "tiny_en": dict(
        encoder_conf=dict(n_mels=80, d_model=384, n_heads=6, n_layers=4, ffn_dim=1536),
        students={
            "bimamba2": dict(d_state=128, headdim=64, d_conv=4, expand=1),
            "bimamba": dict(d_state=16, d_conv=4, expand=1),
        },
    ),
    # a small one for tests
    "test": dict(
        encoder_conf=dict(n_mels=80, d_model=64, n_heads=2, n_layers=2, ffn_dim=128),
        students={
            "bimamba2": dict(d_state=16, headdim=32, d_conv=4, expand=1, chunk_size=32),
            "bimamba": dict(d_state=8, d_conv=4, expand=1),
        },
    ),
}


def fsdd_token_list(out_dir: Path) -> List[str]:
    """The char token list as stage 3 makes it (cald_asr.bin.make_token_list), written to out_dir. Every
    FSDD transcript is digit words, so one text of the ten words gives the recipe's tokens; their order
    follows this text's counts, not the training set's, which a random-weight model does not care about."""
    from cald_asr.bin import make_token_list
    from cald_asr.text import TokenList

    text = out_dir / "text"
    out_dir.mkdir(parents=True, exist_ok=True)
    text.write_text("digits " + " ".join(DIGIT_WORDS) + "\n", encoding="utf-8")
    if make_token_list.main(["--token_type", "char", "--text", str(text), "--output_dir", str(out_dir)]):
        raise RuntimeError(f"{text}: make_token_list failed (its error is above)")
    return TokenList.load(out_dir / "tokens.txt").tokens


def make_synthetic(preset: str, out_dir: Path, mixers: Sequence[str]) -> Dict[str, Any]:
    """A seeded random-weight Whisper-shaped CTC teacher and its conversions to `mixers`, saved as
    model dirs under out_dir (same shapes as trained ones, so the same time and memory)."""
    from cald_asr.convert import convert_model
    from cald_asr.models.model_file import build_model, load_model, save_model

    spec = SYNTHETIC[preset]
    config = {
        "model": "asr_ctc",
        "frontend": "whisper_logmel",
        "frontend_conf": {"n_mels": 80},
        "encoder": "whisper",
        "encoder_conf": dict(spec["encoder_conf"]),
        "token_list": fsdd_token_list(out_dir / "token_list" / "char"),
        "token_type": "char",
        "initialised_from": f"seeded random weights (synthetic preset {preset})",
    }
    torch.manual_seed(0)
    teacher = save_model(build_model(config), config, out_dir / f"{preset}_teacher")
    students = []
    for i, mixer in enumerate(mixers):
        if mixer not in spec["students"]:
            raise ValueError(f"synthetic preset {preset!r} has no {mixer} student; known: {sorted(spec['students'])}")
        model, _ = load_model(teacher)
        torch.manual_seed(1 + i)
        conf = dict(spec["students"][mixer])
        convert_model(model, mixer, conf)
        students.append(
            save_model(model, {**config, "mixer": mixer, "mixer_conf": conf}, out_dir / f"{preset}_{mixer}")
        )
    return {"teacher": teacher, "students": students}


def model_name(model_dir: Path) -> str:
    p = Path(model_dir).resolve()
    return p.parent.name if p.name in ("best", "final", "init") else p.name


def set_kernels(model: torch.nn.Module, use: Optional[bool]) -> None:
    from cald_asr.mixers import Mamba, Mamba2

    for m in model.modules():
        if isinstance(m, (Mamba, Mamba2)):
            m.use_kernels = use


# ---- one measurement -----------------------------------------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory() -> None:
    """Hand memory that glibc keeps after frees (the feature extraction's temporaries) back to the
    kernel, so that the call's own allocations show as resident-set growth instead of reusing it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _timed_calls(call, device: torch.device, budget_s: float, warmup=None) -> Dict[str, Any]:
    """warmup() (one-time initialisation: measured 0.3 s on the first calls of even a tiny model),
    then the first call (peak memory), then repeats while within the budget; the fastest time."""
    cuda = device.type == "cuda"
    if warmup is not None:
        warmup()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        hwm = False
    else:
        _release_free_memory()
        hwm = _reset_hwm()
        base = rss_bytes()
    t0 = time.perf_counter()
    result = call()
    if cuda:
        torch.cuda.synchronize(device)
    first = time.perf_counter() - t0
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = (_hwm_bytes() if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base
    times = []
    while len(times) < 5 and (not times or first + sum(times) < budget_s):
        t0 = time.perf_counter()
        result = call()
        if cuda:
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return {
        "time_s": min(times + [first]),
        "first_s": first,
        "runs": 1 + len(times),
        "peak_mem_mb": peak / 2**20,
        "mem_method": "cuda_allocator" if cuda else ("VmHWM" if hwm else "ru_maxrss"),
        "_result": result,
    }


def measure(job: Dict[str, Any]) -> Dict[str, Any]:
    """job: what (encoder|decode), model_dir, mode (one_pass|windowed), seconds, audio_dir, device,
    kernels (None|True|False), budget, compile."""
    from cald_asr.models.model_file import load_model

    device = torch.device(job["device"])
    if device.type == "cpu":
        torch.set_num_threads(job.get("threads", THREADS))
    torch.manual_seed(0)
    wav, ref = cut(Path(job["audio_dir"]), job["seconds"])
    if job["what"] == "decode":
        from cald_asr.inference import Speech2Text

        s2t = Speech2Text(job["model_dir"], device=str(device), beam_size=job.get("beam", 1), long_audio=job["mode"])
        set_kernels(s2t.model, job.get("kernels"))
        r = _timed_calls(
            lambda: s2t(wav, fs=FS_MODEL)[0].text,
            device,
            job["budget"],
            warmup=lambda: s2t(wav[:FS_MODEL], fs=FS_MODEL),
        )
        hyp = r.pop("_result")
        r.update(
            rtf=r["time_s"] / job["seconds"],
            ref_words=len(ref.split()),
            word_errors=word_errors(ref, hyp),
            hyp_words=len(hyp.split()),
        )
        return r

    model, config = load_model(job["model_dir"])
    set_kernels(model, job.get("kernels"))
    model.to(device)
    with torch.inference_mode():
        x = torch.from_numpy(wav)[None].to(device)
        feats, _ = model.frontend(x) if model.frontend is not None else (x, None)
    encoder = model.encoder
    if job.get("compile"):
        encoder = torch.compile(encoder)
    n = feats.shape[1]
    if job["mode"] == "windowed":
        n_out = int(model.encoder.output_lengths(torch.tensor([int(WINDOW_SEC * 100)]))[0])
        pieces = [(w.start, w.end) for w in feature_windows(n, stride=max(1, round(WINDOW_SEC * 100 / n_out)))]
    else:
        pieces = [(0, n)]
    lengths = {(s, e): torch.tensor([e - s], device=device) for s, e in pieces}

    def call(pieces=pieces):
        with torch.inference_mode():
            for s, e in pieces:
                out = encoder(feats[:, s:e], lengths.get((s, e), torch.tensor([e - s], device=device)))
        return out.out.shape[1]

    # warm-up on 1 s; under torch.compile a full call instead (compiling happens there, untimed)
    r = _timed_calls(
        call, device, job["budget"], warmup=call if job.get("compile") else lambda: call([(0, min(n, 100))])
    )
    r.pop("_result")
    r["windows"] = len(pieces)
    return r


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """On CPU in a fresh process (its own peak memory and allocator state); on CUDA, or with
    in_process (tests: no process start per measurement, but memory freed by an earlier measurement
    is reused unseen), in this one."""
    if job["device"] != "cpu" or job.get("in_process"):
        try:
            return measure(job)
        except Exception as e:  # one failed measurement (e.g. a kernel that will not compile) is a row
            return {"error": f"{type(e).__name__}: {e}"[:400]}
    threads = str(job.get("threads", THREADS))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, env=env
    )
    if out.returncode:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1][:400] if lines else f"exit code {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_rate(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """float32 matmul FLOP/s on this device, measured now."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = math.inf
    for _ in range(reps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# ---- the benchmark -------------------------------------------------------------------------
def plan(
    models: List[Dict[str, Any]],
    kernel_modes: List[Optional[bool]],
    decode: bool,
    decode_teacher_one_pass: bool = False,
) -> List[Dict[str, Any]]:
    """The (model, mode, kernels, what) combinations measured at every length."""
    jobs = []
    for m in models:
        modes = ["one_pass", "windowed"] if m["role"] == "teacher" else ["one_pass"]
        kms = kernel_modes if m["recurrent"] else [None]
        for km in kms:
            for mode in modes:
                jobs.append(
                    {
                        "what": "encoder",
                        "label": m["label"],
                        "model_dir": str(m["dir"]),
                        "mode": mode,
                        "kernels": km,
                        "role": m["role"],
                    }
                )
            if decode:
                teacher_modes = ["windowed"] + (["one_pass"] if decode_teacher_one_pass else [])
                for mode in teacher_modes if m["role"] == "teacher" else ["one_pass"]:
                    jobs.append(
                        {
                            "what": "decode",
                            "label": m["label"],
                            "model_dir": str(m["dir"]),
                            "mode": mode,
                            "kernels": km,
                            "role": m["role"],
                        }
                    )
    return jobs


def row_key(job) -> str:
    k = "" if job["kernels"] is None else (" +kernels" if job["kernels"] else " -kernels")
    return f"{job['label']} ({job['mode'].replace('_', ' ')}){k}"


def resolve_models(args, work: Path) -> List[Dict[str, Any]]:
    from cald_asr.models.model_file import read_config

    if args.synthetic:
        made = make_synthetic(args.synthetic, work / "models", args.synthetic_mixers)
        teacher, students = made["teacher"], made["students"]
    else:
        if not args.teacher:
            raise SystemExit("give --teacher DIR (and --students DIR ...) or --synthetic PRESET")
        teacher, students = Path(args.teacher), [Path(s) for s in args.students]
    models = []
    for role, d in [("teacher", teacher)] + [("student", s) for s in students]:
        config = read_config(Path(d) / "config.yaml")
        if role == "teacher" and config.get("mixer"):
            raise SystemExit(f"{d}: --teacher must be an attention model, but its config names mixer {config['mixer']}")
        if role == "student" and not config.get("mixer"):
            raise SystemExit(f"{d}: a student's config names a mixer; this one has none")
        models.append(
            {
                "role": role,
                "dir": Path(d),
                "label": model_name(d),
                "config": config,
                "recurrent": config.get("mixer") in ("bimamba2", "mamba2", "bimamba", "mamba"),
            }
        )
    return models


def flops_of(config, mode: str, seconds: float) -> Optional[Dict[str, int]]:
    n_feats = int(round(seconds * FS_MODEL)) // 160  # Whisper log-mel: one frame per 10 ms
    try:
        return windowed_flops(config, n_feats) if mode == "windowed" else encoder_flops(config, n_feats)
    except ValueError:
        return None


def get_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher", help="the attention teacher's model dir")
    ap.add_argument("--students", nargs="*", default=[], help="converted students' model dirs")
    ap.add_argument("--synthetic", choices=sorted(SYNTHETIC), help="seeded random-weight models of a preset's shapes")
    ap.add_argument("--synthetic-mixers", nargs="+", default=["bimamba2"], help="students made with --synthetic")
    ap.add_argument("--lengths", type=float, nargs="+", default=DEFAULT_LENGTHS, help="audio seconds")
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of repeats per measurement")
    ap.add_argument("--rounds", type=int, default=1, help="alternating repeats per length (fastest kept)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=THREADS, help="CPU threads (the issue: 2)")
    ap.add_argument(
        "--kernels",
        choices=["auto", "on", "off", "both"],
        default="auto",
        help="mamba-ssm kernels for recurrent students (CUDA): both = each measured with and without",
    )
    ap.add_argument("--no-decode", action="store_true", help="encoder measurements only")
    ap.add_argument(
        "--no-teacher-one-pass",
        action="store_true",
        help="skip the one-pass teacher (its time grows as length squared)",
    )
    ap.add_argument(
        "--decode-teacher-one-pass",
        action="store_true",
        help="also decode with the teacher in one pass (it decodes in windows by default)",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile the encoder (first call not timed)")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--corpus-dir", help="FSDD corpus (default $CALD_ASR_SHARED_DATA/fsdd or ../shared/data/fsdd)")
    ap.add_argument("--audio-dir", help="where the audio stream is, or is written (default <work-dir>/audio)")
    ap.add_argument(
        "--noise-audio",
        action="store_true",
        help="without a stream or corpus, time noise bursts instead of speech (no WER)",
    )
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "out" / "encoders"),
        help="encoders.{json,md,png} go here",
    )
    ap.add_argument("--work-dir", help="audio stream and synthetic models (default --out)")
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="CPU measurements in this process (faster; peak memory then misses reused memory)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    return ap


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return 0

    out = Path(args.out)
    work = Path(args.work_dir) if args.work_dir else out
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    corpus = (
        Path(args.corpus_dir)
        if args.corpus_dir
        else Path(os.environ.get("CALD_ASR_SHARED_DATA", ROOT.parent / "shared" / "data")) / "fsdd"
    )
    audio_dir = ensure_stream(
        Path(args.audio_dir) if args.audio_dir else work / "audio",
        max(args.lengths),
        corpus if (corpus / "recordings").is_dir() else None,
        noise=args.noise_audio,
    )
    audio_source = json.loads(stream_files(audio_dir)[1].read_text())["source"]
    models = resolve_models(args, work)
    kernel_modes = {"auto": [None], "on": [True], "off": [False], "both": [True, False]}[args.kernels]
    if device.type == "cpu":
        kernel_modes = [None]
    jobs = plan(models, kernel_modes, not args.no_decode, args.decode_teacher_one_pass)
    if args.no_teacher_one_pass:
        jobs = [j for j in jobs if not (j["role"] == "teacher" and j["mode"] == "one_pass")]
    rate = matmul_rate(device)
    print(
        f"float32 matmul rate ({device}{', %d threads' % args.threads if device.type == 'cpu' else ''}): "
        f"{rate / 1e9:.1f} GFLOP/s",
        flush=True,
    )
    config_of = {m["label"]: m["config"] for m in models}
    result = {
        "device": str(device),
        "device_name": device_name(device),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": describe_machine(),
        "matmul_gflops": rate / 1e9,
        "lengths": args.lengths,
        "audio": str(audio_dir),
        "audio_source": audio_source,
        "synthetic": args.synthetic,
        "compile": args.compile,
        "budget_s": args.budget,
        "rounds": args.rounds,
        "in_process": args.in_process,
        "models": {
            m["label"]: {
                "dir": str(m["dir"]),
                "role": m["role"],
                "mixer": m["config"].get("mixer"),
                "mixer_conf": m["config"].get("mixer_conf"),
            }
            for m in models
        },
        "rows": [],
    }
    for seconds in args.lengths:
        got: Dict[tuple, Dict[str, Any]] = {}
        for rnd in range(args.rounds):
            for job in jobs if rnd % 2 == 0 else jobs[::-1]:
                full = dict(
                    job,
                    seconds=seconds,
                    audio_dir=str(audio_dir),
                    device=args.device,
                    budget=args.budget,
                    threads=args.threads,
                    compile=args.compile,
                    beam=args.beam,
                    in_process=args.in_process,
                )
                key = (job["what"], row_key(job))
                load = os.getloadavg()[0]
                r = run_job(full)
                row = got.setdefault(
                    key,
                    {
                        "what": job["what"],
                        "model": row_key(job),
                        "label": job["label"],
                        "role": job["role"],
                        "mode": job["mode"],
                        "kernels": job["kernels"],
                        "seconds": seconds,
                        "load": 0.0,
                    },
                )
                row["load"] = max(row["load"], load)
                if "error" in r:
                    row.setdefault("error", r["error"])
                    continue
                row.pop("error", None)
                if "time_s" not in row or r["time_s"] < row["time_s"]:
                    peak = row.get("peak_mem_mb")
                    row.update(r)
                    if peak is not None:
                        row["peak_mem_mb"] = peak  # the first round's peak
        for (what, _), row in got.items():
            if what == "encoder":
                f = flops_of(config_of[row["label"]], row["mode"], seconds)
                if f is not None:
                    row["flops"] = f["total"]
                    row["flops_by_part"] = f
                    if "time_s" in row:
                        row["frac_matmul"] = f["total"] / row["time_s"] / rate
            if "time_s" in row:
                row["ms_per_audio_s"] = 1e3 * row["time_s"] / seconds
            result["rows"].append(row)
            print(fmt_row(row), flush=True)
        write_results(result, out)  # after every length: a run cut short still leaves its numbers
    print(to_markdown(result))
    return 0


def write_results(result: Dict[str, Any], out: Path) -> None:
    result["summary"] = summarize(result["rows"], result["lengths"])
    (out / "encoders.json").write_text(json.dumps(result, indent=1))
    (out / "encoders.md").write_text(to_markdown(result))
    try:
        plot(result["rows"], out / "encoders.png", result)
    except ImportError as e:
        print(f"no plot: {e}", file=sys.stderr)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu"


def fmt_row(row) -> str:
    head = f"{row['what']:>7} {row['model']:<55} {row['seconds']:>6g} s load {row['load']:4.1f}"
    if "time_s" not in row:
        return f"{head} | ERROR {row.get('error')}"
    s = f"{head} | {row['time_s'] * 1e3:10.1f} ms {row['peak_mem_mb']:8.0f} MB {row['ms_per_audio_s']:7.2f} ms/s"
    if row["what"] == "decode":
        s += f" RTF {row['rtf']:.4f} WER {100 * row['word_errors'] / max(1, row['ref_words']):.1f}%"
    elif "frac_matmul" in row:
        s += f" {100 * row['frac_matmul']:5.1f}% of matmul"
    return s


def summarize(rows: List[Dict[str, Any]], lengths: Sequence[float]) -> Dict[str, Any]:
    enc = {(r["model"], r["seconds"]): r for r in rows if r["what"] == "encoder"}
    teacher1 = {s: r for (m, s), r in enc.items() if r["role"] == "teacher" and r["mode"] == "one_pass"}
    teacherw = {s: r for (m, s), r in enc.items() if r["role"] == "teacher" and r["mode"] == "windowed"}
    students = sorted({m for (m, s), r in enc.items() if r["role"] == "student"})
    out: Dict[str, Any] = {"per_length": {}, "students": {}}
    for s in lengths:
        entry: Dict[str, Any] = {}
        t1, tw = teacher1.get(s), teacherw.get(s)
        for m in students:
            r = enc.get((m, s))
            if r is None:
                continue
            e: Dict[str, Any] = {}
            if t1 and "flops" in t1 and "flops" in r:
                e["flop_limit"] = t1["flops"] / r["flops"]
                if "time_s" in t1 and "time_s" in r:
                    e["speedup"] = t1["time_s"] / r["time_s"]
                    e["frac_of_limit"] = e["speedup"] / e["flop_limit"]
            if tw and "time_s" in tw and "time_s" in r:
                e["speedup_vs_windowed"] = tw["time_s"] / r["time_s"]
                if "flops" in tw and "flops" in r:
                    e["flop_ratio_windowed"] = tw["flops"] / r["flops"]
            entry[m] = e
        out["per_length"][f"{s:g}"] = entry
    for m in students:
        per_s = {s: enc[(m, s)]["ms_per_audio_s"] for s in lengths if "ms_per_audio_s" in enc.get((m, s), {})}
        long = {s: v for s, v in per_s.items() if s >= 30}
        e = {}
        if len(long) >= 2:
            e["ms_per_audio_s_max_over_min_30s+"] = max(long.values()) / min(long.values())
        mem = sorted((s, enc[(m, s)]["peak_mem_mb"]) for s in lengths if "peak_mem_mb" in enc.get((m, s), {}))
        mem = [(s, v) for s, v in mem if s >= 30 and v > 0]
        if len(mem) >= 2:
            # log-log slope: 1 = linear growth, below 1 = slower
            e["peak_mem_loglog_slope_30s+"] = math.log(mem[-1][1] / mem[0][1]) / math.log(mem[-1][0] / mem[0][0])
            e["peak_mem_mb_per_audio_min"] = {f"{s:g}": 60 * v / s for s, v in mem}
        out["students"][m] = e
    return out


def to_markdown(result) -> str:
    lines = [
        f"{result['device_name']} ({result['device']}), torch {result['torch']}"
        + (f", {result['threads']} threads" if result["device"] == "cpu" else "")
        + f", batch 1, float32; float32 matmul rate {result['matmul_gflops']:.1f} GFLOP/s (same run)."
        + (
            f" Models: synthetic `{result['synthetic']}` (random weights: WER meaningless)."
            if result["synthetic"]
            else ""
        )
        + (" Encoders under torch.compile." if result["compile"] else "")
        + (" Audio: noise bursts, not speech (no WER)." if result.get("audio_source") == "noise" else "")
        + (f" Machine: {result['machine']}." if result.get("machine") else ""),
        "Peak memory: "
        + (
            "torch CUDA allocator, max allocated during the first call minus allocated before it."
            if result["device"] != "cpu"
            else "resident-set growth during the first call (VmHWM after a reset, minus RSS before), "
            + (
                "all in one process (memory freed by earlier measurements is reused unseen)."
                if result.get("in_process")
                else "one process per measurement."
            )
        ),
        "",
        "### Encoder forward",
        "",
        "| model | audio s | ms | ms per audio s | peak MB | GFLOP | % matmul | windows | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if r["what"] != "encoder":
            continue
        if "time_s" not in r:
            lines.append(f"| {r['model']} | {r['seconds']:g} | error: {r.get('error', '')[:80]} | | | | | | |")
            continue
        gflop = "" if r.get("flops") is None else f"{r['flops'] / 1e9:.0f}"
        frac = "" if "frac_matmul" not in r else f"{100 * r['frac_matmul']:.1f}"
        lines.append(
            f"| {r['model']} | {r['seconds']:g} | {r['time_s'] * 1e3:.0f} | {r['ms_per_audio_s']:.2f} | "
            f"{r['peak_mem_mb']:.0f} | {gflop} | {frac} | {r.get('windows', '')} | {r['load']:.1f} |"
        )
    dec = [r for r in result["rows"] if r["what"] == "decode"]
    if dec:
        lines += [
            "",
            "### Full decoding (Speech2Text, greedy CTC)",
            "",
            "| model | audio s | s | RTF | peak MB | words | WER % | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in dec:
            if "time_s" not in r:
                lines.append(f"| {r['model']} | {r['seconds']:g} | error: {r.get('error', '')[:80]} | | | | | |")
                continue
            lines.append(
                f"| {r['model']} | {r['seconds']:g} | {r['time_s']:.2f} | {r['rtf']:.4f} | "
                f"{r['peak_mem_mb']:.0f} | {r['ref_words']} | "
                f"{100 * r['word_errors'] / max(1, r['ref_words']):.2f} | {r['load']:.1f} |"
            )
    s = result["summary"]
    lines += [
        "",
        "### Student vs teacher, per length",
        "",
        "| student | audio s | FLOP limit (teacher 1-pass / student) | speed-up vs 1-pass | fraction of limit | "
        "FLOP ratio windowed / student | speed-up vs windowed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    f = lambda e, k, p=2: "" if k not in e else f"{e[k]:.{p}f}"  # noqa: E731
    for sec, entry in s["per_length"].items():
        for m, e in entry.items():
            lines.append(
                f"| {m} | {float(sec):g} | {f(e, 'flop_limit')} | {f(e, 'speedup')} | {f(e, 'frac_of_limit')} | "
                f"{f(e, 'flop_ratio_windowed')} | {f(e, 'speedup_vs_windowed')} |"
            )
    lines += [
        "",
        "| student | ms per audio s, max / min over 30 s+ | peak memory log-log slope, 30 s+ (1 = linear) |",
        "|---|---:|---:|",
    ]
    for m, e in s["students"].items():
        lines.append(f"| {m} | {f(e, 'ms_per_audio_s_max_over_min_30s+')} | {f(e, 'peak_mem_loglog_slope_30s+')} |")
    return "\n".join(lines) + "\n"


def plot(rows, path: Path, result) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("encoder", "time_s", "encoder forward (s)"),
        ("encoder", "peak_mem_mb", "encoder peak memory (MB)"),
        ("decode", "rtf", "full decoding RTF"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    names = list(dict.fromkeys(r["model"] for r in rows))
    for ax, (what, key, title) in zip(axes, panels):
        for i, name in enumerate(names):
            pts = sorted(
                (r["seconds"], r[key]) for r in rows if r["model"] == name and r["what"] == what and r.get(key, 0) > 0
            )
            if pts:
                ax.loglog(*zip(*pts), "-o", color=f"C{i}", label=name, markersize=4)
        ax.set_xlabel("audio length (s)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{result['device_name']}, batch 1, float32"
        + (f", {result['threads']} threads" if result["device"] == "cpu" else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
