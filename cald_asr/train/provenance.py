"""What a training run is trained from, as fingerprints: the start model, the teacher(s) and the data dirs.

A finished run records them in its .done and every checkpoint carries them, so that a rerun of the stage
over a retrained teacher, a re-prepared data dir or another config is not silently skipped or resumed:
it is refused with the difference named (--force retrains). Fingerprints are sha1s of the files' bytes
(first 16 hex digits): a model dir's config.yaml and model.safetensors; a data dir's listing files (not the
audio they point to: stage 2 rewrites those lists whenever it rewrites the audio).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Iterable, Optional

MODEL_FILES = ("config.yaml", "model.safetensors")
DATA_FILES = ("text", "wav.scp", "feats.scp", "segments", "utt2num_samples", "utt2num_frames", "feats_type",
              "token_ids", "utt2num_tokens", "label")


def files_fingerprint(paths: Iterable[Path]) -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.name.encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def model_fingerprint(model_dir: Path) -> str:
    model_dir = Path(model_dir)
    return files_fingerprint([model_dir / n for n in MODEL_FILES if (model_dir / n).is_file()])


def data_fingerprint(data_dir: Path) -> str:
    data_dir = Path(data_dir)
    return files_fingerprint([data_dir / n for n in DATA_FILES if (data_dir / n).is_file()])


def snapshots_fingerprint(snapshot_dir: Path) -> str:
    dirs = sorted((d for d in Path(snapshot_dir).glob("step_*") if d.is_dir()), key=lambda d: d.name)
    h = hashlib.sha1()
    for d in dirs:
        h.update(f"{d.name}:{model_fingerprint(d)};".encode())
    return h.hexdigest()[:16]


def run_inputs(models: Dict[str, Optional[Path]], snapshot_dir: Optional[Path], train_data: Path,
               valid_data: Path) -> Dict[str, str]:
    """{role: fingerprint} for the model dirs a run reads (None = not read), its snapshots and data dirs."""
    inputs = {role: model_fingerprint(Path(d)) for role, d in models.items() if d is not None}
    if snapshot_dir is not None:
        inputs["snapshots"] = snapshots_fingerprint(Path(snapshot_dir))
    inputs["train_data"] = data_fingerprint(Path(train_data))
    inputs["valid_data"] = data_fingerprint(Path(valid_data))
    return inputs
