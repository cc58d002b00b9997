"""Text classification through the one trainer: a few steps of each of the five strategies on a tiny
slice of real SST-2 with the real all-MiniLM-L6-v2 (Linformer students, one BiMamba2), the recipe's own
CALD configs; the per-utterance normalisation of the classifier's loss terms; best/ chosen by dev
accuracy; the teacher cache with per-utterance logits, per teacher, checked against its inputs."""

import copy
from pathlib import Path

import pytest
import torch

from cald_asr.bin import asr_train
from cald_asr.bin.cls_tokenize import tokenize_dir
from cald_asr.bin.prepare_teacher import prepare_teacher
from cald_asr.corpora.sst2 import read_tsv
from cald_asr.data.kaldi_dir import read_kv
from cald_asr.data.text_dataset import write_text_set
from cald_asr.distill.guides import TeacherCache, model_inputs
from cald_asr.models.model_file import load_model
from cald_asr.train.trainer import StepNorm, compute_loss, train, validate

from shared_data import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
RECIPE_CONF = REPO / "egs" / "sst2" / "cls1" / "conf"
TEACHER = {
    "model": "text_cls",
    "encoder": "bert",
    "pretrained": {"format": "bert_hf", "path": "default"},
    "pooling": "mean",
}
TRAIN = """max_steps: 3
batch_bins: 1024
max_batch_size: 16
optim_conf: {lr: 1.0e-4, weight_decay: 0.01}
scheduler_conf: {warmup_steps: 1}
valid_every: 1
snapshot_every: 1
checkpoint_every: 100
log_every: 1
num_threads: 1
"""
LINFORMER = "mixer: linformer\nmixer_conf: {k: 16, sharing: key_value}\n"
EXPECTED_START = {
    "unguided": "pretrained",
    "target": "finetuned",
    "trajectory": "pretrained",
    "waypoint": "pretrained",
    "hybrid": "finetuned",
}


@pytest.fixture(scope="module")
def sst2(tmp_path_factory):
    """48 training phrases and 24 dev sentences of real SST-2, tokenised; the teacher; a 3-step Std. run
    validated and snapshotted every step."""
    corpus = SHARED_DATA / "sst2"
    if not (corpus / "train.tsv").is_file():
        pytest.skip(f"{corpus} not present")
    root = tmp_path_factory.mktemp("sst2")
    for name, tsv, n in (("train", "train.tsv", 48), ("dev", "dev.tsv", 24)):
        rows = read_tsv(corpus / tsv)[:n]
        write_text_set(
            root / "data" / name, {f"{name}-{r}": s for r, _, s in rows}, {f"{name}-{r}": c for r, c, _ in rows}
        )
        tokenize_dir(root / "data" / name, root / "dump" / name, "default", None, force=False)
    prepare_teacher(TEACHER, root / "init", labels=["negative", "positive"], seed=0)
    (root / "train.yaml").write_text(TRAIN)
    (root / "linformer.yaml").write_text(LINFORMER)
    state, _, _ = run([*common(root, root / "std"), "--init_model", root / "init"])
    assert state["step"] == 3
    return root


def common(root, out):
    return [
        "--config",
        root / "train.yaml",
        "--train_data",
        root / "dump" / "train",
        "--valid_data",
        root / "dump" / "dev",
        "--output_dir",
        out,
    ]


def cald(root, strategy, out, *extra, mixer=None):
    return [
        *common(root, out),
        "--cald_config",
        RECIPE_CONF / "cald" / f"{strategy}.yaml",
        "--mixer_config",
        mixer or root / "linformer.yaml",
        "--pretrained_model",
        root / "init",
        "--finetuned_model",
        root / "std" / "best",
        "--snapshot_dir",
        root / "std" / "snapshots",
        "--max_steps",
        2,
        "--valid_every",
        100,
        *extra,
    ]


def build(argv):
    args, overrides = asr_train.get_parser().parse_known_args([str(a) for a in argv])
    cfg = asr_train.build_config(args, overrides)
    model, fields, guide = asr_train.build_models(cfg, args)
    train_set, valid_set, _ = asr_train.build_datasets(fields, args, model)
    return cfg, model, fields, guide, args, train_set, valid_set


def run(argv, instrument=None):
    cfg, model, fields, guide, args, train_set, valid_set = build(argv)
    if instrument is not None:
        instrument(guide)
    state = train(cfg, model, train_set, valid_set, None, Path(args.output_dir), fields, guide)
    return state, guide, Path(args.output_dir)


def weights(model_or_dir):
    if not isinstance(model_or_dir, torch.nn.Module):
        model_or_dir, _ = load_model(model_or_dir)
    return {k: v.detach().clone() for k, v in model_or_dir.state_dict().items()}


def logged(out, term):
    import re

    return [
        int(m.group(1))
        for m in re.finditer(r"step (\d+)/\d+ epoch \d+ (.*)", (out / "train.log").read_text())
        if f" {term} " in f" {m.group(2)} "
    ]


