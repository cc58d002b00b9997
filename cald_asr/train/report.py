"""What a run shows while and after it trains: train.log, TensorBoard scalars, a PNG of the curves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def get_logger(out_dir: Path, enabled: bool) -> logging.Logger:
    logger = logging.getLogger(f"cald_asr.train.{out_dir}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if enabled and not logger.handlers:
        fh = logging.FileHandler(out_dir / "train.log")
        fh.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(fh)
        sh = logging.StreamHandler()
        sh.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(sh)
    return logger


class Scalars:
    """TensorBoard writer plus an in-memory history (saved in checkpoints) for the PNG."""

    def __init__(self, out_dir: Path, enabled: bool, history: List[Dict] | None = None):
        self.out_dir, self.enabled = out_dir, enabled
        self.history: List[Dict] = history or []
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def add(self, step: int, values: Dict[str, float]) -> None:
        self.history.append({"step": step, **values})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
            self.writer.flush()

    def plot(self) -> Path | None:
        if not self.enabled or not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = sorted({k for h in self.history for k in h if k != "step"})
        train_keys = [k for k in keys if k.startswith("train/") and k != "train/lr"]
        valid_keys = [k for k in keys if k.startswith("valid/")]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for k in train_keys:
            pts = [(h["step"], h[k]) for h in self.history if k in h]
            axes[0].plot(*zip(*pts), label=k[6:])
        axes[0].set(xlabel="step", ylabel="loss (train)", yscale="log", title=self.out_dir.name)
        axes[0].legend()
        for k in valid_keys:
            pts = [(h["step"], h[k]) for h in self.history if k in h]
            axes[1].plot(*zip(*pts), marker="o", label=k[6:])
        axes[1].set(xlabel="step", ylabel="dev", title="validation")
        axes[1].legend()
        fig.tight_layout()
        path = self.out_dir / "loss_curves.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
