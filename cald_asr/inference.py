"""Speech2Text: the Python decoding API (ESPnet's shape), used by `asr_inference.py` too.

    s2t = Speech2Text("exp/asr_teacher/best/config.yaml", beam_size=4, nbest=2)
    for text, tokens, token_ids, hyp in s2t(waveform):  # 1-D float array at the model's rate; hyp.score
        ...
    s2t("utt.wav")                       # a file (or 'cmd |' pipe), resampled to the model's rate
    s2t(x_8k, fs=8000)                   # an array at another rate, resampled
    s2t(feats)                           # (frames, dim) for feature-reading models (AN4's Conformer)
    s2t.decode_batch([x1, x2, ...])      # batched by length, one n-best list per input

Decoding: beam_size 1 is best-path (greedy) CTC; larger beams run the CTC prefix beam search. A
hypothesis' score is log P(token ids | input), summed over all alignments (see decode/ctc_score.py),
and n-best lists are sorted by it.

Long inputs (`long_audio`): "one_pass" runs the model over the whole input; "windowed" decodes
overlapping windows and splices their frame posteriors (decode/long_audio.py); "auto" is one pass for
linear-time students (a config naming a recurrent mixer) and windowed for attention models whose input is
longer than `window_sec`. Linformer students count as attention models here: their projections are
sized to a maximum length.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from cald_asr.data.audio import AudioError, load_audio, resample
from cald_asr.data.features import FeatureError, load_feats
from cald_asr.decode.ctc_greedy import ctc_greedy
from cald_asr.decode.ctc_prefix_beam import ctc_prefix_beam_search
from cald_asr.decode.ctc_score import ctc_log_likelihood
from cald_asr.decode.long_audio import plan_windows, splice
from cald_asr.models.model_file import ModelFileError, load_model
from cald_asr.text import TokenList, build_tokenizer

LONG_AUDIO_MODES = ("auto", "one_pass", "windowed")
# Kaldi's standard 10 ms frame shift: how feature frames map to seconds (windows, real-time factor).
DEFAULT_FRAME_SHIFT_MS = 10.0

SpeechInput = Union[np.ndarray, torch.Tensor, str, os.PathLike]


class InputError(ValueError):
    """An input that cannot be decoded; the message is the reason (the caller adds the utterance id)."""


class CTCHyp(float):
    """A hypothesis' score, shaped as ESPnet's `hyp`: a float (log P(token ids | input); `float(hyp)` and
    arithmetic work as before) with `.score` (the same float) and `.yseq` (the token ids, a LongTensor: a CTC
    model has no sos/eos to put around them, unlike ESPnet's attention decoder)."""

    yseq: torch.Tensor

    def __new__(cls, score: float, token_ids: Sequence[int]) -> "CTCHyp":
        obj = super().__new__(cls, score)
        obj.yseq = torch.tensor(list(token_ids), dtype=torch.long)
        return obj

    @property
    def score(self) -> float:
        return float(self)


class Hypothesis(NamedTuple):
    """One n-best entry, unpacked as ESPnet's: `text, tokens, token_ids, hyp = nbest[0]`; `hyp.score`."""

    text: str
    tokens: List[str]
    token_ids: List[int]
    score: CTCHyp


class Speech2Text:
    def __init__(
        self,
        asr_train_config: Union[str, os.PathLike],
        asr_model_file: Optional[Union[str, os.PathLike]] = None,
        device: str = "cpu",
        beam_size: int = 1,
        nbest: int = 1,
        long_audio: str = "auto",
        window_sec: float = 30.0,
        overlap_sec: float = 5.0,
        frame_shift_ms: float = DEFAULT_FRAME_SHIFT_MS,
        bpemodel: Optional[Union[str, os.PathLike]] = None,
    ):
        if long_audio not in LONG_AUDIO_MODES:
            raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES}, got {long_audio!r}")
        if beam_size < 1 or nbest < 1 or nbest > beam_size:
            raise ValueError(f"need 1 <= nbest <= beam_size, got nbest={nbest}, beam_size={beam_size}")
        if not 0 <= overlap_sec < window_sec:
            raise ValueError(f"need 0 <= overlap_sec < window_sec, got {overlap_sec}, {window_sec}")
        model, config = load_model(asr_train_config, asr_model_file)
        source = str(asr_train_config)
        if config.get("model", "asr_ctc") != "asr_ctc":
            raise ModelFileError(f"{source}: not a speech recognition model (model: {config.get('model')})")
        self.model = model.to(device).eval()
        self.config = config
        self.device = torch.device(device)
        self.beam_size, self.nbest = beam_size, nbest
        self.long_audio = long_audio
        self.token_list = TokenList(config["token_list"], source=f"{source}: token_list")
        # the config records bpemodel as the recipe gave it (relative to the recipe dir); `bpemodel` overrides
        bpemodel = bpemodel or config.get("bpemodel")
        if bpemodel and not Path(bpemodel).is_file():
            raise ModelFileError(f"{source}: bpemodel '{bpemodel}' not found (pass bpemodel= / --bpemodel)")
        self.tokenizer = build_tokenizer(config.get("token_type", "char"), self.token_list, bpemodel)
        self.input_kind, self.fs, self.feat_dim = self._input_kind(source)
        self.units_per_sec = float(self.fs) if self.input_kind == "wav" else 1000.0 / frame_shift_ms
        # recurrent mixers read any length in linear time; Linformer's E/F projections have a max_len
        self.linear_time = config.get("mixer") not in (None, "linformer")
        self.window = int(round(window_sec * self.units_per_sec))
        self.overlap = int(round(overlap_sec * self.units_per_sec))
        n_out = int(self.model.output_lengths(torch.tensor([self.window]))[0])
        if n_out < 1:
            raise ValueError(f"window_sec={window_sec} gives no output frame for this model")
        self.stride = max(1, int(round(self.window / n_out)))  # input units per output frame
        self._min_length = self._shortest_input()

    # ------------------------------------------------------------------------------------- inputs

    def _input_kind(self, source: str):
        """('wav', sample rate, None) or ('feats', None, feature dim)."""
        fe = self.model.frontend
        if fe is not None:
            return "wav", int(fe.sample_rate), None
        enc_name, enc = self.config.get("encoder"), self.model.encoder
        if enc_name == "wav2vec2":
            return "wav", 16000, None
        if enc_name == "espnet_conformer":
            if enc.frontend is not None:
                return "wav", int(enc.frontend.fs), None
            return "feats", None, int(self.config["encoder_conf"]["input_size"])
        if enc_name == "whisper":
            return "feats", None, int(enc.n_mels)
        raise ModelFileError(f"{source}: encoder {enc_name!r} is not a speech encoder")

    def _shortest_input(self) -> int:
        """The shortest input (samples or frames) this model gives at least one output frame for."""
        n = 1
        fe = self.model.frontend
        if fe is not None and hasattr(fe, "n_fft"):
            n = fe.n_fft // 2 + 1  # Whisper's centred STFT reflects n_fft/2 samples
        while int(self.model.output_lengths(torch.tensor([n]))[0]) < 1:
            n += 1
        return n

    def prepare(self, speech: SpeechInput, fs: Optional[int] = None) -> np.ndarray:
        """The float32 array the model reads: a 1-D waveform at the model's rate, or (frames, dim)
        features. Raises InputError with the reason when the input cannot be decoded."""
        if isinstance(speech, (str, os.PathLike)):
            spec = os.fspath(speech)
            try:
                if self.input_kind == "wav":
                    x, _ = load_audio(spec, target_fs=self.fs)
                else:
                    x = load_feats("<input>", spec)
            except (AudioError, FeatureError) as e:
                raise InputError(str(e)) from None
        else:
            x = speech.detach().cpu().numpy() if isinstance(speech, torch.Tensor) else np.asarray(speech)
            x = x.astype(np.float32, copy=False)
            if self.input_kind == "wav":
                if x.ndim != 1:
                    raise InputError(f"expected a 1-D waveform, got an array of shape {x.shape}")
                if fs is not None and int(fs) != self.fs:
                    x = resample(x, int(fs), self.fs)
            elif x.ndim != 2:
                raise InputError(f"expected (frames, {self.feat_dim}) features, got an array of shape {x.shape}")
        if self.input_kind == "feats" and x.shape[1] != self.feat_dim:
            raise InputError(f"features have dimension {x.shape[1]}, the model reads {self.feat_dim}")
        if x.shape[0] == 0:
            raise InputError("empty input (0 samples)" if self.input_kind == "wav" else "empty input (0 frames)")
        if x.shape[0] < self._min_length:
            unit = "samples" if self.input_kind == "wav" else "frames"
            raise InputError(f"too short: {x.shape[0]} {unit}, the model needs at least {self._min_length}")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or infinite values")
        return x

    def seconds(self, x: np.ndarray) -> float:
        return x.shape[0] / self.units_per_sec

    # ------------------------------------------------------------------------------------- decoding

    def __call__(self, speech: SpeechInput, fs: Optional[int] = None) -> List[Hypothesis]:
        return self.decode_batch([speech], fs=fs)[0]

    def uses_windows(self, n: int) -> bool:
        if self.long_audio == "one_pass" or (self.long_audio == "auto" and self.linear_time):
            return False
        return n > (self.window // self.stride) * self.stride

    @torch.inference_mode()
    def _log_probs(self, xs: Sequence[np.ndarray]) -> List[np.ndarray]:
        lengths = torch.tensor([x.shape[0] for x in xs], dtype=torch.long)
        # kaldiio may hand out read-only arrays, which torch.from_numpy must not share
        tensors = [torch.from_numpy(x if x.flags.writeable and x.flags.c_contiguous else np.array(x)) for x in xs]
        speech = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)
        out = self.model(speech.to(self.device), lengths.to(self.device))
        lp = F.log_softmax(out.logits.float(), dim=-1).cpu()
        return [lp[i, : int(out.out_lengths[i])].numpy() for i in range(len(xs))]

    def log_probs_batch(
        self, inputs: Sequence[SpeechInput], fs: Optional[int] = None, batch_size: int = 8
    ) -> List[np.ndarray]:
        """Frame-level CTC log-probabilities (T_i, V) per input, long inputs windowed as configured.
        Model calls are batched by length: the pieces (whole inputs or windows) are sorted longest first."""
        xs = [self.prepare(x, fs) for x in inputs]
        pieces = []  # (input index, window or None, array)
        plans: Dict[int, list] = {}
        for i, x in enumerate(xs):
            if self.uses_windows(x.shape[0]):
                plans[i] = plan_windows(x.shape[0], self.window, self.overlap, self.stride)
                pieces += [(i, w, x[w.start : w.end]) for w in plans[i]]
            else:
                pieces.append((i, None, x))
        order = sorted(range(len(pieces)), key=lambda j: pieces[j][2].shape[0], reverse=True)
        outs: List[Optional[np.ndarray]] = [None] * len(pieces)
        for b in range(0, len(order), max(1, batch_size)):
            chunk = order[b : b + batch_size]
            for j, lp in zip(chunk, self._log_probs([pieces[j][2] for j in chunk])):
                outs[j] = lp
        result: List[Optional[np.ndarray]] = [None] * len(xs)
        window_outs: Dict[int, list] = {i: [] for i in plans}
        for (i, w, _), lp in zip(pieces, outs):
            if w is None:
                result[i] = lp
            else:
                window_outs[i].append(lp)
        for i, plan in plans.items():
            result[i] = splice(plan, window_outs[i])
        return result

    def search(self, log_probs: np.ndarray) -> List[Hypothesis]:
        """n-best hypotheses for one utterance's (T, V) log-probabilities, best first."""
        lp = torch.from_numpy(log_probs)
        if self.beam_size == 1:
            candidates = ctc_greedy(lp[None], torch.tensor([lp.shape[0]]))
        else:
            candidates = [list(ids) for ids, _ in ctc_prefix_beam_search(log_probs, self.beam_size, self.nbest)]
        hyps = []
        for ids in candidates:
            hyps.append(
                Hypothesis(
                    self.tokenizer.decode(ids),
                    self.token_list.ids2tokens(ids),
                    list(ids),
                    CTCHyp(ctc_log_likelihood(lp, ids), ids),
                )
            )
        hyps.sort(key=lambda h: h.score, reverse=True)
        return hyps

    def decode_batch(
        self, inputs: Sequence[SpeechInput], fs: Optional[int] = None, batch_size: int = 8
    ) -> List[List[Hypothesis]]:
        """One n-best list per input (see log_probs_batch for batching and long inputs)."""
        return [self.search(lp) for lp in self.log_probs_batch(inputs, fs, batch_size)]
