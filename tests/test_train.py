"""Training on the tiny preset: stage parameter sets, loss falls, packing == padding, data loading."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from tempflex import TempFlexConfig, TempFlexForConditionalGeneration, TempFlexProcessor
from tempflex.tokenization import build_tiny_tokenizer
from tempflex.train import (
    PackingCollator,
    PaddingCollator,
    SupervisedDataset,
    TrainSettings,
    apply_stage,
    load_mixture,
    load_stage,
    parameter_groups,
    to_messages,
    train,
)
from tempflex.train.run import load_records
from video_files import encode_video

CONFIG = TempFlexConfig.from_preset("tiny")


def settings(output_dir, **options):
    """Run settings of these tests: one micro-batch per step (not the recipe's global batch of 512)."""
    return TrainSettings(output_dir, gradient_accumulation_steps=1, **options)


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


@pytest.fixture(scope="module")
def processor():
    return TempFlexProcessor.for_model(CONFIG, build_tiny_tokenizer())


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    """12 colour images, 2 videos, 1 text-only record and 1 record whose image is missing."""
    folder = tmp_path_factory.mktemp("data")
    records = []
    for index in range(12):
        name = list(COLOURS)[index % 3]
        Image.new("RGB", (64, 96), COLOURS[name]).save(folder / f"{index}.png")
        records.append({
            "id": f"img{index}",
            "image": f"{index}.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat color is the image?"},
                {"from": "gpt", "value": f"It is {name}."},
            ],
        })  # fmt: skip
    for index in range(2):
        encode_video(folder / f"v{index}.mp4", num_frames=12, fps=4)
        records.append({
            "id": f"vid{index}",
            "video": f"v{index}.mp4",
            "conversations": [{"from": "human", "value": "What happens?"}, {"from": "gpt", "value": "Blocks flash."}],
        })  # fmt: skip
    records.append(
        {"id": "text", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello."}]}
    )
    records.append({
        "id": "broken",
        "image": "missing.png",
        "conversations": [{"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "Nothing."}],
    })  # fmt: skip
    path = folder / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    return path


def test_llava_records_become_messages(tmp_path):
    record = {
        "id": "x",
        "image": ["a.png", "b.png"],
        "conversations": [
            {"from": "human", "value": "<image>\nCompare with <image> please."},
            {"from": "gpt", "value": "Same."},
        ],
    }
    messages = to_messages(record, tmp_path)
    assert [p["type"] for p in messages[0]["content"]] == ["image", "text", "image", "text"]
    assert messages[0]["content"][0]["image"] == str(tmp_path / "a.png") and messages[1]["role"] == "assistant"
    untagged = {
        "video": "v.mp4",
        "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A."}],
    }
    assert to_messages(untagged, tmp_path)[0]["content"][0] == {"type": "video", "video": str(tmp_path / "v.mp4")}
    with pytest.raises(ValueError, match="more <image> tags than image files"):
        to_messages({"id": "y", "conversations": [{"from": "human", "value": "<image>"}]}, tmp_path)


def test_mixture_sampling(dataset_file, tmp_path):
    mixture = tmp_path / "mix.yaml"
    mixture.write_text(
        f"datasets:\n  - json_path: {dataset_file}\n    sampling: 'first:3'\n"
        f"  - json_path: {dataset_file}\n    sampling: 'random:50%'\n"
    )
    pairs = load_mixture(mixture, seed=0)
    assert [r["id"] for r, _ in pairs[:3]] == ["img0", "img1", "img2"] and len(pairs) == 3 + 8
    assert pairs[0][1] == dataset_file.parent and load_mixture(mixture, seed=0) == pairs


def test_failed_media_is_skipped_and_counted(dataset_file, processor):
    dataset = SupervisedDataset(load_records(dataset_file), processor)
    samples = [dataset[i] for i in range(len(dataset))]
    assert samples[-1] is None and list(dataset.failures) == ["broken"]
    assert "missing.png" in dataset.failures["broken"]
    batch = PaddingCollator(processor.tokenizer.pad_token_id)(samples[-3:])
    assert batch["input_ids"].shape[0] == 2  # the text-only sample and a video sample; the broken one dropped


@pytest.mark.parametrize("stage_id", [1, "stage1_projector_only", 2, 3, 4])
def test_each_stage_trains_exactly_its_modules(processor, dataset_file, stage_id):
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG)
    stage = load_stage(stage_id)
    apply_stage(model, stage)
    optimizer = torch.optim.AdamW(parameter_groups(model, stage))
    assert {group["name"]: group["lr"] for group in optimizer.param_groups} == stage.trainable
    dataset = SupervisedDataset(load_records(dataset_file), processor)
    batch = PaddingCollator(processor.tokenizer.pad_token_id)([dataset[0], dataset[12]])  # an image and a video
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for _ in range(2):  # two steps: TFF's zero output scale only lets gradient into its paths after the first
        optimizer.zero_grad()
        model(**batch).loss.backward()
        optimizer.step()
    for name, parameter in model.named_parameters():
        module = name.split(".")[0]
        changed = not torch.equal(before[name], parameter.detach())
        if module not in stage.trainable:
            assert not changed and parameter.grad is None and parameter not in optimizer.state, name
    for module in stage.trainable:
        assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n.startswith(module + "."))
    assert model.config.use_temporal_fusion == stage.use_temporal_fusion


