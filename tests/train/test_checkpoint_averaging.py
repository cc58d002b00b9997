"""average_checkpoints: N: the mean of the models of the N best validations, written to ave_N/."""

import re

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cald_asr.bin import asr_train
from cald_asr.models.model_file import WEIGHTS_NAME, load_model
from cald_asr.train.averaging import average_state_dicts

from train_helpers import std_args


def test_the_mean_of_identical_models_is_that_model():
    torch.manual_seed(0)
    s = {"w": torch.randn(4, 3), "b": torch.randn(3, dtype=torch.float64), "n": torch.tensor(7)}
    avg = average_state_dicts([s, s, s])
    assert all(torch.equal(avg[k], s[k]) and avg[k].dtype == s[k].dtype for k in s)


def test_the_mean_of_two():
    a = {"w": torch.tensor([1.0, 2.0]), "h": torch.tensor([1.0], dtype=torch.float16), "n": torch.tensor(3)}
    b = {"w": torch.tensor([2.0, 5.0]), "h": torch.tensor([2.0], dtype=torch.float16), "n": torch.tensor(6)}
    avg = average_state_dicts([a, b])
    assert avg["w"].tolist() == [1.5, 3.5] and avg["h"].dtype == torch.float16 and avg["h"].item() == 1.5
    assert avg["n"].item() == 4  # integer counters: the floor of the mean, as ESPnet does


def test_other_keys_are_refused():
    with pytest.raises(ValueError, match="other keys"):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_a_run_averages_its_two_best_validations(yesno, tmp_path):
    out = tmp_path / "run"
    args = ["--max_steps", 8, "--valid_every", 2, "--checkpoint_every", 100, "--average_checkpoints", 2]
    assert asr_train.main(std_args(yesno, out, *args)) == 0
    log = (out / "train.log").read_text()
    dev = [
        (int(s), float(wer), float(loss))
        for s, loss, wer in re.findall(r"step (\d+): dev loss ([0-9.]+), dev WER ([0-9.]+)%", log)
    ]
    assert [s for s, _, _ in dev] == [2, 4, 6, 8]
    best_two = sorted(dev, key=lambda r: (r[1], r[2]))[:2]  # the selection of best/: WER, then dev loss
    info = yaml.safe_load((out / "ave_2" / "averaged.yaml").read_text())
    assert [m["step"] for m in info["models"]] == [s for s, _, _ in best_two]
    kept = sorted(p.name for p in (out / "valid_models").iterdir())
    assert kept == sorted(f"step_{s}" for s, _, _ in best_two), "only the two best are kept"
    a, b = (load_file(str(out / "valid_models" / f"step_{s}" / WEIGHTS_NAME)) for s, _, _ in best_two)
    ave = load_file(str(out / "ave_2" / WEIGHTS_NAME))
    for k in ave:
        assert torch.allclose(ave[k], (a[k].double() + b[k].double()).div(2).float(), rtol=0, atol=0), k
    model, fields = load_model(out / "ave_2")  # a model dir like best/
    assert fields["encoder"] == load_model(out / "best")[1]["encoder"]
    assert "the mean of the models of steps" in log


def test_a_negative_count_is_refused(yesno, tmp_path, capsys):
    assert asr_train.main(std_args(yesno, tmp_path / "run", "--max_steps", 2, "--average_checkpoints", -1)) == 1
    assert "average_checkpoints -1" in capsys.readouterr().err
