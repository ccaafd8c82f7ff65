"""Batching tokenised samples: right padding, or packing several samples into one row.

Both collators drop ``None`` samples (media that failed to load, see ``data.SupervisedDataset``) and
concatenate the pixel tensors of the kept samples in order, so the model's placeholder scatter meets the
features of each sample at its own placeholders. A batch with no sample left raises; training never builds
one (``data.SkippingDataset`` replaces a failed sample by the next usable one), so that is only for direct use.

- ``PaddingCollator``: rows padded on the right to the longest sample (``labels`` padded with -100).
- ``PackingCollator``: whole samples concatenated into rows of at most ``max_length`` tokens (first fit, in
  order; a sample longer than ``max_length`` gets a row of its own, never cut: a visual span is never split).
  ``position_ids`` restart at 0 for every sample and no ``attention_mask`` is passed, which is how
  transformers 5 recognises packed rows: its masking builds a block-causal mask from the position ids
  (``masking_utils.find_packed_sequence_indices``) for sdpa and eager attention, so no token attends across
  samples. The first token of each sample is never a target. Each sample's loss equals its unpacked loss
  (tested). ``one_row=True`` packs the whole micro-batch into a single row instead: FlashAttention kernels
  (``flash_attention_2`` / ``_3``) get the samples' boundaries from the position ids only for a one-row batch
  (transformers' ``is_packed_sequence`` checks batch size 1), so training uses it for every implementation but
  ``sdpa`` and ``eager``.

Both pass on the ``"skipped"`` lists of ``data.SkippingDataset`` (failures found while fetching a sample, possibly in
a DataLoader worker) as one ``"skipped"`` list, which ``run.StageTrainer`` takes off before the forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tempflex.batching import concat_pixels, pad_right

__all__ = ["PackingCollator", "PaddingCollator"]


def _usable(samples: list[dict | None]) -> tuple[list[dict], dict[str, list]]:
    """The samples that loaded, and ``{"skipped": [...]}`` when fetching them met failures (else ``{}``)."""
    kept = [s for s in samples if s is not None]
    if not kept:
        raise ValueError("every sample of this batch failed to load")
    skipped = [pair for s in kept for pair in s.get("skipped", ())]
    kept = [{k: v for k, v in s.items() if k != "skipped"} for s in kept]
    return kept, ({"skipped": skipped} if skipped else {})


@dataclass
class PaddingCollator:
    """Right-pad ``input_ids`` (with ``pad_token_id``), ``attention_mask`` (0) and ``labels`` (-100)."""

    pad_token_id: int

    def __call__(self, samples: list[dict | None]) -> dict[str, torch.Tensor]:
        samples, skipped = _usable(samples)
        return {**pad_right(samples, self.pad_token_id), **skipped}


@dataclass
class PackingCollator:
    """Pack whole samples into rows of at most ``max_length`` tokens (``one_row``: all into one row) with
    per-sample ``position_ids``."""

    pad_token_id: int
    max_length: int
    one_row: bool = False

    def rows(self, lengths: list[int]) -> list[list[int]]:
        """Sample indices of each row: first fit, in order (sample order across rows is kept)."""
        if self.one_row:
            return [list(range(len(lengths)))]
        rows: list[list[int]] = []
        used: list[int] = []
        for index, length in enumerate(lengths):
            for row, total in enumerate(used):
                if total + length <= self.max_length:
                    rows[row].append(index)
                    used[row] += length
                    break
            else:
                rows.append([index])
                used.append(length)
        return rows

    def __call__(self, samples: list[dict | None]) -> dict[str, torch.Tensor]:
        samples, skipped = _usable(samples)
        lengths = [s["input_ids"].shape[-1] for s in samples]
        rows = self.rows(lengths)
        width = max(sum(lengths[i] for i in row) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        position_ids = torch.zeros((len(rows), width), dtype=torch.long)
        ordered = []
        for row, members in enumerate(rows):
            start = 0
            for index in members:
                sample, length = samples[index], lengths[index]
                input_ids[row, start : start + length] = sample["input_ids"][0]
                sample_labels = sample["labels"][0].clone()
                sample_labels[0] = -100  # never predict a sample's first token from the previous sample
                labels[row, start : start + length] = sample_labels
                position_ids[row, start : start + length] = torch.arange(length)
                start += length
                ordered.append(sample)
            # padding continues the last sample's positions, so it forms no new "sample" of its own
            position_ids[row, start:] = torch.arange(width - start) + (position_ids[row, start - 1] + 1)
        packed = {"input_ids": input_ids, "position_ids": position_ids, "labels": labels}
        return {**packed, **concat_pixels(ordered), **skipped}
