"""Token accounting: the paper's golden table, the resize rule's invariants, the baselines and the CLI."""

import itertools
import random

import pytest

from tempflex.cli import main
from tempflex.token_budget import (
    baseline_image_tokens,
    fit_image,
    fit_video,
    num_image_tokens,
    num_video_tokens,
    tiled_grid,
)

# (height, width) -> LLM tokens, from the paper (section 4.3, Figure 3 right; Appendix Table 6).
GOLDEN_TEMPFLEX = {
    (768, 768): 576,
    (1448, 1448): 2025,  # the paper rounds to 2048, the cap
    (720, 1280): 880,  # 1280x720 (w x h), paper "~900"
    (1152, 1152): 1296,
    (32, 32): 4,
}


@pytest.mark.parametrize(("size", "tokens"), GOLDEN_TEMPFLEX.items())
def test_golden_tempflex_tokens(size, tokens):
    assert num_image_tokens(*size) == tokens


def test_golden_baselines():
    assert baseline_image_tokens(1152, 1152, "tiled") == 7290  # 3x3 tiles + 1 global view, 729 each
    assert baseline_image_tokens(1152, 1152, "fixed") == 729
    assert baseline_image_tokens(32, 32, "fixed") == 729
    assert tiled_grid(1152, 1152) == (3, 3)


def test_resized_sizes_for_golden_and_odd_inputs():
    assert fit_image(720, 1280) == (704, 1280)  # 22.5 cells rounds down on a tie
    assert fit_image(721, 1280) == (736, 1280)
    assert fit_image(32, 32) == (64, 64)  # floor of 4 tokens
    assert fit_image(1, 1) == (64, 64)
    assert fit_image(213, 167) == (224, 160)
    assert fit_image(500, 30) == (512, 32)
    assert fit_image(5000, 5000) == (1440, 1440)  # scaled down to the cap


def test_video_tokens_pool_to_max_frames_and_use_per_frame_budget():
    per_frame = num_image_tokens(720, 1280, max_tokens=256)
    assert per_frame == 12 * 21
    assert num_video_tokens(64, 720, 1280) == 32 * per_frame
    assert num_video_tokens(7, 720, 1280) == 7 * per_frame
    assert num_video_tokens(64, 720, 1280, max_frames_to_llm=None) == 64 * per_frame
    assert num_video_tokens(1, 100, 100) == num_image_tokens(100, 100, max_tokens=256)


def test_extreme_aspect_ratio_is_rejected_with_the_size_named():
    with pytest.raises(ValueError, match="20x100000"):
        fit_image(20, 100000)
    with pytest.raises(ValueError, match="100000x20"):
        num_image_tokens(100000, 20)


@pytest.mark.parametrize(("height", "width"), [(0, 10), (10, -1), (3.5, 10)])
def test_bad_sizes_are_rejected(height, width):
    with pytest.raises(ValueError, match="image size"):
        fit_image(height, width)


def test_bad_budgets_and_frames_are_rejected():
    with pytest.raises(ValueError, match="min_tokens"):
        fit_image(100, 100, min_tokens=10, max_tokens=4)
    with pytest.raises(ValueError, match="num_frames"):
        num_video_tokens(0, 100, 100)
    with pytest.raises(ValueError, match="strategy"):
        baseline_image_tokens(100, 100, "mosaic")


def _sizes():
    rng = random.Random(0)
    edges = [1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 100, 719, 720, 721, 1447, 1448, 2048, 4000, 9999]
    sizes = list(itertools.product(edges, edges))
    sizes += [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(2000)]
    return [(h, w) for h, w in sizes if max(h, w) / min(h, w) <= 200]


@pytest.mark.parametrize(("max_tokens", "min_tokens"), [(2048, 4), (256, 4), (4, 4), (64, 1), (1, 1)])
def test_fit_image_invariants_over_many_sizes(max_tokens, min_tokens):
    for height, width in _sizes():
        rh, rw = fit_image(height, width, max_tokens=max_tokens, min_tokens=min_tokens)
        assert rh > 0 and rw > 0 and rh % 32 == 0 and rw % 32 == 0, (height, width, rh, rw)
        tokens = (rh // 32) * (rw // 32)
        assert min_tokens <= tokens <= max_tokens, (height, width, rh, rw)


def test_aspect_is_kept_within_one_cell():
    """Unless a side is clamped, one scale s puts each side within one 32-px cell of (side * s)."""
    for height, width in _sizes():
        rh, rw = fit_image(height, width)
        rows, cols = rh // 32, rw // 32
        if rows == 1 or cols == 1:
            continue
        low = max((rows - 1) * 32 / height, (cols - 1) * 32 / width)
        high = min((rows + 1) * 32 / height, (cols + 1) * 32 / width)
        assert low <= high, (height, width, rh, rw)


def test_cli_table(capsys):
    assert main(["tokens", "--height", "1152", "--width", "1152"]) == 0
    out = capsys.readouterr().out
    assert "7290" in out and "1296" in out and "729" in out
    assert "82.2% fewer tokens than tiled" in out


def test_cli_reports_bad_input(capsys):
    assert main(["tokens", "--height", "20", "--width", "100000"]) == 2
    assert "20x100000" in capsys.readouterr().err


def test_cli_plot_writes_png(tmp_path, capsys):
    path = tmp_path / "tokens.png"
    assert main(["tokens", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_video_lowers_resolution_before_time():
    assert fit_video(64, 720, 1280, max_video_tokens=None) == (64, 256)
    assert fit_video(64, 720, 1280, max_video_tokens=32 * 252) == (64, 256)  # fits as it is
    frames, budget = fit_video(64, 720, 1280, max_video_tokens=4096)
    assert (frames, budget) == (64, 128) and 32 * num_image_tokens(720, 1280, max_tokens=budget) <= 4096
    frames, budget = fit_video(64, 720, 1280, max_video_tokens=256)
    assert budget == 16 and min(frames, 32) * num_image_tokens(720, 1280, max_tokens=16) <= 256
