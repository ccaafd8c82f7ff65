"""``tempflex train``: its options (``add_train_arguments``) and arguments -> model, records, stage -> ``run.train``.

``--model`` goes to ``tempflex.load``: ``tiny`` builds the tiny preset with its in-process tokenizer; ``qwen3-4b``
the real shapes with random weights and the real Qwen3 tokenizer (rebuilt offline); a folder is loaded with
``from_pretrained`` (e.g. the output of the previous stage, or of ``tempflex assemble``). The weights are loaded in
float32 (fp32 masters for ``--bf16`` autocast) unless ``--dtype`` says otherwise.

Commands::

    tempflex train --stage 3 --model tiny --data d.jsonl --output o --max-steps 20 --grad-accum 1   # smoke run
    torchrun --nproc_per_node 8 -m tempflex.train --stage 2 --model runs/s1 --data mix.yaml --output runs/s2 \\
        --deepspeed zero2 --bf16 --packing --max-length 8192      # the recipe's global batch (512) by default
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_train_arguments", "run_training", "settings_from_args"]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of ``tempflex train`` (and ``python -m tempflex.train``); imports only argparse."""
    parser.add_argument("--stage", required=True, help="1-4, a recipe name (stage1_projector_only) or a YAML file")
    parser.add_argument("--model", required=True, help="a preset (tiny, qwen3-4b) or a saved TempFlex folder")
    parser.add_argument("--data", required=True, help="LLaVA-format JSON / JSONL, or a YAML mixture")
    parser.add_argument("--output", required=True, help="folder for the trained model, processor and loss log")
    batch = parser.add_argument_group("batch")
    batch.add_argument("--max-steps", type=int, default=-1, help="stop after N optimiser steps (default: epochs)")
    batch.add_argument("--batch-size", type=int, default=1, help="samples (or packed rows) per process and micro-step")
    batch.add_argument(
        "--global-batch", type=int, help="samples per optimiser step over all processes (default: the recipe's, "
        "512; 256 in stage 4); sets the accumulation steps"
    )  # fmt: skip
    batch.add_argument("--grad-accum", type=int, help="accumulation steps (instead of --global-batch)")
    batch.add_argument("--packing", action="store_true", help="pack whole samples into rows of --max-length")
    batch.add_argument(
        "--max-length", type=int, default=8192, help="tokens per sample (and packed row); longer samples lose their "
        "text tail, or are skipped when their visual tokens reach past it (each logged)"
    )  # fmt: skip
    batch.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    batch.add_argument("--no-shuffle", action="store_true", help="read the records in order")
    engine = parser.add_argument_group("engine and precision")
    engine.add_argument("--deepspeed", help="a DeepSpeed config JSON, or 'zero2' for the shipped ZeRO-2 one")
    engine.add_argument("--fsdp", action="store_true", help="shard the model with FSDP2 (fully_shard) over torchrun")
    engine.add_argument("--bf16", action="store_true", help="bf16 autocast over fp32 master weights")
    engine.add_argument("--fp16", action="store_true", help="fp16 autocast over fp32 master weights (CUDA)")
    engine.add_argument(
        "--dtype", default="float32", help="dtype of the weights while training (default float32; bfloat16 "
        "trains in pure bf16)"
    )  # fmt: skip
    engine.add_argument("--attn-implementation", help="the LLM's attention: sdpa (default), eager, flash_attention_2")
    engine.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    engine.add_argument("--lora", type=int, metavar="RANK", help="LoRA adapters of this rank on the LLM (merged)")
    engine.add_argument(
        "--cache-vision-features", action="store_true", help="a stage with a frozen vision tower (stage 3) encodes "
        "each frame once and reuses its features in later epochs (exact)"
    )  # fmt: skip
    runs = parser.add_argument_group("checkpoints and logs")
    runs.add_argument("--save-steps", type=int, help="write a resumable checkpoint every N steps")
    runs.add_argument("--save-total-limit", type=int, help="keep only the newest N checkpoints")
    runs.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --output")
    runs.add_argument("--logging-steps", type=int, default=1, help="a loss.jsonl line every N steps (default 1)")
    runs.add_argument("--seed", type=int, default=0)
    runs.add_argument(
        "--max-failure-share", type=float, default=0.5, metavar="SHARE",
        help="stop once more than this share of the samples failed (unreadable, malformed, no answer); default 0.5",
    )  # fmt: skip


def settings_from_args(args: argparse.Namespace) -> object:
    """``TrainSettings`` from parsed ``tempflex train`` arguments."""
    from tempflex.train.settings import TrainSettings

    if args.bf16 and args.fp16:
        raise ValueError("choose one of --bf16 and --fp16")
    return TrainSettings(
        output_dir=args.output,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        global_batch=args.global_batch,
        gradient_accumulation_steps=args.grad_accum,
        packing=args.packing,
        max_length=args.max_length,
        mixed_precision="bf16" if args.bf16 else "fp16" if args.fp16 else "no",
        gradient_checkpointing=args.gradient_checkpointing,
        deepspeed=args.deepspeed,
        fsdp=args.fsdp,
        num_workers=args.num_workers,
        seed=args.seed,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        resume=args.resume,
        lora={"r": args.lora} if args.lora else None,
        shuffle=not args.no_shuffle,
        max_failure_share=args.max_failure_share,
        cache_vision_features=args.cache_vision_features,
    )


def run_training(args: argparse.Namespace) -> int:
    """Run one stage from parsed ``tempflex train`` arguments; returns the exit code."""
    from transformers import set_seed

    from tempflex.loading import load, parse_dtype
    from tempflex.train.engines import load_for_fsdp2
    from tempflex.train.run import load_records, train
    from tempflex.train.stages import load_stage

    settings = settings_from_args(args)
    stage = load_stage(args.stage)
    set_seed(args.seed)  # a preset's random initialisation is then the same in every process and every run
    options = {"dtype": parse_dtype(args.dtype), "attn_implementation": args.attn_implementation}
    model, processor = load_for_fsdp2(args.model, **options) if settings.fsdp else load(args.model, **options)
    records = load_records(args.data, seed=args.seed)
    try:
        trainer = train(model, processor, stage, records, settings)
    finally:
        _leave_process_group()
    skipped = f"{len(trainer.failures)} samples skipped"
    if trainer.failures:
        skipped += f" (see {os.path.join(args.output, 'failures.json')})"
    saved = f"model and processor saved in {args.output}"
    if trainer.is_world_process_zero():
        print(f"stage {stage.name}: {trainer.state.global_step} steps; {skipped}; {saved}")
    return 0


def _leave_process_group() -> None:
    """Wait for every process, then close the process group: a torchrun process that exits while gloo's threads are
    still up (its peers still saving) dies with SIGABRT ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
