"""Two CPU processes under torchrun (gloo) train like one process on the same global batches.

Each rank gets half of every global batch and the loss is normalised by the whole batch's counts, so the
averaged gradient is the one-process gradient; only float rounding differs (sums in another order, other
padding). Dropout is 0 and SpecAugment off, so nothing random differs between the runs.

Both runs and the comparison are in float64. In float32, AdamW turns rounding of near-zero gradients into
whole steps (m / (sqrt(v) + eps) of noise is about +-1), so two float32 runs can differ by a step in some
weights on one instruction set (AVX-512: 3.7e-5 after 6 steps of lr 3e-3) and not on another. In float64
that noise (~1e-16 of the gradient's scale) sits far below AdamW's eps (1e-8), and the runs agree to
~1e-14 on AVX-512, AVX2 and the default kernels alike.
"""

import pytest
import torch
import yaml

from cald_asr.bin import asr_train

from train_helpers import cald_args, cli, state_of, std_args

# batches of 5 from 26 utterances: one batch of 1, where rank 1 has no utterance and joins with weight 0
# Rounding only, relative: sqrt(float64 eps) = 1.5e-8, some 200x above the drift measured after 6 steps, and
# far below what a normalisation error moves (a share of one utterance in 5: percents).
RTOL = torch.finfo(torch.float64).eps ** 0.5

RUN = [
    "--max_steps",
    6,
    "--max_batch_size",
    5,
    "--valid_every",
    100,
    "--checkpoint_every",
    100,
    "--specaug",
    "false",
    "--dtype",
    "float64",
]


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
    # A normalisation error moves it by a share of one utterance in 5 (percents) or by the world size (2x)
    g1, g2 = history(one, "train/grad_norm"), history(two, "train/grad_norm")
    assert [s for s, _ in g1] == [s for s, _ in g2] == list(range(1, 7))
    for (s, a), (_, b) in zip(g1, g2):
        assert abs(a - b) <= RTOL * a, f"step {s}: grad norm {a} with 1 process, {b} with 2"

    lrs = [lr for _, lr in history(one, "train/lr")]
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True)["model"] for d in (one, two))  # float64
    init = state_of(yesno.init)
    assert max(float((a[k] - init[k]).abs().max()) for k in init.keys() & a.keys()) > 1e-3, "training moved weights"
    assert_rounding_apart(a, b, lrs)
    if kind == "trajectory":
        ga, gb = (torch.load(d / "checkpoint.pt", weights_only=True)["guide"] for d in (one, two))
        assert ga["updates"] == gb["updates"] == 6
        teacher_lr = ga["optimizer"]["param_groups"][0]["lr"]  # constant: the teacher has no schedule
        assert_rounding_apart(ga["teacher"], gb["teacher"], [teacher_lr] * 6)


def assert_rounding_apart(a, b, lrs):
    """Rounding only: a weight moves by ~lr per AdamW step, so the runs may differ by RTOL of the smallest step.
    (That holds for self_attn.k_proj.bias too, whose exact gradient is 0: softmax ignores a shift shared by all
    keys. Its float64 rounding noise stays far below AdamW's eps, so it is not normalised into steps.)"""
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == torch.float64, k
        d = float((a[k] - b[k]).abs().max())
        assert d <= RTOL * min(lrs), f"{k}: differs by {d:.3g}"


SPEC = [
    "--max_steps",
    4,
    "--max_batch_size",
    5,
    "--valid_every",
    100,
    "--checkpoint_every",
    1,
    "--specaug",
    "true",
    "--dtype",
    "float64",
    "--nproc",
    2,
]


def test_ranks_draw_their_own_masks_and_resume_them(yesno, tmp_path):
    """With SpecAugment on, each rank draws its own masks (seed + rank), and a 2-process run stopped after step 2
    and resumed continues every rank's own random stream: it ends where the uninterrupted run ends."""
    from cald_asr.frontend.specaug import SpecAugment
    from cald_asr.train.checkpoint import set_rng_state

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    r = cli(*std_args(yesno, straight, *SPEC))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = cli(*std_args(yesno, resumed, *SPEC, "--stop_after", 2))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    r = cli(*std_args(yesno, resumed, *SPEC, "--resume"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resumed from" in (resumed / "train.log").read_text()

    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (straight, resumed))
    assert a["state"]["step"] == b["state"]["step"] == 4 and len(a["rng"]) == 2 and a["world_size"] == 2
    lrs = [lr for _, lr in history(straight, "train/lr")]
    assert_rounding_apart(a["model"], b["model"], lrs)
    for rank in (0, 1):  # each rank's generators, saved and restored, went on identically
        assert torch.equal(a["rng"][rank]["torch"], b["rng"][rank]["torch"]), f"rank {rank}"

    # the ranks' streams differ, so do the masks they draw from them
    feats, lengths = torch.ones(1, 200, 80), torch.tensor([200])
    masks = []
    for rank in (0, 1):
        set_rng_state(a["rng"][rank])
        masks.append(SpecAugment().train()(feats, lengths)[0])
    assert not torch.equal(masks[0], masks[1])


def test_torchrun_children_keep_ngpu_and_drop_nproc():
    """--ngpu N: the N children must still be told to use CUDA (before, the flag was dropped with --nproc's,
    and 8 GPU ranks would have trained on the CPU with gloo); --nproc N children run on CPU."""
    gpu = asr_train.torchrun_command(["--config", "c.yaml", "--ngpu", "8", "--max_steps", "5"], 8)
    assert gpu[gpu.index("-m", 3) :] == [
        "-m",
        "cald_asr.bin.asr_train",
        "--config",
        "c.yaml",
        "--ngpu",
        "8",
        "--max_steps",
        "5",
    ]
    assert "--nproc_per_node=8" in gpu
    cpu = asr_train.torchrun_command(["--nproc", "2", "--config", "c.yaml", "--nproc=2"], 2, "cls_train")
    assert cpu[-3:] == ["cald_asr.bin.cls_train", "--config", "c.yaml"]


def test_resume_with_another_number_of_processes_keeps_the_global_batches(yesno, tmp_path):
    """A 1-process run stopped after step 3 and resumed with 2 processes goes on with the same global batches:
    with nothing random in the run (dropout 0, SpecAugment off) it ends where the 1-process run ends, to
    rounding, and the log warns that the random draws are not bitwise the same."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run = [*RUN, "--checkpoint_every", 1]
    assert asr_train.main(std_args(yesno, straight, *run)) == 0
    assert asr_train.main(std_args(yesno, resumed, *run, "--stop_after", 3)) == 0
    r = cli(*std_args(yesno, resumed, *run, "--resume", "--nproc", 2))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = (resumed / "train.log").read_text()
    assert "written by 1 process(es), this run has 2: it continues with the same global batches" in log
    a, b = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (straight, resumed))
    assert a["state"]["step"] == b["state"]["step"] == 6 and b["world_size"] == 2
    assert a["state"]["batch_in_epoch"] == b["state"]["batch_in_epoch"]
    assert_rounding_apart(a["model"], b["model"], [lr for _, lr in history(straight, "train/lr")])
