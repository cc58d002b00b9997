"""What a training run is trained from, as fingerprints: the start model, the teacher(s) and the data dirs;
and the records a run leaves of it.

A finished run records them in its .done and every checkpoint carries them, so that a rerun of the stage
over a retrained teacher, a re-prepared data dir or another config is not silently skipped or resumed:
it is refused with the difference named (--force retrains). Fingerprints are sha1s of the files' bytes
(first 16 hex digits): a model dir's config.yaml and model.safetensors; a data dir's listing files (not the
audio they point to: stage 2 rewrites those lists whenever it rewrites the audio).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from cald_asr.train.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME, CheckpointError
from cald_asr.train.options import RESUME_FREE_KEYS

MODEL_FILES = ("config.yaml", "model.safetensors")
DATA_FILES = (
    "text",
    "wav.scp",
    "feats.scp",
    "segments",
    "utt2num_samples",
    "utt2num_frames",
    "feats_type",
    "token_ids",
    "utt2num_tokens",
    "label",
)


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


def run_inputs(
    models: Dict[str, Optional[Path]], snapshot_dir: Optional[Path], train_data: Path, valid_data: Path
) -> Dict[str, str]:
    """{role: fingerprint} for the model dirs a run reads (None = not read), its snapshots and data dirs."""
    inputs = {role: model_fingerprint(Path(d)) for role, d in models.items() if d is not None}
    if snapshot_dir is not None:
        inputs["snapshots"] = snapshots_fingerprint(Path(snapshot_dir))
    inputs["train_data"] = data_fingerprint(Path(train_data))
    inputs["valid_data"] = data_fingerprint(Path(valid_data))
    return inputs


def run_differences(
    saved_cfg: Optional[Dict[str, Any]],
    cfg: Dict[str, Any],
    saved_inputs: Optional[Dict[str, Any]],
    inputs: Optional[Dict[str, Any]],
) -> List[str]:
    """What differs between the run that wrote a checkpoint (or finished) and this one, in anything that shapes
    training: the options (model, optimiser, schedule, data) and the inputs' fingerprints (start model,
    teacher, snapshots, data dirs). Parts the earlier run did not record (None) are not compared."""
    diff = []
    if saved_cfg is not None:
        keys = sorted((set(saved_cfg) | set(cfg)) - set(RESUME_FREE_KEYS))
        diff += [f"{k}: {saved_cfg.get(k)!r} -> {cfg.get(k)!r}" for k in keys if saved_cfg.get(k) != cfg.get(k)]
    if saved_inputs is not None and inputs is not None:
        keys = sorted(set(saved_inputs) | set(inputs))
        diff += [f"{k}: {saved_inputs.get(k)} -> {inputs.get(k)}" for k in keys if saved_inputs.get(k) != inputs.get(k)]
    return diff


def check_resumable(ck: Dict[str, Any], cfg: Dict[str, Any], inputs: Optional[Dict[str, Any]], path: Path) -> None:
    """Refuse to resume under other options or inputs: the optimiser state alone would fail with an unreadable
    error or, worse, load and train something else than either run describes."""
    diff = run_differences(ck.get("config"), cfg, ck.get("inputs"), inputs)
    if diff:
        raise CheckpointError(
            f"{path} was written by a run with other options or inputs ({'; '.join(diff[:6])}); "
            f"resume with the same ones, or retrain from the start with --force"
        )


DONE_NAME = ".done"


def read_done(out_dir: Path) -> Optional[Dict[str, Any]]:
    """The record a finished run leaves ({steps, config, inputs}); {} for a run finished before runs kept
    one (the file held the step count alone); None if the run has not finished."""
    path = Path(out_dir) / DONE_NAME
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def write_done(out_dir: Path, steps: int, cfg: Dict[str, Any], inputs: Optional[Dict[str, Any]]) -> None:
    record = {"steps": steps, "config": cfg, "inputs": inputs}
    (Path(out_dir) / DONE_NAME).write_text(json.dumps(record, indent=1, default=str) + "\n")


RUN_OUTPUTS = (DONE_NAME, CHECKPOINT_NAME, PREVIOUS_NAME, "best", "final", "snapshots", "tensorboard")


def clear_run(out_dir: Path) -> None:
    """What a run trained from step 0 (--force) replaces: an earlier run's snapshots or best/ left beside the
    new run's would be read as its own (waypoint guidance takes every snapshot in the dir)."""
    for name in RUN_OUTPUTS:
        path = Path(out_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
