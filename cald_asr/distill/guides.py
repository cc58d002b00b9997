"""The five guiding strategies: which teacher the student matches at each step, and where its kept
weights start from (docs/cald-method.md, section 3).

| strategy   | teacher during CALD                                         | student starts from |
|------------|-------------------------------------------------------------|---------------------|
| unguided   | none: task loss only                                        | pretrained          |
| target     | the fine-tuned teacher, fixed                               | fine-tuned          |
| trajectory | a copy of the pretrained transformer fine-tuned concurrently | pretrained          |
|            | on the same batches (own optimiser, lr), stepped every T_u  |                     |
| waypoint   | the Std. run's snapshots: at step s the first one saved     | pretrained          |
|            | after s (the last once past the end)                        |                     |
| hybrid     | target for the first N steps, then no distillation          | fine-tuned          |

A guide's `teacher_outputs(batch, step)` returns the teacher's ModelOutput for the batch, or None when
the strategy does not distil at that step. Teachers run in eval mode (no dropout, no SpecAugment) unless
teacher_mode is "train", so target guidance is deterministic and can be cached on disk.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from cald_asr.models.model_file import load_model
from cald_asr.models.output import ModelOutput
from cald_asr.precision import autocast, grad_scaler
from cald_asr.registry import Registry


@dataclass(frozen=True)
class GuideContext:
    """What a strategy may need beyond its teacher and the training options."""

    output_dir: Path  # the run's exp dir (the teacher cache lives there)
    snapshot_dir: Optional[Path]  # the Std. run's snapshots/ (waypoint)
    task_loss: Callable  # (model, batch) -> summed task loss (the trajectory teacher's objective)
    make_optimizer: Callable  # (model, lr) -> the trajectory teacher's optimiser
    distributed: bool = False  # the trajectory teacher trains under DistributedDataParallel too


def model_inputs(batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
    """What a model of the batch's task reads: (speech, speech_lengths) for ASR, (input_ids,
    input_lengths) for text; the trainer and every guide call models through this."""
    if "input_ids" in batch:
        return batch["input_ids"], batch["input_lengths"]
    return batch["speech"], batch["speech_lengths"]


def _teacher_forward(teacher: nn.Module, batch: Dict[str, Any], mode: str) -> ModelOutput:
    teacher.train(mode == "train")
    with torch.no_grad():
        return teacher(*model_inputs(batch))


class Guide:
    """unguided: no teacher; the base of every strategy. `student_init` names the model the student's kept
    weights start from ("pretrained": stage 4's init/, "finetuned": the Std. run's best/)."""

    name = "unguided"
    student_init = "pretrained"
    device = torch.device("cpu")
    dtype = torch.float32

    @classmethod
    def build(cls, teacher: nn.Module, cfg: Dict[str, Any], ctx: GuideContext) -> "Guide":
        """The guide of a run from its training options (`teacher`: a copy of the start model)."""
        return cls()

    def to(self, device: torch.device, dtype: torch.dtype = torch.float32) -> "Guide":
        """Teachers run on the student's device and in its dtype."""
        self.device, self.dtype = device, dtype
        teacher = getattr(self, "teacher", None)
        if teacher is not None:
            teacher.to(device, dtype)
        cache = getattr(self, "cache", None)
        if cache is not None:
            cache.dtype = dtype
        return self

    def teacher_outputs(self, batch: Dict[str, Any], step: int) -> Optional[ModelOutput]:
        return None

    def distils(self, step: int) -> bool:
        return False

    def after_step(self, batches: List[Dict[str, Any]], step: int) -> None:
        """Called after the student's optimiser step `step` (1-based count of steps done)."""

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


