"""The SigLIP2-naflex wrapper: patch layout, bucketing, and features independent of batch company."""

import pytest
import torch
from transformers import Siglip2VisionConfig, Siglip2VisionModel

from tempflex.vision import VisionTower, padding_fraction, patchify, plan_buckets


def tiny_config(**overrides) -> Siglip2VisionConfig:
    values = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_patches=16, patch_size=16
    )
    values.update(overrides)
    return Siglip2VisionConfig(**values)


def test_patchify_matches_siglip2_layout():
    frames = torch.randn(2, 3, 32, 48)
    patches = patchify(frames, 16)
    assert patches.shape == (2 * 2 * 3, 16 * 16 * 3)
    # frame 1, patch row 1, patch col 2 -> row index 1*6 + 1*3 + 2; flattened as (py, px, channel)
    expected = frames[1, :, 16:32, 32:48].permute(1, 2, 0).reshape(-1)
    assert torch.equal(patches[6 + 3 + 2], expected)


def test_patchify_rejects_sizes_off_the_patch_grid():
    with pytest.raises(ValueError, match="40x48"):
        patchify(torch.randn(1, 3, 40, 48), 16)


def test_plan_buckets_groups_equal_lengths_and_bounds_padding():
    lengths = [16, 16, 16, 100, 90, 4, 16]
    buckets = plan_buckets(lengths, max_padding=0.1)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    assert [0, 1, 2, 6] in buckets  # equal lengths share one batch
    for bucket in buckets:
        slots = lengths[bucket[0]] * len(bucket)
        assert slots - sum(lengths[i] for i in bucket) <= 0.1 * slots
    assert padding_fraction(lengths, buckets) <= 0.1
    assert padding_fraction([5, 5], [[0, 1]]) == 0.0
    assert plan_buckets([10, 10, 10], max_batch_tokens=20) == [[0, 1], [2]]


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_clip_features_do_not_depend_on_batch_company(attn_implementation):
    torch.manual_seed(0)
    tower = VisionTower(tiny_config(), attn_implementation=attn_implementation, max_padding=1.0).eval()
    clips = [
        torch.randn(1, 3, 64, 96),
        torch.randn(3, 3, 32, 32),
        torch.randn(1, 3, 128, 80),
        torch.randn(2, 3, 48, 64),
    ]
    grids = [(c.shape[0], c.shape[2] // 16, c.shape[3] // 16) for c in clips]
    patches = torch.cat([patchify(c, 16) for c in clips])
    with torch.no_grad():
        together = tower(patches, grids)
        for clip, grid, batched in zip(clips, grids, together, strict=True):
            alone = tower(patchify(clip, 16), [grid])[0]
            assert batched.shape == (grid[0], grid[1] * grid[2], 32)
            assert torch.allclose(batched, alone, atol=1e-5), grid


def test_matches_siglip2_called_directly_on_one_image():
    torch.manual_seed(0)
    model = Siglip2VisionModel(tiny_config(vision_use_head=False)).eval()
    tower = VisionTower.from_model(model)
    image = torch.randn(1, 3, 48, 80)
    patches = patchify(image, 16)
    with torch.no_grad():
        ours = tower(patches, [(1, 3, 5)])[0]
        direct = model(
            pixel_values=patches[None],
            pixel_attention_mask=torch.ones(1, 15, dtype=torch.long),
            spatial_shapes=torch.tensor([[3, 5]]),
        ).last_hidden_state
    assert torch.equal(ours, direct)


def test_sdpa_and_eager_agree():
    torch.manual_seed(0)
    sdpa = VisionTower(tiny_config()).eval()
    eager = VisionTower(tiny_config(), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    patches = torch.cat([patchify(torch.randn(1, 3, 32, 64), 16), patchify(torch.randn(2, 3, 64, 32), 16)])
    with torch.no_grad():
        for a, b in zip(sdpa(patches, [(1, 2, 4), (2, 4, 2)]), eager(patches, [(1, 2, 4), (2, 4, 2)]), strict=True):
            assert torch.allclose(a, b, atol=1e-5)


def test_gradients_flow_to_the_encoder():
    tower = VisionTower(tiny_config())
    patches = patchify(torch.randn(2, 3, 32, 32), 16)
    weight = torch.randn(32)
    sum(
        (f * weight).sum() for f in tower(patches, [(1, 2, 2), (1, 2, 2)])
    ).backward()  # a plain sum is flat after LayerNorm
    assert tower.encoder_model.embeddings.patch_embedding.weight.grad.abs().sum() > 0


def test_errors_name_what_is_wrong():
    tower = VisionTower(tiny_config())
    with pytest.raises(ValueError, match=r"expected \(8, 768\)"):
        tower(torch.randn(7, 768), [(2, 2, 2)])
    with pytest.raises(ValueError, match="triples"):
        tower(torch.randn(4, 768), [(0, 2, 2)])
    with pytest.raises(ValueError, match="attn_implementation"):
        VisionTower(tiny_config(), attn_implementation="flex")
    with pytest.raises(ValueError, match="Flash Attention 2"):  # transformers' own word, until its SigLIP2 has it
        VisionTower(tiny_config(), attn_implementation="flash_attention_2")


def test_a_frozen_tower_encodes_each_frame_once_with_a_feature_store():
    torch.manual_seed(0)
    tower = VisionTower(tiny_config())
    calls = []
    tower.encoder_model.register_forward_hook(lambda module, args, kwargs_or_out: calls.append(1))
    clips = [torch.rand(3, 3, 32, 48), torch.rand(1, 3, 64, 32)]
    patches, grids = torch.cat([patchify(c, 16) for c in clips]), [(3, 2, 3), (1, 4, 2)]
    plain = tower(patches, grids)
    store: dict = {}
    tower.cache_features(store)
    tower(patches, grids)  # trainable: the store is neither read nor written
    assert not store
    tower.requires_grad_(False)
    first = tower(patches, grids)
    calls.clear()
    again = tower(patches, grids)
    assert not calls and len(store) == 4  # four frames, none encoded again
    for a, b, c in zip(plain, first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(b, c)
    changed = patches.clone()
    changed[0, 0] += 1  # one value of the first frame: only that frame is encoded anew
    tower(changed, grids)
    assert len(calls) == 1 and len(store) == 5
