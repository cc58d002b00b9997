"""Decode a Kaldi-style scp with a CTC model, ESPnet's asr_inference.py command line and output layout.

    asr_inference.py --asr_train_config exp/asr_teacher/best/config.yaml \\
        --data_path_and_name_and_type dump/test/wav.scp,speech,sound \\
        --output_dir exp/asr_teacher/decode_best/test [--key_file part.1.scp] [--beam_size 4 --nbest 2]

Features instead of audio: --data_path_and_name_and_type dump/test/feats.scp,speech,kaldi_ark.
--asr_train_config may also be the model directory; --asr_model_file defaults to model.safetensors
beside the config. A YAML --config sets any of these options (command line wins).

Outputs, Kaldi key-value files sorted by utterance, each written atomically at the end:
    <output_dir>/1best_recog/{text,token,token_int,score}   (and 2best_recog/ ... for --nbest > 1)
    <output_dir>/failed     'utt reason' per utterance that could not be decoded (empty if none)
    <output_dir>/rtf        utterances, failed, audio_seconds, decode_seconds, rtf
    <output_dir>/status     keys, decoded, failed: written last, only when the job ran to its end
score is log P(hypothesis | audio) under the CTC model. decode_seconds counts the model and the search,
not file reading; rtf = decode_seconds / audio_seconds.

Resuming (cald_asr/decode/journal.py): each utterance's result is appended to <output_dir>/journal.jsonl
as it is decoded, and <output_dir>/fingerprint records the model (sha1 of config.yaml, model.safetensors,
bpe model) and the options that change results (input type, beam_size, nbest, ctc_weight, long_audio,
window_sec, overlap_sec, resample, frame_shift_ms; not batch_size, ngpu or log_level). Run again into the
same --output_dir, a job decodes only the utterances not yet decoded from the same scp entry; failed ones
are retried. Results of another fingerprint there are removed first (with a warning). --resume_from DIR
(repeatable) also takes done utterances from other output dirs of the same fingerprint, e.g. the jobs of
an earlier run split another way (--nj); they are copied into this dir's journal.

Sample rates: audio must already be at the model's rate (16 kHz for Whisper and Wav2Vec2 models),
as recipe stage 2 writes it; a file at another rate is reported as failed, because it usually means
the wrong dump dir was given. --resample true converts such files instead.

Broken input (missing, unreadable, empty, too short, wrong rate or feature dimension) is reported by
utterance id on stderr and in <output_dir>/failed; every other utterance is decoded and written.
Exit status: 0 all decoded, 1 some utterances failed, 2 nothing could be attempted (bad model, bad
scp, bad options), 3 crashed or terminated (SIGTERM, Ctrl-C): what was decoded stays in the journal.
Recipes split an scp (utils/split_scp.sh) and run one job per part via --key_file.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import yaml
from tqdm import tqdm

from cald_asr.data.audio import AudioError, is_pipe, load_audio, pipe_timeout_s
from cald_asr.data.features import FeatureError, load_feats
from cald_asr.data.kaldi_dir import DataDirError, iter_kv_lines, read_kv, write_kv
from cald_asr.data.progress import progress_bar
from cald_asr.decode import journal
from cald_asr.inference import LONG_AUDIO_MODES, CTCHyp, Hypothesis, InputError, Speech2Text
from cald_asr.models.model_file import CONFIG_NAME, WEIGHTS_NAME, ModelFileError
from cald_asr.text.token_list import TokenListError

SOUND, KALDI_ARK = "sound", "kaldi_ark"
PROG = "asr_inference"


class SetupError(Exception):
    """Nothing can be decoded: bad options, model or scp."""


def str2bool(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="asr_inference.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )

    def add(name, **kw):  # both --some_option and --some-option, as ESPnet/Kaldi users type either
        names = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        p.add_argument(*names, **kw)

    add("config", default=None, help="YAML file of option values (e.g. conf/decode.yaml)")
    add("asr_train_config", default=None, help="(required) model config.yaml, or the model directory")
    add("asr_model_file", default=None, help="model.safetensors (default: beside the config)")
    add("bpemodel", default=None, help="sentencepiece model for bpe token lists (default: the config's)")
    add(
        "data_path_and_name_and_type",
        action="append",
        default=None,
        help="(required) SCP,speech,sound (wav.scp) or SCP,speech,kaldi_ark (feats.scp)",
    )
    add("key_file", default=None, help="decode only the utterances listed (first column) in this file")
    add("output_dir", default=None, help="(required)")
    add(
        "resume_from",
        action="append",
        default=None,
        help="another output dir whose results of the same model and options count as done (repeatable)",
    )
    add("batch_size", type=int, default=1, help="utterances (or windows) per model call, batched by length")
    add("beam_size", type=int, default=1, help="1: greedy CTC; >1: CTC prefix beam search")
    add("nbest", type=int, default=1, help="hypotheses written per utterance (<= beam_size)")
    add("ngpu", type=int, default=0, help="0: CPU; 1: the first CUDA device")
    add("ctc_weight", type=float, default=1.0, help="accepted for ESPnet compatibility; models here are CTC-only (1.0)")
    add(
        "long_audio",
        choices=LONG_AUDIO_MODES,
        default="auto",
        help="auto: one pass for linear-time students, windows for attention models longer than --window_sec",
    )
    add("window_sec", type=float, default=30.0, help="window length for windowed decoding")
    add("overlap_sec", type=float, default=5.0, help="overlap between consecutive windows")
    add(
        "resample",
        type=str2bool,
        default=False,
        help="true: resample audio at another rate to the model's; false: report such files as failed",
    )
    add("frame_shift_ms", type=float, default=10.0, help="frame shift of kaldi_ark features (seconds, windows)")
    add("log_level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


# keys of ESPnet's decode configs (asr_inference.py) that weigh parts our CTC-only decoder does not have (its
# ctc_weight and nbest are options here): a config written for ESPnet is accepted with a warning naming them
ESPNET_IGNORED = frozenset({"lm_weight", "ngram_weight", "penalty", "maxlenratio", "minlenratio", "streaming"})


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = get_parser()
    args = p.parse_args(argv)
    if args.config:
        try:
            conf = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            p.error(f"--config {args.config}: {e}")
        if not isinstance(conf, dict):
            p.error(f"--config {args.config}: expected a mapping of option names to values")
        known = {a.dest for a in p._actions}
        conf = {str(k).replace("-", "_"): v for k, v in conf.items()}
        ignored = sorted(set(conf) & ESPNET_IGNORED - known)
        if ignored:
            print(
                f"asr_inference: warning: --config {args.config}: ignoring ESPnet decoding option(s) {ignored}: "
                "this decoder is CTC-only (no attention decoder, language model or length penalty)",
                file=sys.stderr,
            )
            conf = {k: v for k, v in conf.items() if k not in ignored}
        unknown = sorted(set(conf) - known)
        if unknown:
            p.error(f"--config {args.config}: unknown option(s) {unknown}")
        data = conf.pop("data_path_and_name_and_type", None)
        p.set_defaults(**conf)
        args = p.parse_args(argv)  # the command line overrides the file
        if args.data_path_and_name_and_type is None and data is not None:
            args.data_path_and_name_and_type = [data] if isinstance(data, str) else list(data)
    missing = [
        f"--{k}" for k in ("asr_train_config", "data_path_and_name_and_type", "output_dir") if not getattr(args, k)
    ]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    return args


def speech_input(specs: List[str]) -> Tuple[Path, str]:
    found = []
    for spec in specs:
        parts = spec.rsplit(",", 2)
        if len(parts) != 3:
            raise SetupError(f"--data_path_and_name_and_type {spec!r}: expected PATH,NAME,TYPE")
        path, name, kind = parts
        if kind not in (SOUND, KALDI_ARK):
            raise SetupError(f"--data_path_and_name_and_type {spec!r}: type must be {SOUND} or {KALDI_ARK}")
        if name != "speech":
            raise SetupError(
                f"--data_path_and_name_and_type {spec!r}: only the 'speech' input is read (CTC decoding needs no other)"
            )
        found.append((Path(path), kind))
    if len(found) != 1:
        raise SetupError(f"expected one speech input, got {len(found)}")
    return found[0]


def select_keys(entries: Dict[str, str], key_file: Optional[str]) -> List[str]:
    if key_file is None:
        return list(entries)
    return list(dict.fromkeys(k for _, k, _ in iter_kv_lines(key_file, allow_empty_value=True)))


def known_lengths(scp: Path, keys: List[str], entries: Dict[str, str], kind: str) -> Dict[str, int]:
    """Input lengths for sorting into batches: utt2num_samples/utt2num_frames beside the scp (what
    stage 2 writes), else the audio header; 0 where unknown (pipes, features without the file)."""
    table_path = scp.parent / ("utt2num_samples" if kind == SOUND else "utt2num_frames")
    table: Dict[str, str] = {}
    if table_path.is_file():
        try:
            table = read_kv(table_path)
        except DataDirError:
            table = {}
    out = {}
    for k in keys:
        v = table.get(k, "")
        if v.isdigit():
            out[k] = int(v)
        elif kind == SOUND and k in entries and not is_pipe(entries[k]):
            try:
                out[k] = int(sf.info(entries[k]).frames)
            except Exception:  # broken files are reported when they are read
                out[k] = 0
        else:
            out[k] = 0
    return out


def load_input(s2t: Speech2Text, utt: str, spec: str, kind: str, resample: bool) -> np.ndarray:
    """The prepared input of one utterance; raises InputError with the reason."""
    if kind == SOUND:
        try:
            x, fs = load_audio(spec, target_fs=s2t.fs if resample else None)
        except AudioError as e:
            raise InputError(str(e)) from None
        if fs != s2t.fs:
            raise InputError(
                f"'{spec}': sample rate {fs} Hz, the model reads {s2t.fs} Hz "
                "(give the dump dir at the model's rate, or --resample true)"
            )
    else:
        try:
            x = load_feats(utt, spec)
        except FeatureError as e:
            raise InputError(str(e)) from None
    return s2t.prepare(x)


def write_results(out_dir: Path, results: Dict[str, List[Hypothesis]], nbest: int) -> None:
    for n in range(1, nbest + 1):
        d = out_dir / f"{n}best_recog"
        have = {k: h[n - 1] for k, h in results.items() if len(h) >= n}
        write_kv(d / "text", {k: h.text for k, h in have.items()})
        write_kv(d / "token", {k: " ".join(h.tokens) for k, h in have.items()})
        write_kv(d / "token_int", {k: " ".join(map(str, h.token_ids)) for k, h in have.items()})
        write_kv(d / "score", {k: f"{h.score:.6f}" for k, h in have.items()})


def fingerprint(args: argparse.Namespace, s2t: Speech2Text, kind: str) -> Dict[str, object]:
    """What the results depend on: the model's bytes and the options that change them."""
    config = Path(args.asr_train_config)
    config = config / CONFIG_NAME if config.is_dir() else config
    files = {
        "config.yaml": config,
        "model.safetensors": Path(args.asr_model_file) if args.asr_model_file else config.with_name(WEIGHTS_NAME),
    }
    bpemodel = args.bpemodel or s2t.config.get("bpemodel")
    if bpemodel and Path(bpemodel).is_file():
        files["bpemodel"] = Path(bpemodel)
    options = {
        k: getattr(args, k)
        for k in (
            "beam_size",
            "nbest",
            "ctc_weight",
            "long_audio",
            "window_sec",
            "overlap_sec",
            "resample",
            "frame_shift_ms",
        )
    }
    return journal.make_fingerprint(files, {"input_type": kind, **options})


