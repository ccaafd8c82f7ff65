"""The 2x2 pixel unshuffle against an independent loop reference, and the merger's shapes and errors."""

import pytest
import torch

from tempflex.merger import PatchMerger, pixel_unshuffle_2x2


def reference_unshuffle(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Token (i, j) = concat(patch(2i, 2j), patch(2i, 2j+1), patch(2i+1, 2j), patch(2i+1, 2j+1))."""
    grid = [[x[r * width + c] for c in range(width)] for r in range(height)]
    tokens = []
    for i in range(height // 2):
        for j in range(width // 2):
            tl, tr = grid[2 * i][2 * j], grid[2 * i][2 * j + 1]
            bl, br = grid[2 * i + 1][2 * j], grid[2 * i + 1][2 * j + 1]
            tokens.append(torch.cat([tl, tr, bl, br]))
    return torch.stack(tokens)


@pytest.mark.parametrize(("height", "width"), [(2, 2), (2, 6), (6, 2), (4, 10), (14, 8)])
def test_unshuffle_matches_reference(height, width):
    x = torch.randn(height * width, 5)
    assert torch.equal(pixel_unshuffle_2x2(x, height, width), reference_unshuffle(x, height, width))


def test_unshuffle_takes_a_true_2x2_block_not_four_consecutive_patches():
    # 4 rows x 4 columns numbered in raster order: the first token must hold 0, 1, 4, 5 (not 0, 1, 2, 3).
    x = torch.arange(16.0).reshape(16, 1)
    assert pixel_unshuffle_2x2(x, 4, 4)[:, :].tolist() == [
        [0.0, 1.0, 4.0, 5.0],
        [2.0, 3.0, 6.0, 7.0],
        [8.0, 9.0, 12.0, 13.0],
        [10.0, 11.0, 14.0, 15.0],
    ]


def test_unshuffle_keeps_leading_dims():
    x = torch.randn(3, 2, 4 * 6, 7)
    out = pixel_unshuffle_2x2(x, 4, 6)
    assert out.shape == (3, 2, 6, 28)
    assert torch.equal(out[2, 1], reference_unshuffle(x[2, 1], 4, 6))


def test_unshuffle_errors_name_the_grid():
    with pytest.raises(ValueError, match="3x4"):
        pixel_unshuffle_2x2(torch.randn(12, 2), 3, 4)
    with pytest.raises(ValueError, match="4x4"):
        pixel_unshuffle_2x2(torch.randn(15, 2), 4, 4)


def test_patch_merger_is_norm_unshuffle_mlp():
    torch.manual_seed(0)
    module = PatchMerger(8, 20)
    features = torch.randn(3, 4 * 6, 8)  # 3 frames of a 4x6 grid
    out = module(features, 4, 6)
    assert out.shape == (3, 6, 20)
    normed = torch.nn.functional.layer_norm(features, (8,), module.norm.weight, module.norm.bias, module.norm.eps)
    merged = torch.stack([reference_unshuffle(frame, 4, 6) for frame in normed])
    expected = module.proj_out(torch.nn.functional.gelu(module.proj_in(merged)))
    assert torch.allclose(out, expected, atol=1e-6)