@pytest.mark.parametrize("strategy", list(EXPECTED_START))
def test_each_strategy_runs_a_few_steps(strategy, sst2, tmp_path):
    calls = []

    def instrument(guide):
        inner = guide.teacher_outputs

        def spy(batch, step):
            out = inner(batch, step)
            calls.append((step, None if out is None else out.logits.shape))
            return out

        guide.teacher_outputs = spy

    extra = ("--switch_off_step", 1) if strategy == "hybrid" else ()
    argv = cald(sst2, strategy, tmp_path / "run", *extra)
    _, student, fields, guide, *_ = build(argv)
    source = weights(sst2 / {"pretrained": "init", "finetuned": "std/best"}[EXPECTED_START[strategy]])
    kept = [k for k in source if ".self_attn." not in k]
    s = weights(student)
    assert all(torch.equal(s[k], source[k]) for k in kept), "kept weights start where the strategy says"
    assert fields["mixer"] == "linformer" and fields["cald_strategy"] == strategy

    state, guide, out = run(argv, instrument)
    assert state["step"] == 2 and (out / "best" / "model.safetensors").is_file()
    final, config = load_model(out / "final")
    assert config["labels"] == ["negative", "positive"] and config["tokenizer"] == "default"
    assert sum(".self_attn.E." in k for k in weights(final)) == 6, "one E = F per layer (key_value)"
    expected_calls = {"unguided": [], "hybrid": [0]}.get(strategy, [0, 1])
    assert [c[0] for c in calls] == expected_calls
    assert all(shape[1] == 2 for _, shape in calls), "per-utterance class logits"
    assert logged(out, "layer") == [s + 1 for s in expected_calls]
    assert logged(out, "ce") == [1, 2] and logged(out, "logits") == [], "the recipe's alpha_logits is 0"
    if strategy == "trajectory":  # update_every 2: one teacher step, after student step 2
        assert (
            guide.updates == 1
            and torch.nn.utils.parameters_to_vector(guide.teacher.parameters())
            .ne(torch.nn.utils.parameters_to_vector(load_model(sst2 / "init")[0].parameters()))
            .any()
        )
    if strategy == "waypoint":
        assert [n for n, _ in guide.snapshots] == [1, 2, 3] and guide.current == 1  # step 1 -> snapshot step_2


def test_a_bimamba2_student_runs(sst2, tmp_path):
    state, _, out = run(
        cald(sst2, "target", tmp_path / "run", "--max_steps", 1, mixer=REPO / "conf" / "mixer" / "bimamba2.yaml")
    )
    assert state["step"] == 1
    _, config = load_model(out / "best")
    assert config["mixer"] == "bimamba2" and logged(out, "layer") == [1]


def test_loss_terms_are_normalised_per_utterance_and_token(sst2, tmp_path):
    cfg, student, _, guide, _, train_set, _ = build(cald(sst2, "target", tmp_path / "run", "--alpha_logits", 1))
    student.train()
    for m in student.modules():  # no dropout: the two ways of batching must see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    items = [train_set[i] for i in (0, 7, 13, 21)]
    assert len({len(it["input_ids"]) for it in items}) >= 3
    n_tokens = sum(len(it["input_ids"]) for it in items)
    norm = StepNorm(len(items), n_tokens, 1)
    loss, stats = compute_loss(student, train_set.collate(items), cfg, guide, 0, norm)
    assert set(stats) == {"ce", "layer", "logits"}
    expected = stats["ce"] / 4 + 15 * stats["layer"] / n_tokens + 1 * stats["logits"] / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)

    def gradient(parts):
        student.zero_grad(set_to_none=True)
        for part in parts:
            compute_loss(student, train_set.collate(part), cfg, guide, 0, norm)[0].backward()
        return torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None])

    full, halves = gradient([items]), gradient([items[:2], items[2:]])
    assert float((full - halves).abs().max()) <= 1e-5 * float(full.abs().max())
    # the check has teeth: each half normalised by its own counts is another gradient
    own = 0
    for part in (items[:2], items[2:]):
        norm = StepNorm(2, sum(len(it["input_ids"]) for it in part), 1)
        own = own + gradient([part])
    assert float((full - own).abs().max()) > 0.1 * float(full.abs().max())


def test_best_is_the_highest_dev_accuracy(sst2):
    import re

    log = (sst2 / "std" / "train.log").read_text()
    accs = [(int(s), float(a)) for s, a in re.findall(r"step (\d+): dev loss [0-9.]+, dev accuracy ([0-9.]+)%", log)]
    assert [s for s, _ in accs] == [1, 2, 3]
    best_step, best_acc = max(accs, key=lambda x: (x[1], -x[0]))  # the first of equal accuracies
    best, config = load_model(sst2 / "std" / "best")
    assert config["trained_steps"] == best_step
    assert f"best dev accuracy {best_acc:.2f}%" in log
    from cald_asr.data.sampler import LengthBucketBatchSampler
    from cald_asr.data.text_dataset import TextDataset

    dev = TextDataset(sst2 / "dump" / "dev", config["labels"])
    res = validate(best, dev, list(LengthBucketBatchSampler(dev.lengths, 1024, shuffle=False)), None)
    assert res["acc"] == pytest.approx(best_acc, abs=0.01) and res["err"] == pytest.approx(100 - res["acc"])
    labels = list(read_kv(sst2 / "dump" / "dev" / "label").values())
    assert 0 < res["macro_f1"] <= 100 and len(labels) == 24