def test_packed_and_padded_give_the_same_per_sample_loss(processor, dataset_file):
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG).eval()
    with torch.no_grad():
        for layer in model.temporal_fusion.layers:
            layer.norm.weight.normal_()
    dataset = SupervisedDataset(load_records(dataset_file), processor)
    samples = [dataset[i] for i in (0, 12, 14, 1)]  # image, video, text-only, image
    padded = PaddingCollator(processor.tokenizer.pad_token_id)(samples)
    packed = PackingCollator(processor.tokenizer.pad_token_id, max_length=4096)(samples)
    assert packed["input_ids"].shape[0] == 1  # all four in one row

    def per_token_losses(batch):
        with torch.no_grad():
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        targets = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, reduction="none")
        return [row[targets[i] != -100] for i, row in enumerate(losses)]

    padded_losses = per_token_losses(padded)
    packed_losses = torch.split(per_token_losses(packed)[0], [len(x) for x in padded_losses])
    for unpacked, repacked in zip(padded_losses, packed_losses, strict=True):
        assert torch.allclose(unpacked, repacked, atol=1e-5)
    longest = max(s["input_ids"].shape[-1] for s in samples)
    rows = PackingCollator(processor.tokenizer.pad_token_id, max_length=longest)(samples)  # first fit: several rows
    one_row = PackingCollator(processor.tokenizer.pad_token_id, max_length=longest, one_row=True)(samples)
    assert rows["input_ids"].shape[0] > 1 and one_row["input_ids"].shape[0] == 1  # FlashAttention's layout
    for batch in (rows, one_row):  # first fit may reorder samples across rows: compare the sorted token losses
        flat = torch.cat(per_token_losses(batch)).sort().values
        assert torch.allclose(flat, torch.cat(padded_losses).sort().values, atol=1e-5)


def test_packing_rows_first_fit_never_cut():
    collator = PackingCollator(pad_token_id=0, max_length=10)
    assert collator.rows([4, 8, 5, 12, 1]) == [[0, 2, 4], [1], [3]]


def test_stage_training_lowers_the_loss_and_saves_a_loadable_model(processor, dataset_file, tmp_path):
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG)
    records = [pair for pair in load_records(dataset_file) if pair[0]["id"].startswith("img")]
    stage = dataclasses.replace(load_stage(2), trainable={"merger": 3e-3, "language_model": 3e-3})  # fast for a test
    run = settings(tmp_path / "run", max_steps=30, batch_size=4, packing=True)
    trainer = train(model, processor, stage, records, run)
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run" / "loss.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]
    assert len(losses) >= 20 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    loaded = TempFlexForConditionalGeneration.from_pretrained(tmp_path / "run")
    assert isinstance(loaded, TempFlexForConditionalGeneration) and trainer.state.global_step == 30
    assert TempFlexProcessor.from_pretrained(tmp_path / "run").chat_template == processor.chat_template