def _update_hash(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous().reshape(-1)
    h.update(f"{t.dtype}:{t.numel()};".encode())
    h.update(t.view(torch.uint8).numpy().tobytes())


def weights_fingerprint(model: nn.Module) -> str:
    """sha1 of every parameter and buffer (names, dtypes, shapes, values), first 16 hex digits."""
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(f"{name}{tuple(t.shape)}".encode())
        _update_hash(h, t)
    return h.hexdigest()[:16]


# what the teacher cache stores its entries as (cache_dtype): float16 halves the disk and read time of
# float32 at ~1e-3 relative rounding, far below the layer loss the student reaches; float32 stores them exactly
CACHE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


class TeacherCache:
    """Per-utterance teacher outputs (every layer's hidden state and the logits, in `store_dtype`: float16
    unless cache_dtype says otherwise) stored once on disk and read back instead of re-running a fixed teacher
    every epoch. Logits are per frame (B, T, V) for ASR and per utterance (B, C) for a classifier; lengths are
    read back from the hidden states.

    Stored under a folder named by the teacher's weights fingerprint (when the teacher is given), so a
    retrained teacher in the same experiment folder never reads another teacher's outputs. Each entry
    also keeps a hash of its input: an utterance id whose input has changed since (other audio or text
    under the same id, e.g. after data prep was rerun) is recomputed, not served stale."""

    def __init__(self, directory: Path, teacher: Optional[nn.Module] = None, store_dtype: str = "float16"):
        self.dtype = torch.float32  # what entries are read back as (the run's dtype)
        self.store = CACHE_DTYPES[store_dtype]
        self.dir = Path(directory)
        if teacher is not None:
            self.dir = self.dir / weights_fingerprint(teacher)
        if store_dtype != "float16":  # float16 entries keep the folder they always had
            self.dir = self.dir / store_dtype
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, utt: str) -> Path:
        return self.dir / f"{utt}.pt"

    @staticmethod
    def _input_hashes(batch: Dict[str, Any]) -> List[str]:
        """sha1 of each utterance's unpadded input (shape, dtype and values)."""
        x, lengths = model_inputs(batch)
        out = []
        for b, n in enumerate(lengths.tolist()):
            h = hashlib.sha1(str(tuple(x[b, :n].shape)).encode())
            _update_hash(h, x[b, :n])
            out.append(h.hexdigest())
        return out

    def _load(self, utt: str, input_hash: str, device) -> Optional[Dict[str, Any]]:
        path = self._path(utt)
        if not path.is_file():
            return None
        item = torch.load(path, map_location=device, weights_only=True)
        return item if item.get("input_sha1") == input_hash else None

    def get(self, batch: Dict[str, Any], compute: Callable[[], ModelOutput]) -> ModelOutput:
        utts = batch["utt_ids"]
        device = model_inputs(batch)[0].device
        hashes = self._input_hashes(batch)
        items = []
        for u, input_hash in zip(utts, hashes):
            item = self._load(u, input_hash, device)
            if item is None:
                break
            items.append(item)
        if len(items) < len(utts):
            out = compute()
            per_utt = out.logits.dim() == 2
            for b, u in enumerate(utts):
                n = int(out.out_lengths[b])
                item = {
                    "hidden": torch.stack([h[b, :n] for h in out.hidden_states]).to(self.store),
                    "logits": (out.logits[b] if per_utt else out.logits[b, :n]).to(self.store),
                    "input_sha1": hashes[b],
                }
                tmp = self._path(u).with_suffix(".tmp")
                torch.save(item, tmp)
                tmp.replace(self._path(u))
            return out
        lengths = torch.tensor([it["hidden"].shape[1] for it in items], device=device)
        T = int(lengths.max())
        pad = lambda x: nn.functional.pad(x.to(self.dtype), (0, 0, 0, T - x.shape[-2]))  # noqa: E731
        hidden = torch.stack([pad(it["hidden"]) for it in items], dim=1)  # (L, B, T, D)
        per_utt = items[0]["logits"].dim() == 1
        logits = torch.stack([it["logits"].to(self.dtype) if per_utt else pad(it["logits"]) for it in items])
        return ModelOutput(logits, lengths, list(hidden.unbind(0)))


class TargetGuide(Guide):
    name = "target"
    student_init = "finetuned"

    @classmethod
    def build(cls, teacher, cfg, ctx):
        return cls(teacher, cfg["teacher_mode"], _cache_dir(cfg, ctx), cfg["cache_dtype"])

    def __init__(
        self, teacher: nn.Module, mode: str = "eval", cache_dir: Optional[Path] = None, cache_dtype: str = "float16"
    ):
        self.teacher, self.mode = teacher, mode
        self.cache = TeacherCache(cache_dir, teacher, cache_dtype) if cache_dir is not None else None
        if self.cache is not None and mode != "eval":
            raise ValueError("the teacher cache needs teacher_mode eval (train mode is not deterministic)")

    def distils(self, step: int) -> bool:
        return True

    def teacher_outputs(self, batch, step):
        compute = lambda: _teacher_forward(self.teacher, batch, self.mode)  # noqa: E731
        return self.cache.get(batch, compute) if self.cache is not None else compute()


class HybridGuide(TargetGuide):
    name = "hybrid"

    @classmethod
    def build(cls, teacher, cfg, ctx):
        off = cfg["switch_off_step"]
        if off is None:
            raise ValueError("hybrid needs switch_off_step (a step, or a fraction of max_steps below 1)")
        off = int(round(float(off) * cfg["max_steps"])) if float(off) < 1 else int(off)
        return cls(
            teacher, off, mode=cfg["teacher_mode"], cache_dir=_cache_dir(cfg, ctx), cache_dtype=cfg["cache_dtype"]
        )

    def __init__(self, teacher: nn.Module, switch_off_step: int, **kw):
        super().__init__(teacher, **kw)
        self.switch_off_step = int(switch_off_step)

    def distils(self, step: int) -> bool:
        return step < self.switch_off_step