def test_teacher_cache_keeps_per_utterance_logits(sst2, tmp_path):
    teacher, _ = load_model(sst2 / "std" / "best")
    from cald_asr.data.text_dataset import TextDataset

    ds = TextDataset(sst2 / "dump" / "train", ["negative", "positive"])
    batch = ds.collate([ds[i] for i in (3, 5, 30)])
    cache = TeacherCache(tmp_path / "cache")
    with torch.no_grad():
        direct = teacher(*model_inputs(batch))
    first = cache.get(batch, lambda: direct)
    again = cache.get(batch, lambda: pytest.fail("the cache must answer the second time"))
    assert first is direct and again.logits.shape == (3, 2)
    assert torch.equal(again.out_lengths, batch["input_lengths"])
    assert torch.allclose(again.logits, direct.logits, atol=2e-3)
    for h_cached, h in zip(again.hidden_states, direct.hidden_states):
        assert torch.allclose(h_cached, h, atol=1e-2)


def test_teacher_cache_is_per_teacher_and_checks_inputs(sst2, tmp_path):
    """A retrained teacher in the same folder, or another text under a cached id, is never served the
    stored outputs: both are recomputed (and the second then answered from the cache)."""
    teacher, _ = load_model(sst2 / "std" / "best")
    from cald_asr.data.text_dataset import TextDataset

    ds = TextDataset(sst2 / "dump" / "train", ["negative", "positive"])
    batch = ds.collate([ds[i] for i in (3, 5)])
    run = lambda m, b: lambda: m(*model_inputs(b))  # noqa: E731
    with torch.no_grad():
        first = TeacherCache(tmp_path, teacher).get(batch, run(teacher, batch))
        other = copy.deepcopy(teacher)
        list(other.parameters())[-1].add_(0.5)  # the classifier bias: every logit moves
        calls = []
        got = TeacherCache(tmp_path, other).get(batch, lambda: calls.append(1) or other(*model_inputs(batch)))
        assert calls == [1] and not torch.allclose(got.logits, first.logits, atol=1e-3)
        assert len([d for d in tmp_path.iterdir() if d.is_dir()]) == 2  # one folder per teacher

        # utterance 5's id now holds utterance 30's text
        changed = ds.collate([ds[i] for i in (3, 30)])
        changed["utt_ids"] = list(batch["utt_ids"])
        cache = TeacherCache(tmp_path, teacher)
        fresh = cache.get(changed, run(teacher, changed))
        again = cache.get(changed, lambda: pytest.fail("the recomputed entry must be stored"))
    assert torch.allclose(again.logits[1], fresh.logits[1], atol=2e-3)
    assert not torch.allclose(fresh.logits[1], first.logits[1], atol=1e-3)


@pytest.mark.parametrize("store", ["float32", "bfloat16"])
def test_teacher_cache_stores_in_cache_dtype(sst2, tmp_path, store):
    """cache_dtype float32 reads back the teacher's outputs exactly; bfloat16 within its rounding (8 bits of
    mantissa: 2^-8 relative); each store dtype keeps its own folder, so switching never reads the other's."""
    teacher, _ = load_model(sst2 / "std" / "best")
    from cald_asr.data.text_dataset import TextDataset

    ds = TextDataset(sst2 / "dump" / "train", ["negative", "positive"])
    batch = ds.collate([ds[i] for i in (3, 5, 30)])
    with torch.no_grad():
        direct = teacher(*model_inputs(batch))
    TeacherCache(tmp_path, teacher).get(batch, lambda: direct)  # the float16 default
    cache = TeacherCache(tmp_path, teacher, store)
    assert cache.get(batch, lambda: direct) is direct, "another dtype's entries are not served"
    again = cache.get(batch, lambda: pytest.fail("the cache must answer the second time"))
    assert {p.suffix for p in cache.dir.iterdir()} == {".pt"} and cache.dir.name == store
    rtol = 0.0 if store == "float32" else 2.0**-8
    assert torch.equal(again.out_lengths, direct.out_lengths)
    pairs = [(again.logits, direct.logits)]
    for b, n in enumerate(direct.out_lengths.tolist()):  # the padded frames are not stored
        pairs += [(hc[b, :n], h[b, :n]) for hc, h in zip(again.hidden_states, direct.hidden_states)]
    for got, want in pairs:
        assert float((got - want).abs().max()) <= rtol * float(want.abs().max()), store