def test_cli_trains_a_stage_from_a_preset(dataset_file, tmp_path, capsys):
    from tempflex.cli import main

    output = tmp_path / "stage3"
    arguments = ["--stage", "3", "--model", "tiny", "--data", str(dataset_file), "--output", str(output)]
    code = main(["train", *arguments, "--max-steps", "8", "--batch-size", "2", "--packing", "--grad-accum", "1"])
    assert code == 0 and "8 steps" in capsys.readouterr().out
    assert (output / "model.safetensors").exists() and (output / "failures.json").exists()
    assert len((output / "loss.jsonl").read_text().splitlines()) >= 8
    assert main(["plot-loss", str(output)]) == 0
    assert (output / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_lora_trains_only_the_adapters_and_merges_into_a_plain_model(processor, dataset_file, tmp_path):
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    stage = dataclasses.replace(load_stage(2), trainable={"merger": 1e-3, "language_model": 1e-2})
    records = [pair for pair in load_records(dataset_file) if pair[0]["id"].startswith("img")]
    apply_stage(model, stage)
    from tempflex.train.lora import apply_lora

    apply_lora(model, r=4)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("merger.") or ".lora_" in n for n in trainable) and any(".lora_" in n for n in trainable)
    torch.manual_seed(0)
    model = TempFlexForConditionalGeneration(CONFIG)  # the same initial weights, now through train(..., lora=...)
    train(model, processor, stage, records, settings(tmp_path / "lora", max_steps=3, batch_size=2, lora={"r": 4}))
    after = dict(model.named_parameters())
    assert set(after) == set(before)  # merged: no adapter parameters remain
    assert torch.equal(after["vision_tower.encoder_model.embeddings.patch_embedding.weight"], before[
        "vision_tower.encoder_model.embeddings.patch_embedding.weight"
    ])  # fmt: skip
    changed = [n for n in before if n.startswith("language_model.") and not torch.equal(before[n], after[n])]
    assert changed and all(n.endswith("proj.weight") for n in changed)  # only the adapted projections moved
    loaded = TempFlexForConditionalGeneration.from_pretrained(tmp_path / "lora")
    assert torch.equal(loaded.state_dict()[changed[0]], after[changed[0]].detach())


def test_resuming_reproduces_the_uninterrupted_run(processor, dataset_file, tmp_path):
    records = [pair for pair in load_records(dataset_file) if pair[0]["id"].startswith("img")]
    stage = dataclasses.replace(load_stage(2), trainable={"merger": 1e-3, "language_model": 1e-3})

    def losses(folder):
        lines = [json.loads(line) for line in (folder / "loss.jsonl").read_text().splitlines()]
        steps = [line["step"] for line in lines if "loss" in line]
        assert len(steps) == len(set(steps)), steps  # every step logged once, also across the interruption
        return {line["step"]: line["loss"] for line in lines if "loss" in line}

    torch.manual_seed(0)
    whole = tmp_path / "whole"
    train(TempFlexForConditionalGeneration(CONFIG), processor, stage, records, settings(whole, max_steps=6,
          batch_size=2))  # fmt: skip
    torch.manual_seed(0)
    parts = tmp_path / "parts"
    first = TempFlexForConditionalGeneration(CONFIG)
    train(first, processor, stage, records, settings(parts, max_steps=6, batch_size=2, save_steps=3, stop_after=4))
    assert (parts / "checkpoint-3" / "COMPLETE").exists()
    (parts / "checkpoint-5").mkdir()  # a checkpoint cut off while being written: never resumed from
    (parts / "checkpoint-5" / "trainer_state.json").write_text("{")
    torch.manual_seed(1)  # a different initialisation: everything must come from the checkpoint
    train(TempFlexForConditionalGeneration(CONFIG), processor, stage, records, settings(parts, max_steps=6,
          batch_size=2, save_steps=3, resume=True))  # fmt: skip
    uninterrupted, resumed = losses(whole), losses(parts)
    assert sorted(resumed) == list(range(1, 7))
    for step in range(1, 7):
        assert abs(uninterrupted[step] - resumed[step]) <= 1e-6, step


