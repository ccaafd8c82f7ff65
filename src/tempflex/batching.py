"""Batching processed samples: right padding and pixel concatenation (training, scoring).

``pad_right(samples, pad_token_id)`` stacks samples from the processor (``input_ids`` ``[1, L]``, optional
``labels``, pixel tensors) into one batch: rows right-padded to the longest (``input_ids`` with ``pad_token_id``,
``attention_mask`` 0, ``labels`` -100), and each sample's pixels concatenated in order, so the model's placeholder
scatter meets every sample's features at its own placeholders (``concat_pixels``).

>>> import torch
>>> batch = pad_right([{"input_ids": torch.tensor([[5, 6]])}, {"input_ids": torch.tensor([[7]])}], 0)
>>> batch["input_ids"].tolist(), batch["attention_mask"].tolist()
([[5, 6], [7, 0]], [[1, 1], [1, 0]])
"""

from __future__ import annotations

import torch

__all__ = ["PIXEL_KEYS", "concat_pixels", "pad_right"]

PIXEL_KEYS = (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw"))
"""Each pixel tensor with the grid tensor that describes it."""


def concat_pixels(samples: list[dict]) -> dict[str, torch.Tensor]:
    """The pixel tensors and grids of ``samples``, concatenated in sample order."""
    batch = {}
    for pixels, grid in PIXEL_KEYS:
        present = [s for s in samples if s.get(pixels) is not None]
        if present:
            batch[pixels] = torch.cat([s[pixels] for s in present])  # [sum patches, p*p*C]
            batch[grid] = torch.cat([s[grid] for s in present])  # [clips, 3]
    return batch


def pad_right(samples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids`` / ``attention_mask`` (and ``labels`` when every sample has them) + pixels."""
    width = max(s["input_ids"].shape[-1] for s in samples)
    rows = len(samples)
    input_ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((rows, width), dtype=torch.long)
    with_labels = all("labels" in s for s in samples)
    labels = torch.full((rows, width), -100, dtype=torch.long)
    for row, sample in enumerate(samples):
        length = sample["input_ids"].shape[-1]
        input_ids[row, :length] = sample["input_ids"][0]
        attention_mask[row, :length] = 1
        if with_labels:
            labels[row, :length] = sample["labels"][0]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if with_labels:
        batch["labels"] = labels
    return {**batch, **concat_pixels(samples)}
