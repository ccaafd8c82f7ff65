"""SigLIP2-naflex at native resolution: patches of several clips of different sizes -> per-clip features.

A *clip* is ``F`` frames of one size (an image is a one-frame clip); its grid is ``(F, h, w)`` in patches.
The input is the concatenation of every clip's patches in SigLIP2's layout (``patchify``): frame after
frame, each frame's patches in raster order, each patch flattened as ``(patch_row, patch_col, channel)``.

``VisionTower`` wraps transformers' ``Siglip2VisionModel`` as it is (never vendored, never patched). SigLIP2
encodes each frame as its own sequence and resizes its 16x16 positional table bilinearly to that frame's
``(h, w)`` (the paper's "256 -> 2048" extension is this per-frame resize; 2048 is the LLM-token cap of
``token_budget``). Frames of different lengths must be padded to share a batch; ``plan_buckets`` sorts the
frames by length and groups them so that padding stays under ``max_padding`` of each batch's slots and no
batch exceeds ``max_batch_tokens``. The default ``max_padding=0.0`` batches only frames of equal length (all
frames of a clip, clips of one size): no padding and no attention mask, which lets sdpa take its unmasked
kernels. Measured (``benchmarks/README.md``): on an H100 with a so400m-size encoder, 32 images in 4 sizes
take 0.15x the time of encoding each alone with equal-length buckets and 0.17x with up to 10% padding (the mask
costs more than the extra batching wins); 8 images of 8 sizes take 0.90x and 0.87x. Raise ``max_padding`` for
mixes of many distinct sizes on a GPU. Where there is padding, the attention mask hides it, so a clip's
features do not depend on what it was batched with.

Example::

    >>> tower = VisionTower(Siglip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
    ...                                          num_attention_heads=2, num_patches=16, patch_size=16))
    >>> clips = [torch.rand(1, 3, 64, 96), torch.rand(4, 3, 32, 32)]  # an image and a 4-frame video
    >>> feats = tower(torch.cat([patchify(c, 16) for c in clips]), [(1, 4, 6), (4, 2, 2)])
    >>> [tuple(f.shape) for f in feats]
    [(1, 24, 32), (4, 4, 32)]

Attention: ``attn_implementation`` is ``"sdpa"`` (default) or ``"eager"``; ``"flash_attention_2"`` is passed
to transformers when its SigLIP2 supports it (transformers 5.24's does not, and says so).

Frozen towers (the paper's stage 3 trains only TFF and the merger): ``tower.cache_features(store)`` keeps each
frame's features in ``store`` keyed by the frame's size and a SHA-1 digest of its patch values, and a frame met
again (the next epoch, a second variant over the same clips) is not encoded again. The cache is read and written
only while no tower parameter requires a gradient, so it is exact: a frozen tower gives the same features for the
same pixels (SigLIP2 has no dropout), and a trainable one always runs. ``train(..., TrainSettings(
cache_vision_features=True))`` turns it on for one run.

Command: ``python benchmarks/encoder_packing.py`` prints the padding waste and the time against encoding
each clip alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn
from transformers import Siglip2VisionConfig, Siglip2VisionModel

__all__ = ["VisionTower", "padding_fraction", "patchify", "plan_buckets"]

ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")


def patchify(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[F, C, H, W]`` frames -> ``[F*h*w, p*p*C]`` patches in SigLIP2-naflex's layout (h = H/p, w = W/p)."""
    if frames.dim() != 4:
        raise ValueError(f"frames must be [F, C, H, W], got {tuple(frames.shape)}")
    num_frames, channels, height, width = frames.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"frame size {height}x{width} is not a multiple of the patch size {patch_size}")
    rows, cols = height // patch_size, width // patch_size
    patches = frames.reshape(num_frames, channels, rows, patch_size, cols, patch_size)  # [F, C, h, p, w, p]
    patches = patches.permute(0, 2, 4, 3, 5, 1)  # [F, h, w, p, p, C]
    return patches.reshape(num_frames * rows * cols, patch_size * patch_size * channels)  # [F*h*w, p*p*C]


