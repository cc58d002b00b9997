"""Loss weights mean the same whatever the batching (docs/cald-method.md, section 5): with the step's counts
in StepNorm, two accumulated half batches, or two ranks' shards averaged as DistributedDataParallel does,
give the gradient of the full batch, for all three terms (CTC, layer, logits) of a target-guided student."""

import torch

from cald_asr.data.collate import pad_collate
from cald_asr.train.trainer import StepNorm, compute_loss

from train_helpers import build, cald_args, datasets

# rounding only: padding differs between the full batch and its parts
REL_TOL = 1e-5


def rel_diff(a, b):
    scale = max(float(v.abs().max()) for v in a.values())
    return max(float((a[k] - b[k]).abs().max()) for k in a) / scale


def setup(yesno, teacher, tmp_path):
    cfg, student, fields, guide, _ = build(cald_args("target", yesno, teacher, tmp_path / "run", "--alpha_logits", 1))
    assert cfg["alpha_layer"] == 15 and cfg["alpha_logits"] == 1
    train_set, _, _ = datasets(fields, yesno)
    # four utterances of different lengths, so every part is padded differently from the whole
    order = sorted(range(len(train_set)), key=lambda i: train_set.lengths[i])
    items = [train_set[i] for i in (order[0], order[8], order[16], order[-1])]
    assert len({len(it["speech"]) for it in items}) == 4
    student.train()
    return cfg, student, guide, items


def frames(model, items):
    return int(model.output_lengths(torch.tensor([len(it["speech"]) for it in items])).sum())


def gradient(model, cfg, guide, parts, norm):
    model.zero_grad(set_to_none=True)
    for part in parts:
        loss, _ = compute_loss(model, pad_collate(part), cfg, guide, 0, norm)
        loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def test_accumulated_half_batches_give_the_full_batch_gradient(yesno, teacher, tmp_path):
    cfg, student, guide, items = setup(yesno, teacher, tmp_path)
    norm = StepNorm(len(items), frames(student, items), 1)
    full = gradient(student, cfg, guide, [items], norm)
    halves = gradient(student, cfg, guide, [items[:2], items[2:]], norm)
    assert rel_diff(full, halves) <= REL_TOL
    # the check has teeth: normalising each half by its own counts (a per-micro-batch mean) is another gradient
    own = {}
    for part in (items[:2], items[2:]):
        g = gradient(student, cfg, guide, [part], StepNorm(len(part), frames(student, part), 1))
        own = {k: own.get(k, 0) + v for k, v in g.items()}
    assert rel_diff(full, own) > 0.1


def test_two_ranks_shards_average_to_the_full_batch_gradient(yesno, teacher, tmp_path):
    cfg, student, guide, items = setup(yesno, teacher, tmp_path)
    full = gradient(student, cfg, guide, [items], StepNorm(len(items), frames(student, items), 1))
    norm = StepNorm(len(items), frames(student, items), 2)
    ranks = [gradient(student, cfg, guide, [items[r::2]], norm) for r in range(2)]
    averaged = {k: (ranks[0][k] + ranks[1][k]) / 2 for k in full}
    assert rel_diff(full, averaged) <= REL_TOL


def test_the_loss_is_the_weighted_sum_of_normalised_terms(yesno, teacher, tmp_path):
    cfg, student, guide, items = setup(yesno, teacher, tmp_path)
    n_frames = frames(student, items)
    loss, stats = compute_loss(student, pad_collate(items), cfg, guide, 0, StepNorm(len(items), n_frames, 1))
    assert set(stats) == {"ctc", "layer", "logits"}
    expected = stats["ctc"] / len(items) + 15 * stats["layer"] / n_frames + 1 * stats["logits"] / n_frames
    assert abs(loss.item() - expected) <= 1e-5 * expected
