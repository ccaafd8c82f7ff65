"""TempFlexForConditionalGeneration on the tiny preset: token accounting, loss, generate, batching, save/load."""

import pytest
import torch
import torch.nn.functional as F

from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.token_budget import fit_image, num_image_tokens, num_video_tokens
from tempflex.vision import patchify

CONFIG = TempFlexConfig.from_preset("tiny")
IMAGE, VIDEO, START, END = (
    CONFIG.image_token_id,
    CONFIG.video_token_id,
    CONFIG.vision_start_token_id,
    CONFIG.vision_end_token_id,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG).eval()
    with torch.no_grad():  # non-zero TFF output scale, so that TFF really acts in these tests
        for layer in model.temporal_fusion.layers:
            layer.norm.weight.normal_()
            layer.context_scale.normal_()
    return model


def clip(frames: int, height: int, width: int, *, max_tokens: int, seed: int = 0):
    """A random clip resized as the budget says: patches [F*h*w, 768] and its (F, h, w) grid."""
    rh, rw = fit_image(height, width, max_tokens=max_tokens)
    pixels = torch.rand(frames, 3, rh, rw, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return patchify(pixels, 16), [frames, rh // 16, rw // 16]


def prompt(placeholder: int, count: int, text=(40, 41, 42)) -> list[int]:
    return [1, 50, START, *([placeholder] * count), END, *text, 2]


@pytest.mark.parametrize("size", [(100, 100), (300, 100), (500, 30), (213, 167)])
def test_image_features_match_the_budget(model, size):
    patches, grid = clip(1, *size, max_tokens=CONFIG.max_image_tokens)
    with torch.no_grad():
        features = model.get_image_features(patches, torch.tensor([grid]))
    assert features.shape == (num_image_tokens(*size), CONFIG.text_config.hidden_size)


@pytest.mark.parametrize("frames", [1, 7, 64])
def test_video_features_match_the_budget(model, frames):
    patches, grid = clip(frames, 48, 80, max_tokens=CONFIG.max_tokens_per_frame)
    with torch.no_grad():
        features = model.get_video_features(patches, torch.tensor([grid]))
    assert features.shape[0] == num_video_tokens(frames, 48, 80)


def test_placeholder_mismatch_names_both_counts(model):
    patches, grid = clip(1, 64, 96, max_tokens=2048)
    ids = torch.tensor([prompt(IMAGE, 5)])  # the image has 6 tokens
    with pytest.raises(ValueError, match=r"5 placeholder tokens.*6 image feature tokens"):
        model(input_ids=ids, pixel_values=patches, image_grid_thw=torch.tensor([grid]))


def test_loss_covers_only_supervised_tokens(model):
    patches, grid = clip(1, 64, 96, max_tokens=2048)
    ids = torch.tensor([prompt(IMAGE, 6, text=(40, 41, 42, 43))])
    labels = torch.full_like(ids, -100)
    labels[0, -3:] = ids[0, -3:]  # an "assistant answer" of 3 tokens
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=patches, image_grid_thw=torch.tensor([grid]), labels=labels)
    logits = out.logits[0, :-1].double()
    expected = F.cross_entropy(logits[-3:], ids[0, -3:])
    assert torch.allclose(out.loss.double(), expected, atol=1e-5)


def test_greedy_generate_with_cache_equals_without(model):
    patches, grid = clip(4, 64, 64, max_tokens=256)
    ids = torch.tensor([prompt(VIDEO, num_video_tokens(4, 64, 64))])
    inputs = dict(input_ids=ids, pixel_values_videos=patches, video_grid_thw=torch.tensor([grid]))
    cached = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=True)
    uncached = model.generate(**inputs, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_batched_left_padded_generation_equals_one_by_one(model):
    first, first_grid = clip(1, 64, 96, max_tokens=2048, seed=1)
    second, second_grid = clip(1, 128, 64, max_tokens=2048, seed=2)
    a, b = prompt(IMAGE, 6), prompt(IMAGE, 8, text=(44, 45))
    width = max(len(a), len(b))
    ids = torch.tensor([[0] * (width - len(a)) + a, [0] * (width - len(b)) + b])
    mask = torch.tensor([[0] * (width - len(a)) + [1] * len(a), [0] * (width - len(b)) + [1] * len(b)])
    batched = model.generate(
        input_ids=ids,
        attention_mask=mask,
        pixel_values=torch.cat([first, second]),
        image_grid_thw=torch.tensor([first_grid, second_grid]),
        max_new_tokens=5,
        do_sample=False,
        pad_token_id=0,
    )
    for row, (tokens, patches, grid) in enumerate([(a, first, first_grid), (b, second, second_grid)]):
        alone = model.generate(
            input_ids=torch.tensor([tokens]),
            pixel_values=patches,
            image_grid_thw=torch.tensor([grid]),
            max_new_tokens=5,
            do_sample=False,
            pad_token_id=0,
        )
        assert batched[row, width:].tolist() == alone[0, len(tokens) :].tolist()


def test_image_and_video_samples_batched_equal_each_alone(model):
    image, image_grid = clip(1, 64, 96, max_tokens=2048, seed=3)
    video, video_grid = clip(5, 32, 64, max_tokens=256, seed=4)
    a, b = prompt(IMAGE, 6), prompt(VIDEO, num_video_tokens(5, 32, 64))
    width = max(len(a), len(b))
    ids = torch.tensor([a + [0] * (width - len(a)), b + [0] * (width - len(b))])  # right padding for a forward
    mask = (torch.arange(width)[None] < torch.tensor([[len(a)], [len(b)]])).long()
    with torch.no_grad():
        both = model(
            input_ids=ids,
            attention_mask=mask,
            pixel_values=image,
            image_grid_thw=torch.tensor([image_grid]),
            pixel_values_videos=video,
            video_grid_thw=torch.tensor([video_grid]),
        ).logits
        alone_a = model(input_ids=torch.tensor([a]), pixel_values=image, image_grid_thw=torch.tensor([image_grid]))
        alone_b = model(
            input_ids=torch.tensor([b]), pixel_values_videos=video, video_grid_thw=torch.tensor([video_grid])
        )
    assert torch.allclose(both[0, : len(a)], alone_a.logits[0], atol=1e-5)
    assert torch.allclose(both[1, : len(b)], alone_b.logits[0], atol=1e-5)


def test_tff_switches_change_what_runs(model):
    patches, grid = clip(1, 64, 64, max_tokens=2048)
    with torch.no_grad():
        fused = model.get_image_features(patches, torch.tensor([grid]))
        model.config.fuse_images = False
        try:
            unfused = model.get_image_features(patches, torch.tensor([grid]))
        finally:
            model.config.fuse_images = True
        features = model.vision_tower(patches, [grid])[0]
        expected = model.merger(features, grid[1], grid[2]).flatten(0, 1)
    assert torch.allclose(unfused, expected, atol=1e-6) and not torch.allclose(fused, unfused, atol=1e-3)


def test_fresh_model_has_identity_tff():
    model = TempFlexForConditionalGeneration(CONFIG)
    for layer in model.temporal_fusion.layers:
        assert layer.norm.weight.abs().sum() == 0 and layer.norm.bias.abs().sum() == 0


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG).train()
    with torch.no_grad():
        for layer in model.temporal_fusion.layers:
            layer.norm.weight.fill_(1.0)
    patches, grid = clip(3, 32, 64, max_tokens=256)
    ids = torch.tensor([prompt(VIDEO, num_video_tokens(3, 32, 64))])
    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable()
        model.zero_grad()
        model(
            input_ids=ids, pixel_values_videos=patches, video_grid_thw=torch.tensor([grid]), labels=ids
        ).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert model.temporal_fusion.gradient_checkpointing
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_save_and_load_give_identical_logits(model, tmp_path):
    patches, grid = clip(1, 64, 96, max_tokens=2048)
    ids = torch.tensor([prompt(IMAGE, 6)])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob("*.bin"))
    loaded = TempFlexForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        before = model(input_ids=ids, pixel_values=patches, image_grid_thw=torch.tensor([grid])).logits
        after = loaded(input_ids=ids, pixel_values=patches, image_grid_thw=torch.tensor([grid])).logits
    for name, tensor in model.state_dict().items():  # every weight back exactly
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert torch.allclose(before, after, rtol=0, atol=1e-6)  # CPU kernels may reorder sums between runs


def test_generate_encodes_pixels_on_the_first_step_only(model):
    patches, grid = clip(2, 32, 64, max_tokens=256)
    ids = torch.tensor([prompt(VIDEO, num_video_tokens(2, 32, 64))])
    calls = []
    handle = model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    try:
        model.generate(
            input_ids=ids,
            pixel_values_videos=patches,
            video_grid_thw=torch.tensor([grid]),
            max_new_tokens=4,
            do_sample=False,
        )
    finally:
        handle.remove()
    assert len(calls) == 1
