"""Two CPU processes under torchrun (gloo) train like one process on the same global batches.

Each rank gets half of every global batch and the loss is normalised by the whole batch's counts, so the
averaged gradient is the one-process gradient; only float rounding differs (sums in another order, other
padding). Dropout is 0 and SpecAugment off, so nothing random differs between the runs.
"""

import pytest
import torch
import yaml

from cald_asr.bin import asr_train
from train_helpers import cald_args, cli, state_of, std_args

# batches of 5 from 26 utterances: one batch of 1, where rank 1 has no utterance and joins with weight 0
RUN = ["--max_steps", 6, "--max_batch_size", 5, "--valid_every", 100, "--checkpoint_every", 100, "--specaug", "false"]


def args_for(kind, yesno, teacher, out):
    if kind == "std":
        return std_args(yesno, out, *RUN)
    return cald_args("trajectory", yesno, teacher, out, *RUN, "--update_every", 1)


def history(run, key):
    rows = torch.load(run / "checkpoint.pt", weights_only=True)["history"]
    return [(h["step"], h[key]) for h in rows if key in h]


@pytest.mark.parametrize("kind", ["std", "trajectory"])
def test_two_processes_equal_one(kind, yesno, teacher, tmp_path):
    encoder_conf = yaml.safe_load((yesno.init / "config.yaml").read_text())["encoder_conf"]
    assert all(v == 0 for k, v in encoder_conf.items() if "dropout" in k)
    one, two = tmp_path / "one", tmp_path / "two"
    assert asr_train.main(args_for(kind, yesno, teacher, one)) == 0
    r = cli(*args_for(kind, yesno, teacher, two), "--nproc", 2)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "torch.distributed.run" in r.stdout and "--nproc_per_node=2" in r.stdout

    # gradient clipping and AdamW hide a uniform scale error in the gradient; the pre-clip norm does not.
    # A normalisation error moves it by a share of one utterance in 5 (percents) or by the world size (2x);
    # rounding moves it by ~1e-5 (trajectory: the concurrently trained teacher carries the rounding on)
    g1, g2 = history(one, "train/grad_norm"), history(two, "train/grad_norm")
    assert [s for s, _ in g1] == [s for s, _ in g2] == list(range(1, 7))
    for (s, a), (_, b) in zip(g1, g2):
        assert abs(a - b) <= 1e-4 * a, f"step {s}: grad norm {a} with 1 process, {b} with 2"

    lrs = [lr for _, lr in history(one, "train/lr")]
    a, b = state_of(one / "final"), state_of(two / "final")
    init = state_of(yesno.init)
    assert max(float((a[k] - init[k]).abs().max()) for k in init.keys() & a.keys()) > 1e-3, "training moved weights"
    assert_rounding_apart(a, b, lrs)
    if kind == "trajectory":
        ga, gb = (torch.load(d / "checkpoint.pt", weights_only=True)["guide"] for d in (one, two))
        assert ga["updates"] == gb["updates"] == 6
        teacher_lr = ga["optimizer"]["param_groups"][0]["lr"]  # constant: the teacher has no schedule
        assert_rounding_apart(ga["teacher"], gb["teacher"], [teacher_lr] * 6)


def assert_rounding_apart(a, b, lrs):
    assert a.keys() == b.keys()
    for k in a:
        d = float((a[k] - b[k]).abs().max())
        if k.endswith("self_attn.k_proj.bias"):
            # softmax ignores a shift shared by all keys: this bias's exact gradient is 0, so its AdamW steps
            # are normalised rounding noise, bounded only by the step sizes
            assert d <= sum(lrs), k
        else:
            # rounding only: under 1 % of the smallest AdamW step of the run (a step moves a weight ~lr)
            assert d <= 0.01 * min(lrs), f"{k}: differs by {d:.3g}"
