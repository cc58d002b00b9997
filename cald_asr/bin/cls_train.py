"""Train a text classifier: the Std. fine-tuning of a transformer (stage 5) or CALD (stage 6).

The same program as asr_train (one trainer, the task is the model's): the options, configs, strategies,
--resume and --nproc are asr_train's; the data dirs are stage 2's text dumps (text, label, token_ids).

    python -m cald_asr.bin.cls_train --config conf/train_teacher.yaml --init_model exp/cls_teacher/init \
        --train_data dump/train_16k --valid_data dump/dev --output_dir exp/cls_teacher
    python -m cald_asr.bin.cls_train --config conf/train_student.yaml --cald_config ../../../conf/cald/trajectory.yaml \
        --mixer_config conf/linformer_k64.yaml --pretrained_model exp/cls_teacher/init \
        --finetuned_model exp/cls_teacher/best --snapshot_dir exp/cls_teacher/snapshots \
        --train_data dump/train_16k --valid_data dump/dev --output_dir exp/cald_trajectory_linformer_k64
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from cald_asr.bin import asr_train


def main(argv: Optional[Sequence[str]] = None) -> int:
    return asr_train.main(argv, prog="cls_train", doc=__doc__)


if __name__ == "__main__":
    sys.exit(main())
