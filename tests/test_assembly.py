"""Assembly from released-format checkpoints (tiny ones saved here): SigLIP2 + Qwen3, SigLIP2 + Gemma3."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
    Siglip2Model,
    Siglip2VisionModel,
    SiglipVisionConfig,
)

from siglip2_checkpoint import SIGLIP2, save_siglip2
from tempflex.assembly import assemble
from tempflex.processing import TempFlexProcessor
from tempflex.tokenization import build_tiny_tokenizer

GEMMA_SPECIALS = [
    "<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>",
    "<image_soft_token>",
]  # fmt: skip


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory):
    return save_siglip2(tmp_path_factory.mktemp("siglip2"))  # the full dual-tower checkpoint, as published


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("qwen3")
    config = Qwen3Config(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, max_position_embeddings=4096,
    )  # fmt: skip
    Qwen3ForCausalLM(config).save_pretrained(path)
    build_tiny_tokenizer().save_pretrained(path)
    return path


def gemma_style_tokenizer() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=GEMMA_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )  # fmt: skip
    tokenizer.train_from_iterator(["What is in the image? A red square on a blue background."] * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


@pytest.fixture(scope="module")
def gemma3_dir(tmp_path_factory):
    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("gemma3")
    tokenizer = gemma_style_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GEMMA_SPECIALS}
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer) + 8, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=16, query_pre_attn_scalar=16,
        pad_token_id=ids["<pad>"], bos_token_id=ids["<bos>"], eos_token_id=ids["<eos>"],
    )  # fmt: skip
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"], image_token_index=ids["<image_soft_token>"],
    )  # fmt: skip
    Gemma3ForConditionalGeneration(config).save_pretrained(path)  # the multimodal layout of google/gemma-3-4b-it
    tokenizer.save_pretrained(path)
    return path


def test_siglip2_tower_is_taken_from_the_full_checkpoint(siglip2_dir, qwen3_dir):
    model, _ = assemble(siglip2_dir, qwen3_dir)
    reference = Siglip2Model.from_pretrained(siglip2_dir).vision_model.state_dict()
    ours = model.vision_tower.encoder_model.state_dict()
    assert set(ours) == {k for k in reference if not k.startswith("head.")}
    for name, tensor in ours.items():
        assert torch.equal(tensor, reference[name]), name


def test_qwen3_assembly_keeps_the_llm_and_runs(siglip2_dir, qwen3_dir):
    model, processor = assemble(siglip2_dir, qwen3_dir)
    model.eval()
    assert isinstance(processor, TempFlexProcessor) and processor.image_token == "<|image_pad|>"
    llm = Qwen3ForCausalLM.from_pretrained(qwen3_dir).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, llm(input_ids=ids).logits)
    for layer in model.temporal_fusion.layers:  # fresh TFF: the identity
        assert layer.norm.weight.abs().sum() == 0
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": picture}, {"type": "text", "text": "What?"}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    )  # fmt: skip
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 3


def test_gemma3_assembly_loads_every_text_weight(siglip2_dir, gemma3_dir):
    model, processor = assemble(siglip2_dir, gemma3_dir)
    model.eval()
    reference = Gemma3ForConditionalGeneration.from_pretrained(gemma3_dir).eval()
    ids = torch.tensor([[2, 10, 11, 12, 13, 14]])
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, reference(input_ids=ids).logits, atol=1e-5)
    tokenizer = processor.tokenizer
    assert processor.video_token == "<video_soft_token>"
    assert model.config.video_token_id == tokenizer.convert_tokens_to_ids("<video_soft_token>")
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image_soft_token>")
    frames = [Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": "What?"}]},
    ]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<bos><start_of_turn>user\nBe brief.\n\n<start_of_image><video_soft_token>")
    assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n")
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert int((inputs["input_ids"] == tokenizer.convert_tokens_to_ids("<bos>")).sum()) == 1
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()


def test_unsupported_llm_is_rejected_by_model_type(siglip2_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'llama' is not supported"):
        assemble(siglip2_dir, tmp_path)


def test_the_dropped_text_tower_is_not_reported_but_a_stray_key_is(siglip2_dir, tmp_path, capfd, caplog):
    from safetensors.torch import load_file, save_file

    from tempflex.assembly import load_vision_tower

    load_vision_tower(siglip2_dir)
    vision_only = tmp_path / "vision-only"  # a Siglip2VisionModel checkpoint, pooling head included
    Siglip2VisionModel(SIGLIP2.vision_config).save_pretrained(vision_only)
    load_vision_tower(vision_only)
    quiet = capfd.readouterr().err + caplog.text
    assert "text_model" not in quiet and "UNEXPECTED" not in quiet
    stray = tmp_path / "stray"
    shutil.copytree(siglip2_dir, stray)
    weights = load_file(stray / "model.safetensors")
    weights["vision_model.encoder.stray.weight"] = torch.zeros(2)
    save_file(weights, stray / "model.safetensors", metadata={"format": "pt"})
    load_vision_tower(stray)
    report = capfd.readouterr().err + caplog.text
    assert "UNEXPECTED" in report and "vision_model.encoder.stray.weight" in report
    assert "text_model" not in report  # only the real problem
