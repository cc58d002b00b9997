import pytest
import torch

from cald_asr.data.collate import pad_collate


def test_waveform_batch_shapes_and_padding():
    g = torch.Generator().manual_seed(0)
    items = [
        {"utt_id": "a", "speech": torch.randn(5, generator=g), "text_ids": torch.tensor([4, 5, 6])},
        {"utt_id": "b", "speech": torch.randn(8, generator=g), "text_ids": torch.tensor([7])},
    ]
    batch = pad_collate(items)
    assert batch["utt_ids"] == ["a", "b"]
    assert batch["speech"].shape == (2, 8) and batch["speech"].dtype == torch.float32
    assert batch["speech_lengths"].tolist() == [5, 8]
    torch.testing.assert_close(batch["speech"][0, :5], items[0]["speech"])
    assert torch.all(batch["speech"][0, 5:] == 0)
    torch.testing.assert_close(batch["speech"][1], items[1]["speech"])
    assert batch["text"].tolist() == [[4, 5, 6], [7, -1, -1]]
    assert batch["text_lengths"].tolist() == [3, 1]
    assert batch["text"].dtype == batch["text_lengths"].dtype == torch.long


def test_feature_batch_shapes():
    items = [
        {"utt_id": f"u{i}", "speech": torch.ones(t, 13), "text_ids": torch.arange(i + 1)}
        for i, t in enumerate([3, 7, 2])
    ]
    batch = pad_collate(items)
    assert batch["speech"].shape == (3, 7, 13)
    assert batch["speech_lengths"].tolist() == [3, 7, 2]
    assert batch["speech"].sum().item() == (3 + 7 + 2) * 13  # padding is zeros
    assert batch["text"].shape == (3, 3)


def test_all_empty_texts_give_zero_width():
    items = [{"utt_id": "a", "speech": torch.ones(4), "text_ids": torch.zeros(0, dtype=torch.long)}]
    batch = pad_collate(items)
    assert batch["text"].shape == (1, 0) and batch["text_lengths"].tolist() == [0]


def test_mismatched_feature_dims_name_utterances():
    items = [
        {"utt_id": "a", "speech": torch.ones(3, 13), "text_ids": torch.tensor([1])},
        {"utt_id": "b", "speech": torch.ones(3, 80), "text_ids": torch.tensor([1])},
    ]
    with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
        pad_collate(items)