class WaypointGuide(Guide):
    """Snapshots are model dirs named step_<N> (N = the Std. run's step when saved)."""

    name = "waypoint"

    @classmethod
    def build(cls, teacher, cfg, ctx):
        if not ctx.snapshot_dir:
            raise ValueError("waypoint needs --snapshot_dir (the Std. run's snapshots/)")
        return cls(Path(ctx.snapshot_dir), cfg["teacher_mode"])

    def __init__(self, snapshot_dir: Path, mode: str = "eval"):
        dirs = [d for d in Path(snapshot_dir).glob("step_*") if re.fullmatch(r"step_\d+", d.name)]
        if not dirs:
            raise FileNotFoundError(f"{snapshot_dir}: no step_<N> snapshots for waypoint guidance")
        self.snapshots = sorted(((int(d.name[5:]), d) for d in dirs))
        self.mode = mode
        self.current: Optional[int] = None
        self.teacher: Optional[nn.Module] = None

    def snapshot_for(self, step: int) -> int:
        """Index of the first snapshot saved after `step`, or the last one."""
        for i, (s, _) in enumerate(self.snapshots):
            if s > step:
                return i
        return len(self.snapshots) - 1

    def distils(self, step: int) -> bool:
        return True

    def teacher_outputs(self, batch, step):
        i = self.snapshot_for(step)
        if i != self.current:
            self.teacher, _ = load_model(self.snapshots[i][1])
            self.teacher.to(self.device, self.dtype)
            self.current = i
        return _teacher_forward(self.teacher, batch, self.mode)


class TrajectoryGuide(Guide):
    """The teacher is fine-tuned alongside the student, from the same pretrained weights, on the same
    batches, with its own AdamW and learning rate, one teacher step every `update_every` student steps."""

    name = "trajectory"

    @classmethod
    def build(cls, teacher, cfg, ctx):
        lr = float(cfg["teacher_lr"] or cfg["optim_conf"]["lr"])
        wrap = (lambda m: nn.parallel.DistributedDataParallel(m)) if ctx.distributed else (lambda m: m)
        return cls(
            teacher,
            ctx.task_loss,
            ctx.make_optimizer(teacher, lr),
            cfg["update_every"],
            cfg["teacher_mode"],
            grad_clip=cfg["grad_clip"],
            wrap=wrap,
            amp=cfg["amp"],
        )

    def __init__(
        self,
        teacher: nn.Module,
        task_loss: Callable,
        optimizer: torch.optim.Optimizer,
        update_every: int = 1,
        mode: str = "eval",
        grad_clip: float = 1.0,
        wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
        amp: str = "none",
    ):
        self.teacher = teacher
        self.wrap = wrap  # DistributedDataParallel when distributed
        self._train_view: Optional[nn.Module] = None
        self.task_loss = task_loss
        self.update_every, self.mode, self.grad_clip = int(update_every), mode, grad_clip
        self.optimizer = optimizer
        self.updates = 0
        self.skipped = 0  # teacher steps skipped for a non-finite loss or gradient
        # the teacher trains under the run's autocast too, with loss scaling of its own for fp16 (made at first
        # use, on the device the guide was moved to)
        self.amp, self._scaler, self._scaler_state = amp, None, None

    @property
    def scaler(self) -> torch.amp.GradScaler:
        if self._scaler is None:
            self._scaler = grad_scaler(self.amp, self.device)
            if self._scaler_state:
                self._scaler.load_state_dict(self._scaler_state)
        return self._scaler

    def distils(self, step: int) -> bool:
        return True

    @property
    def train_view(self) -> nn.Module:
        # wrapped at first use, after to(): DistributedDataParallel fixes the device and dtype of its buckets
        if self._train_view is None:
            self._train_view = self.wrap(self.teacher)
        return self._train_view

    def teacher_outputs(self, batch, step):
        return _teacher_forward(self.teacher, batch, self.mode)

    def after_step(self, batches, step):
        if step % self.update_every:
            return
        self.teacher.train()
        self.optimizer.zero_grad(set_to_none=True)
        finite = True
        for batch, weight in batches:
            with autocast(self.amp, self.device):
                loss = self.task_loss(self.train_view, batch) * weight
            finite = finite and bool(torch.isfinite(loss))
            self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.teacher.parameters(), self.grad_clip)
        if finite and bool(torch.isfinite(norm)):
            self.scaler.step(self.optimizer)
            self.updates += 1
        else:
            # as the student's guard does: one bad batch must not turn the teacher's weights into NaN
            self.skipped += 1
        self.scaler.update()  # fp16: the scale halves after an overflow (a pass-through without fp16)
        self.optimizer.zero_grad(set_to_none=True)

    def state_dict(self):
        return {
            "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
            "skipped": self.skipped,
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state):
        self.teacher.load_state_dict(state["teacher"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self.skipped = int(state.get("skipped", 0))  # checkpoints from before the count
        self._scaler, self._scaler_state = None, state.get("scaler")


def copy_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def _cache_dir(cfg: Dict[str, Any], ctx: GuideContext) -> Optional[Path]:
    return Path(ctx.output_dir) / "teacher_cache" if cfg["cache_teacher"] else None


STRATEGIES: Registry[type] = Registry(
    "strategy", {cls.name: cls for cls in (Guide, TargetGuide, TrajectoryGuide, WaypointGuide, HybridGuide)}
)
STUDENT_INIT = {name: cls.student_init for name, cls in STRATEGIES.items()}
