"""Map-style dataset over a (formatted) Kaldi data dir: audio from wav.scp or features from feats.scp."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional

import soundfile as sf
import torch
from torch.utils.data import Dataset

from cald_asr.data.audio import AudioError, is_pipe, load_audio
from cald_asr.data.features import load_feats
from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, read_kv
from cald_asr.text.unknown import unknown_symbols

logger = logging.getLogger(__name__)

SOUND = "sound"
KALDI_ARK = "kaldi_ark"


class ASRDataset(Dataset):
    """Items: {utt_id, speech: float32 (T,) for sound or (T, D) for kaldi_ark, text_ids: LongTensor (L,)}.

    `speech_type` defaults to what the dir holds (its `feats_type` file if any: 'raw' -> sound,
    'extracted' -> kaldi_ark; else wav.scp before feats.scp). Lengths (for batching) come from
    utt2num_samples / utt2num_frames, falling back to the audio header or the matrix itself.
    Without a tokenizer, text_ids is empty (inference needs no references), and the dir may have no `text`
    (audio only, for task: layer_distillation): the utterances are then those of segments, else wav.scp
    (feats.scp for features). A tokenizer needs the transcripts: a dir without `text` is then an error.

    With a tokenizer, every transcript is encoded once here: symbols outside the token list (they become
    `<unk>`) are counted and logged as a warning, and an error (DataDirError) if they are more than
    `max_unk_share` of all tokens, because then the token list does not belong to this data. None: no limit.
    """

    def __init__(
        self,
        data_dir: os.PathLike | str,
        tokenizer=None,
        speech_type: Optional[str] = None,
        max_unk_share: Optional[float] = 0.01,
    ):
        if max_unk_share is not None and not 0 <= max_unk_share <= 1:
            raise ValueError(f"max_unk_share must be a share in [0, 1] (or None), got {max_unk_share}")
        self.data_dir = Path(data_dir)
        self.tokenizer = tokenizer
        self.speech_type = speech_type or self._detect_type()
        if self.speech_type not in (SOUND, KALDI_ARK):
            raise ValueError(f"speech_type must be '{SOUND}' or '{KALDI_ARK}', got '{self.speech_type}'")
        text_path = self.data_dir / "text"
        has_text = text_path.exists()
        if tokenizer is not None and not has_text:
            raise DataDirError(
                f"{self.data_dir} has no text: transcripts are needed to train this task; a dir with only "
                "audio is for task: layer_distillation (conf/cald/unlabeled.yaml)"
            )
        self.texts: Dict[str, str] = read_kv(text_path, allow_empty_value=True) if has_text else {}
        self.utt_ids: List[str] = sorted(self.texts, key=c_sort_key)
        self.text_ids: Dict[str, List[int]] = {}
        if tokenizer is not None:
            self._encode_texts(text_path, max_unk_share)
        self.segments: Dict[str, tuple] = {}
        if self.speech_type == SOUND:
            scp = self.data_dir / "wav.scp"
            self.specs = read_kv(scp)
            if (self.data_dir / "segments").exists():
                self._read_segments()
                keyed = self.segments
            else:
                keyed = self.specs
        else:
            scp = self.data_dir / "feats.scp"
            self.specs = read_kv(scp)
            keyed = self.specs
        if not has_text:
            self.utt_ids = sorted(keyed, key=c_sort_key)
        missing = [u for u in self.utt_ids if u not in keyed]
        if missing:
            raise DataDirError(
                f"{text_path}: {len(missing)} utterance(s) have no entry in "
                f"{'segments' if self.segments else scp.name}, e.g. '{missing[0]}'"
            )
        self.lengths: List[int] = self._read_lengths()

    def _encode_texts(self, text_path: Path, max_unk_share: Optional[float]) -> None:
        unk = unknown_symbols(self.tokenizer, (self.texts[u] for u in self.utt_ids))
        self.text_ids = dict(zip(self.utt_ids, unk.ids))
        if not unk.n_unknown:
            return
        message = unk.message(text_path)
        if max_unk_share is not None and unk.share > max_unk_share:
            raise DataDirError(
                f"{message}; that is more than max_unk_share={max_unk_share:g} "
                f"({100 * max_unk_share:g} % of the tokens): the token list does not fit this data "
                "(build it from this data's transcripts, or raise max_unk_share; null/None turns "
                "the check off)"
            )
        logger.warning("%s", message)

    def _detect_type(self) -> str:
        ft = self.data_dir / "feats_type"
        if ft.exists():
            kind = ft.read_text(encoding="utf-8").strip()
            if kind not in ("raw", "extracted"):
                raise DataDirError(f"{ft}:1: unknown feats_type '{kind}' (expected 'raw' or 'extracted')")
            return SOUND if kind == "raw" else KALDI_ARK
        if (self.data_dir / "wav.scp").exists():
            return SOUND
        if (self.data_dir / "feats.scp").exists():
            return KALDI_ARK
        raise DataDirError(f"{self.data_dir}: neither wav.scp nor feats.scp exists")

    def _read_segments(self) -> None:
        path = self.data_dir / "segments"
        for utt, value in read_kv(path).items():
            fields = value.split()
            try:
                rec, start, end = fields[0], float(fields[1]), float(fields[2])
            except (IndexError, ValueError):
                raise DataDirError(f"{path}: utterance '{utt}': expected '<rec-id> <start-s> <end-s>'") from None
            if rec not in self.specs:
                raise DataDirError(f"{path}: utterance '{utt}': recording '{rec}' is not in wav.scp")
            self.segments[utt] = (rec, start, end)

    def _read_lengths(self) -> List[int]:
        name = "utt2num_samples" if self.speech_type == SOUND else "utt2num_frames"
        path = self.data_dir / name
        if path.exists():
            table = read_kv(path)
            out = []
            for u in self.utt_ids:
                if u not in table or not table[u].isdigit():
                    raise DataDirError(f"{path}: utterance '{u}' has no valid length")
                out.append(int(table[u]))
            return out
        return [self._measure(u) for u in self.utt_ids]

    def _measure(self, utt: str) -> int:
        if self.speech_type == KALDI_ARK:
            return int(load_feats(utt, self.specs[utt]).shape[0])
        spec = self.specs[self.segments[utt][0]] if utt in self.segments else self.specs[utt]
        if utt in self.segments or is_pipe(spec):
            return int(self._load_sound(utt).shape[0])
        try:
            return int(sf.info(spec).frames)
        except Exception as e:
            raise AudioError(f"utterance '{utt}': '{spec}': not a readable audio file ({e})") from None

    def _load_sound(self, utt: str):
        try:
            if utt in self.segments:
                rec, start, end = self.segments[utt]
                x, fs = load_audio(self.specs[rec])
                return x[int(round(start * fs)) : None if end == -1 else int(round(end * fs))]
            return load_audio(self.specs[utt])[0]
        except AudioError as e:
            raise AudioError(f"utterance '{utt}': {e}") from None

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __getitem__(self, index: int) -> Dict:
        utt = self.utt_ids[index]
        if self.speech_type == SOUND:
            speech = torch.from_numpy(self._load_sound(utt))
        else:
            speech = torch.from_numpy(load_feats(utt, self.specs[utt]).copy())
        if self.tokenizer is not None:
            text_ids = torch.tensor(self.text_ids[utt], dtype=torch.long)
        else:
            text_ids = torch.zeros(0, dtype=torch.long)
        return {"utt_id": utt, "speech": speech, "text_ids": text_ids}