def plan_buckets(lengths: Sequence[int], *, max_padding: float = 0.0, max_batch_tokens: int = 32768) -> list[list[int]]:
    """Group sequences (indices into ``lengths``) into batches with little padding.

    Sequences are taken longest first; a sequence joins the open batch while the batch's padded slots
    (``len(batch) * longest``) stay within ``max_batch_tokens`` and its padding within ``max_padding`` of
    those slots, else it opens a new batch. Equal lengths never pad. Deterministic: ties keep input order.
    """
    if not 0.0 <= max_padding <= 1.0:
        raise ValueError(f"max_padding must be in [0, 1], got {max_padding}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    buckets: list[list[int]] = []
    real = 0
    for index in order:
        length = lengths[index]
        if buckets:
            bucket = buckets[-1]
            slots = lengths[bucket[0]] * (len(bucket) + 1)
            if slots <= max_batch_tokens and slots - (real + length) <= max_padding * slots:
                bucket.append(index)
                real += length
                continue
        buckets.append([index])
        real = length
    return buckets


def padding_fraction(lengths: Sequence[int], buckets: Sequence[Sequence[int]]) -> float:
    """Share of the batched slots that are padding for this bucketing (0.0 = no waste)."""
    slots = sum(lengths[bucket[0]] * len(bucket) for bucket in buckets if bucket)
    return 1.0 - sum(lengths) / slots if slots else 0.0


class VisionTower(nn.Module):
    """SigLIP2-naflex encoder over clips of different sizes; returns ``[F, h*w, D]`` per clip.

    Build it from a config (random weights) or wrap a loaded model with ``VisionTower.from_model``. The
    wrapped ``Siglip2VisionModel`` is ``self.encoder_model``; its pooling head is not used.
    """

    def __init__(
        self,
        config: Siglip2VisionConfig,
        *,
        attn_implementation: str = "sdpa",
        max_padding: float = 0.0,
        max_batch_tokens: int = 32768,
        encoder_model: Siglip2VisionModel | None = None,
    ) -> None:
        super().__init__()
        if attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {attn_implementation!r}")
        if encoder_model is None:
            config = Siglip2VisionConfig.from_dict({**config.to_dict(), "vision_use_head": False})
            encoder_model = Siglip2VisionModel(config)
        encoder_model.set_attn_implementation(attn_implementation)
        self.encoder_model = encoder_model
        self.max_padding = max_padding
        self.max_batch_tokens = max_batch_tokens
        self.feature_store: dict | None = None

    def cache_features(self, store: dict | None) -> None:
        """Keep frame features in ``store`` while the tower is frozen (see the module docstring); ``None`` stops."""
        self.feature_store = store

    def _frame_key(self, sequence: torch.Tensor, shape: tuple[int, int]) -> tuple:
        values = sequence.detach().to("cpu", torch.float32).contiguous().numpy()
        # SHA-1 as a content digest (not for security): 1.8 GB/s here with the CPU's SHA extensions, 3x BLAKE2b
        digest = hashlib.sha1(memoryview(values).cast("B"), usedforsecurity=False).digest()
        return (*shape, str(sequence.dtype), digest)

    @classmethod
    def from_model(cls, model: Siglip2VisionModel, **kwargs: object) -> VisionTower:
        """Wrap an existing (e.g. pretrained) ``Siglip2VisionModel``; keyword arguments as for ``__init__``."""
        kwargs.setdefault("attn_implementation", model.config._attn_implementation or "sdpa")
        return cls(model.config, encoder_model=model, **kwargs)

    @property
    def config(self) -> Siglip2VisionConfig:
        """The wrapped encoder's config."""
        return self.encoder_model.config

    @property
    def patch_dim(self) -> int:
        """Width of one flattened patch, ``patch_size**2 * num_channels``."""
        return self.config.patch_size**2 * self.config.num_channels

    def forward(self, patches: torch.Tensor, grids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """``patches: [sum F*h*w, p*p*C]`` + grids ``[(F, h, w), ...]`` -> ``[F, h*w, D]`` per clip."""
        grids = [tuple(int(v) for v in grid) for grid in grids]
        if any(len(g) != 3 or min(g) < 1 for g in grids):
            raise ValueError(f"grids must be (frames, height, width) triples of positive ints, got {grids}")
        expected = sum(f * h * w for f, h, w in grids)
        if patches.dim() != 2 or patches.shape != (expected, self.patch_dim):
            raise ValueError(
                f"patches {tuple(patches.shape)} do not match the grids: expected ({expected}, {self.patch_dim}) "
                f"for {grids}"
            )
        # One sequence per frame: (clip index, height, width) and its patch rows.
        shapes = [(h, w) for f, h, w in grids for _ in range(f)]
        lengths = [h * w for h, w in shapes]
        sequences = torch.split(patches, lengths)  # each [h*w, p*p*C]
        outputs: list[torch.Tensor | None] = [None] * len(sequences)
        store = self.feature_store
        if store is not None and any(p.requires_grad for p in self.parameters()):
            store = None  # a trainable tower's features change with every step
        keys: list[tuple] = []
        if store is not None:
            keys = [self._frame_key(seq, shape) for seq, shape in zip(sequences, shapes, strict=True)]
            for index, key in enumerate(keys):
                outputs[index] = store.get(key)
        todo = [i for i, output in enumerate(outputs) if output is None]
        todo_lengths = [lengths[i] for i in todo]
        for bucket in plan_buckets(todo_lengths, max_padding=self.max_padding, max_batch_tokens=self.max_batch_tokens):
            frames = [todo[i] for i in bucket]
            hidden = self._encode_batch([sequences[i] for i in frames], [shapes[i] for i in frames])
            for row, index in enumerate(frames):
                outputs[index] = hidden[row, : lengths[index]]  # [h*w, D]
                if store is not None:
                    store[keys[index]] = outputs[index].detach()
        features, start = [], 0
        for frames, _, _ in grids:
            features.append(torch.stack(outputs[start : start + frames]))  # [F, h*w, D]
            start += frames
        return features

    def _encode_batch(self, sequences: list[torch.Tensor], shapes: list[tuple[int, int]]) -> torch.Tensor:
        """Encode frames of possibly different lengths as one padded batch: ``[b, L_max, D]``."""
        longest = max(seq.shape[0] for seq in sequences)
        device = sequences[0].device
        if all(seq.shape[0] == longest for seq in sequences):
            pixel_values = torch.stack(sequences)  # [b, L, p*p*C]
            mask = torch.ones(len(sequences), longest, dtype=torch.long, device=device)
        else:
            pixel_values = sequences[0].new_zeros(len(sequences), longest, self.patch_dim)  # [b, L_max, p*p*C]
            mask = torch.zeros(len(sequences), longest, dtype=torch.long, device=device)
            for row, seq in enumerate(sequences):
                pixel_values[row, : seq.shape[0]] = seq
                mask[row, : seq.shape[0]] = 1
        spatial_shapes = torch.tensor(shapes, dtype=torch.long, device=device)  # [b, 2]
        output = self.encoder_model(pixel_values=pixel_values, pixel_attention_mask=mask, spatial_shapes=spatial_shapes)
        return output.last_hidden_state
