"""Text classification data: Kaldi-style set dirs, token ids from the teacher's own tokenizer, a dataset and
its collate.

A set dir holds `text` (`<utt-id> <sentence>`) and `label` (`<utt-id> <class name>`); after stage 2 also
`token_ids` (`<utt-id> <id> <id> ...`: the teacher tokenizer's ids, [CLS] ... [SEP], truncated to the
model's length) and `utt2num_tokens`, so training never needs the tokenizer and the sampler can bucket
by length. Every reader error names the file and line.

The tokenizer is the pretrained model's own, loaded by cald_asr.text.hf_tokenizer; here it is only called.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
from torch.utils.data import Dataset

from cald_asr.data.kaldi_dir import DataDirError, c_sort_key, iter_kv_lines, read_kv, write_kv

TEXT, LABEL, TOKEN_IDS, NUM_TOKENS, DESCRIPTION = "text", "label", "token_ids", "utt2num_tokens", "description"


def write_text_set(
    set_dir: os.PathLike | str, text: Mapping[str, str], label: Mapping[str, str], description: Optional[str] = None
) -> None:
    """Write data/<set>/{text,label} (C-sorted, same keys) and an optional one-line description."""
    set_dir = Path(set_dir)
    if set(text) != set(label):
        raise ValueError(
            f"{set_dir}: text and label have different utterances (e.g. {sorted(set(text) ^ set(label))[:3]})"
        )
    if not text:
        raise ValueError(f"{set_dir}: no utterances")
    for utt, sentence in text.items():
        if not str(sentence).strip() or "\n" in str(sentence):
            raise ValueError(f"{set_dir}: utterance '{utt}' has an empty or multi-line text")
    write_kv(set_dir / TEXT, text)
    write_kv(set_dir / LABEL, label)
    if description:
        (set_dir / DESCRIPTION).write_text(description + "\n", encoding="utf-8")


def encode(tokenizer, texts: Sequence[str], max_length: int) -> List[List[int]]:
    """Token ids with the model's special tokens ([CLS] ... [SEP]), truncated to max_length."""
    return tokenizer(list(texts), truncation=True, max_length=int(max_length), padding=False)["input_ids"]


def read_labels(path: os.PathLike | str, labels: Sequence[str]) -> Dict[str, int]:
    """label file -> {utt: class index}; an unknown class name is an error naming file:line."""
    index = {name: i for i, name in enumerate(labels)}
    out: Dict[str, int] = {}
    for line_no, utt, value in iter_kv_lines(path):
        if value not in index:
            raise DataDirError(
                f"{path}:{line_no}: utterance '{utt}': unknown label '{value}' "
                f"(the model's labels: {', '.join(labels)})"
            )
        if utt in out:
            raise DataDirError(f"{path}:{line_no}: duplicate key '{utt}'")
        out[utt] = index[value]
    return out


def read_token_ids(path: os.PathLike | str) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    for line_no, utt, value in iter_kv_lines(path):
        try:
            out[utt] = [int(x) for x in value.split()]
        except ValueError:
            raise DataDirError(f"{path}:{line_no}: utterance '{utt}': token ids must be integers") from None
    return out


class TextDataset(Dataset):
    """Items: {utt_id, input_ids: LongTensor (L,), label: int (-1 when the set has no labels)}.

    Token ids come from the set's `token_ids` (stage 2) when present, else from `tokenizer`; either way a
    sequence longer than max_length is an error (stage 2 truncates; the model has no positions beyond)."""

    def __init__(self, data_dir: os.PathLike | str, labels: Sequence[str], tokenizer=None, max_length: int = 512):
        self.data_dir = Path(data_dir)
        self.labels = list(labels)
        self.max_length = int(max_length)
        text_path = self.data_dir / TEXT
        self.texts: Dict[str, str] = read_kv(text_path)
        self.utt_ids: List[str] = sorted(self.texts, key=c_sort_key)
        label_path = self.data_dir / LABEL
        self.targets: Dict[str, int] = read_labels(label_path, self.labels) if label_path.is_file() else {}
        if self.targets and set(self.targets) != set(self.texts):
            odd = sorted(set(self.targets) ^ set(self.texts), key=c_sort_key)[0]
            raise DataDirError(f"{label_path}: utterance '{odd}' is in only one of text and label")
        ids_path = self.data_dir / TOKEN_IDS
        if ids_path.is_file():
            table = read_token_ids(ids_path)
            missing = [u for u in self.utt_ids if u not in table]
            if missing:
                raise DataDirError(f"{ids_path}: no token ids for utterance '{missing[0]}' ({len(missing)} missing)")
            self.ids = [table[u] for u in self.utt_ids]
            source = str(ids_path)
        elif tokenizer is not None:
            self.ids = encode(tokenizer, [self.texts[u] for u in self.utt_ids], self.max_length)
            source = f"{text_path} (tokenised)"
        else:
            raise DataDirError(f"{self.data_dir}: no {TOKEN_IDS} (run stage 2) and no tokenizer given")
        for u, ids in zip(self.utt_ids, self.ids):
            if not ids:
                raise DataDirError(f"{source}: utterance '{u}' has no tokens")
            if len(ids) > self.max_length:
                raise DataDirError(
                    f"{source}: utterance '{u}' has {len(ids)} tokens, the model takes at most "
                    f"{self.max_length} (stage 2's --max_length truncates)"
                )
        self.lengths: List[int] = [len(x) for x in self.ids]

    def __len__(self) -> int:
        return len(self.utt_ids)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        utt = self.utt_ids[index]
        return {
            "utt_id": utt,
            "input_ids": torch.tensor(self.ids[index], dtype=torch.long),
            "label": self.targets.get(utt, -1),
        }

    @staticmethod
    def collate(items: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        return collate_text(items)


def collate_text(items: Sequence[Dict[str, Any]], pad_id: int = 0) -> Dict[str, Any]:
    """-> {utt_ids, input_ids (B, Lmax) right-padded, input_lengths (B,), labels (B,)}. The encoders mask
    padding by input_lengths, so the pad id only has to be a valid token."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    ids = [torch.as_tensor(it["input_ids"], dtype=torch.long) for it in items]
    return {
        "utt_ids": [it["utt_id"] for it in items],
        "input_ids": torch.nn.utils.rnn.pad_sequence(ids, batch_first=True, padding_value=pad_id),
        "input_lengths": torch.tensor([len(x) for x in ids], dtype=torch.long),
        "labels": torch.tensor([int(it["label"]) for it in items], dtype=torch.long),
    }