def test_llava_next_video_records_with_an_image_tag_read_as_the_video(tmp_path):
    record = {"id": "v", "video": "clip.mp4", "conversations": [
        {"from": "human", "value": "<image>\nWhat happens?"}, {"from": "gpt", "value": "A ball rolls."}]}  # fmt: skip
    messages = to_messages(record, tmp_path)
    assert messages[0]["content"][0] == {"type": "video", "video": str(tmp_path / "clip.mp4")}
    with pytest.raises(ValueError, match="more <image> tags than image files"):  # two tags, one video: refused
        to_messages({**record, "conversations": [{"from": "human", "value": "<image><image>"}]}, tmp_path)


def test_llava_next_sampling_strategies_against_hand_counts(tmp_path):
    lines = [{"id": f"r{i}", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
             for i in range(20)]  # fmt: skip
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    strategies = {"all": 20, "first:5": 5, "first:10%": 2, "end:3": 3, "end:25%": 5, "random:7": 7, "random:50%": 10}
    body = "".join(f"  - json_path: d.jsonl\n    sampling_strategy: '{rule}'\n" for rule in strategies)
    (tmp_path / "mix.yaml").write_text("datasets:\n" + body)
    ids = [record["id"] for record, _ in load_mixture(tmp_path / "mix.yaml", seed=0)]
    counts = list(strategies.values())
    starts = [sum(counts[:i]) for i in range(len(counts))]
    chunks = {rule: ids[start : start + n] for rule, start, n in zip(strategies, starts, counts, strict=True)}
    assert chunks["first:5"] == ["r0", "r1", "r2", "r3", "r4"] and chunks["first:10%"] == ["r0", "r1"]
    assert chunks["end:3"] == ["r17", "r18", "r19"] and chunks["end:25%"] == [f"r{i}" for i in range(15, 20)]
    assert len(set(chunks["random:7"])) == 7 and chunks["random:7"] == sorted(
        chunks["random:7"], key=lambda r: int(r[1:])
    )
    assert len(ids) == sum(counts)
    (tmp_path / "bad.yaml").write_text("datasets:\n  - json_path: d.jsonl\n    sampling_strategy: 'middle:3'\n")
    with pytest.raises(ValueError, match="'middle:3' is not 'all', 'first:N', 'end:N' or 'random:N'"):
        load_mixture(tmp_path / "bad.yaml")


def test_stage_3_on_a_text_only_batch_takes_a_zero_gradient_step(tmp_path):
    """Only TFF and the merger train in stage 3; a text-only batch reaches them through the zero visual term (before:
    "element 0 of tensors does not require grad")."""
    from tempflex.cli import main
    from tempflex.loading import load

    rows = [{"id": f"t{i}", "conversations": [{"from": "human", "value": f"Say {i}"}, {"from": "gpt", "value": "ok"}]}
            for i in range(4)]  # fmt: skip
    (tmp_path / "text_only.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = ["train", "--stage", "3", "--model", "tiny", "--data", str(tmp_path / "text_only.jsonl")]
    assert main([*command, "--output", str(tmp_path / "out"), "--max-steps", "1", "--grad-accum", "1"]) == 0
    model, _ = load(tmp_path / "out")
    assert all(layer.norm.weight.abs().sum() == 0 for layer in model.temporal_fusion.layers)  # a zero step: identity


def test_the_recipe_global_batch_is_the_default(processor, dataset_file, tmp_path):
    plan = TrainSettings("o", batch_size=4).batch_plan
    assert plan(stage_global_batch=512, processes=8) == (512, 16)  # the paper's 512 on 8 processes
    assert TrainSettings("o", batch_size=2, gradient_accumulation_steps=3).batch_plan(
        stage_global_batch=512, processes=2
    ) == (12, 3)  # fmt: skip
    assert TrainSettings("o", global_batch=8).batch_plan(stage_global_batch=512, processes=2) == (8, 4)
    with pytest.raises(ValueError, match="global batch 512 is not a multiple of batch size 3 x 2 processes"):
        TrainSettings("o", batch_size=3).batch_plan(stage_global_batch=512, processes=2)
    records = [pair for pair in load_records(dataset_file) if pair[0]["id"].startswith("img")]
    stage = dataclasses.replace(load_stage(2), global_batch_size=4)
    trainer = train(TempFlexForConditionalGeneration(CONFIG), processor, stage, records,
                    TrainSettings(tmp_path / "run", max_steps=1, batch_size=2))  # fmt: skip
    assert trainer.args.gradient_accumulation_steps == 2 and trainer.state.num_input_tokens_seen > 0


def test_max_length_cuts_a_text_tail_and_skips_a_cut_visual_span(processor, dataset_file, caplog):
    records = load_records(dataset_file)
    whole = SupervisedDataset(records, processor)
    text_index = next(i for i, (r, _) in enumerate(records) if r["id"] == "text")
    image_length = whole[0]["input_ids"].shape[-1]
    text_length = whole[text_index]["input_ids"].shape[-1]
    cut = SupervisedDataset(records, processor, max_length=text_length - 2)
    with caplog.at_level("WARNING"):
        sample = cut[text_index]
    assert sample["input_ids"].shape == (1, text_length - 2) and sample["labels"].shape == (1, text_length - 2)
    assert torch.equal(sample["input_ids"][0], whole[text_index]["input_ids"][0, : text_length - 2])
    assert f"{text_length} tokens, the last 2 cut (--max-length {text_length - 2})" in caplog.text
    assert "train.jsonl:" in caplog.text  # names the file and line
    visual = SupervisedDataset(records, processor, max_length=8)  # the image's placeholders reach past token 8
    assert visual[0] is None and image_length > 8
    assert "past --max-length 8" in visual.failures["img0"] and "its visual tokens end at" in visual.failures["img0"]


def test_attention_implementation_and_per_group_rates_reach_the_run(dataset_file, tmp_path, caplog):
    from tempflex.cli import main

    output = tmp_path / "eager"
    command = ["train", "--stage", "2", "--model", "tiny", "--data", str(dataset_file), "--output", str(output)]
    assert main([*command, "--max-steps", "2", "--grad-accum", "1", "--attn-implementation", "eager"]) == 0
    assert "distributed: none, 1 process, cpu; float32 weights; attention eager" in caplog.text
    lines = [json.loads(line) for line in (output / "loss.jsonl").read_text().splitlines() if '"loss"' in line]
    rates = {k for k in lines[-1] if k.startswith("lr/")}
    assert rates == {"lr/vision_tower", "lr/merger", "lr/language_model"}  # each group at its own rate
    assert lines[-1]["lr/language_model"] == 5 * lines[-1]["lr/vision_tower"]  # 1e-5 vs 2e-6 in the recipe


def test_cached_vision_features_train_stage_3_exactly_as_without(processor, dataset_file, tmp_path):
    """Two epochs of stage 3 over images and videos: the frozen tower's features come from the store in the second
    epoch, and the trained TFF and merger equal those of the run that encoded every frame each time."""
    records = [pair for pair in load_records(dataset_file) if pair[0]["id"] in ("img0", "img1", "vid0", "vid1")]
    stage = dataclasses.replace(load_stage(3), trainable={"temporal_fusion": 1e-3, "merger": 1e-3})
    weights = []
    for cache in (False, True):
        torch.manual_seed(0)
        model = TempFlexForConditionalGeneration(CONFIG)
        store = {} if cache else False
        train(model, processor, stage, records, settings(tmp_path / str(cache), max_steps=8, batch_size=1,
                                                         shuffle=False, cache_vision_features=store))  # fmt: skip
        weights.append(model.state_dict())
        assert model.vision_tower.feature_store is None  # the run's store is detached at the end
    assert len(store) > 0
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    with pytest.raises(ValueError, match="needs a frozen vision tower, but stage 'image-instruction' trains it"):
        train(TempFlexForConditionalGeneration(CONFIG), processor, load_stage(2), records,
              settings(tmp_path / "refused", max_steps=1, cache_vision_features=True))  # fmt: skip