def hyps_record(hyps: List[Hypothesis]) -> List[list]:
    return [[h.text, h.tokens, h.token_ids, h.score] for h in hyps]


def hyps_of(record: dict) -> List[Hypothesis]:
    return [
        Hypothesis(text, list(tokens), [int(i) for i in ids], CTCHyp(float(score), [int(i) for i in ids]))
        for text, tokens, ids, score in record["hyps"]
    ]


def decode(args: argparse.Namespace, log: logging.Logger) -> int:
    out_dir = Path(args.output_dir)
    (out_dir / journal.STATUS).unlink(missing_ok=True)  # first: whatever fails below, no stale "finished"
    scp, kind = speech_input(args.data_path_and_name_and_type)
    try:
        pipe_timeout_s()  # a bad $CALD_ASR_PIPE_TIMEOUT is a setup error, not a failure of every pipe
    except ValueError as e:
        raise SetupError(str(e)) from None
    if args.ctc_weight != 1.0:
        raise SetupError(f"--ctc_weight {args.ctc_weight}: these models have only a CTC branch (use 1.0)")
    if args.ngpu > 0 and not torch.cuda.is_available():
        raise SetupError(f"--ngpu {args.ngpu}: no CUDA device is available")
    device = "cuda" if args.ngpu > 0 else "cpu"
    try:
        s2t = Speech2Text(
            args.asr_train_config,
            args.asr_model_file,
            device=device,
            beam_size=args.beam_size,
            nbest=args.nbest,
            long_audio=args.long_audio,
            window_sec=args.window_sec,
            overlap_sec=args.overlap_sec,
            frame_shift_ms=args.frame_shift_ms,
            bpemodel=args.bpemodel,
        )
    except (ModelFileError, TokenListError, ValueError, OSError) as e:
        raise SetupError(str(e)) from None
    want = SOUND if s2t.input_kind == "wav" else KALDI_ARK
    if kind != want:
        raise SetupError(
            f"{args.asr_train_config} reads {'audio' if want == SOUND else 'features'}: "
            f"give --data_path_and_name_and_type <scp>,speech,{want}, not {kind}"
        )
    try:
        entries = read_kv(scp)
        keys = select_keys(entries, args.key_file)
    except (DataDirError, OSError) as e:
        raise SetupError(str(e)) from None

    fp = fingerprint(args, s2t, kind)
    results_names = [d.name for d in out_dir.glob("*best_recog")] + ["failed", "rtf"]
    journal.open_output_dir(out_dir, fp, results_names, PROG, log.warning)
    done = journal.reusable(journal.read_journal(out_dir / journal.JOURNAL, log.warning), keys, entries)
    elsewhere = journal.resume_records(
        [d for d in args.resume_from or [] if Path(d).resolve() != out_dir.resolve()],
        fp,
        [k for k in keys if k not in done],
        entries,
        PROG,
        log.info,
    )
    failed: Dict[str, str] = {}

    def fail(utt: str, reason: str) -> None:
        failed[utt] = " ".join(reason.split())
        tqdm.write(f"{PROG}: utterance '{utt}' failed: {failed[utt]}", file=sys.stderr)

    for k in keys:
        if k not in entries:
            fail(k, f"no entry in {scp}")
    todo = [k for k in keys if k in entries and k not in done and k not in elsewhere]
    if done or elsewhere or args.resume_from:
        log.info(
            f"{PROG}: {out_dir}: {len(done) + len(elsewhere)} of {len(keys)} utterance(s) already decoded "
            f"with this model and options ({len(elsewhere)} by other jobs), {len(todo)} to decode"
        )
    lengths = known_lengths(scp, todo, entries, kind)
    todo.sort(key=lambda k: -lengths[k])
    bs = max(1, args.batch_size)
    with (
        journal.Journal(out_dir / journal.JOURNAL) as jr,
        progress_bar(total=len(todo), unit="utt", desc=PROG, file=sys.stderr) as bar,
    ):
        for k, rec in elsewhere.items():  # this dir alone then holds all its keys' results
            jr.append(rec)
            done[k] = rec
        for b in range(0, len(todo), bs):
            batch = []
            for k in todo[b : b + bs]:
                try:
                    batch.append((k, load_input(s2t, k, entries[k], kind, args.resample)))
                except InputError as e:
                    fail(k, str(e))
                    jr.append({"key": k, "input": entries[k], "failed": failed[k]})
            t0 = time.perf_counter()
            try:
                hyps = s2t.decode_batch([x for _, x in batch], batch_size=bs)
            except (RuntimeError, ValueError):
                # one bad utterance must not lose the batch: retry alone to find which one fails
                hyps = []
                for k, x in batch:
                    try:
                        hyps.append(s2t(x))
                    except (RuntimeError, ValueError) as e:
                        fail(k, f"decoding failed: {type(e).__name__}: {e}")
                        jr.append({"key": k, "input": entries[k], "failed": failed[k]})
                        hyps.append(None)
            batch_sec = time.perf_counter() - t0
            ok = [(k, x, h) for (k, x), h in zip(batch, hyps) if h is not None]
            batch_audio = sum(s2t.seconds(x) for _, x, _ in ok)
            for k, x, h in ok:
                sec = s2t.seconds(x)
                # the batch's time, shared by audio length: a resumed set still adds up to its decode time
                done[k] = {
                    "key": k,
                    "input": entries[k],
                    "hyps": hyps_record(h),
                    "seconds": sec,
                    "decode_seconds": batch_sec * sec / batch_audio if batch_audio > 0 else 0.0,
                }
                jr.append(done[k])
            bar.update(len(todo[b : b + bs]))

    results = {k: hyps_of(done[k]) for k in keys if k in done}
    audio_sec = sum(float(done[k]["seconds"]) for k in results)
    decode_sec = sum(float(done[k]["decode_seconds"]) for k in results)
    write_results(out_dir, results, args.nbest)
    write_kv(out_dir / "failed", failed)
    rtf = decode_sec / audio_sec if audio_sec > 0 else float("nan")
    write_kv(
        out_dir / "rtf",
        {
            "utterances": len(results),
            "failed": len(failed),
            "audio_seconds": f"{audio_sec:.3f}",
            "decode_seconds": f"{decode_sec:.3f}",
            "rtf": f"{rtf:.5f}",
        },
        sort=False,
    )
    journal.write_status(out_dir, {"keys": len(keys), "decoded": len(results), "failed": len(failed)})
    summary = (
        f"{PROG}: decoded {len(results)} of {len(keys)} utterance(s), {len(failed)} failed; "
        f"{audio_sec:.1f} s of audio in {decode_sec:.1f} s (RTF {rtf:.4f}) -> {out_dir}"
    )
    log.info(summary)
    if failed:
        log.error(f"{PROG}: {len(failed)} utterance(s) failed, listed in {out_dir / 'failed'}")
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s) %(levelname)s %(message)s")
    log = logging.getLogger(PROG)
    return journal.run_job(PROG, lambda: decode(args, log), args.output_dir, (SetupError,))


if __name__ == "__main__":
    sys.exit(main())
