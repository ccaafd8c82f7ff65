"""``tempflex train``: arguments -> model, processor, records, stage -> ``run.train``.

``--model`` goes to ``tempflex.load``: ``tiny`` builds the tiny preset with its in-process tokenizer; ``qwen3-4b``
the real shapes with random weights and the real Qwen3 tokenizer (rebuilt offline); a folder is loaded with
``from_pretrained`` (e.g. the output of the previous stage, or of ``tempflex assemble``).
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_failure_arguments", "run_training"]


def run_training(args: argparse.Namespace) -> int:
    """Run one stage from parsed ``tempflex train`` arguments; returns the exit code."""
    from transformers import set_seed

    from tempflex.loading import load
    from tempflex.train.run import load_records, train
    from tempflex.train.stages import load_stage

    stage = load_stage(args.stage)
    accumulation = args.grad_accum
    if args.global_batch is not None:  # e.g. the recipe's stage.global_batch_size (512; 256 in stage 4)
        processes = int(os.environ.get("WORLD_SIZE", "1"))
        accumulation = max(1, args.global_batch // (args.batch_size * processes))
        if accumulation * args.batch_size * processes != args.global_batch:
            raise ValueError(
                f"--global-batch {args.global_batch} is not a multiple of --batch-size {args.batch_size} x "
                f"{processes} processes"
            )
    set_seed(args.seed)  # a preset's random initialisation is then the same in every process and every run
    model, processor = load(args.model)
    records = load_records(args.data, seed=args.seed)
    trainer = train(
        model,
        processor,
        stage,
        records,
        args.output,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        gradient_accumulation_steps=accumulation,
        packing=args.packing,
        max_length=args.max_length,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
        deepspeed=args.deepspeed,
        fsdp=args.fsdp,
        save_steps=args.save_steps,
        resume=args.resume,
        lora={"r": args.lora} if args.lora else None,
        shuffle=not args.no_shuffle,
        **({"max_failure_share": share} if (share := getattr(args, "max_failure_share", None)) is not None else {}),
    )
    skipped = f"{len(trainer.failures)} samples skipped"
    if trainer.failures:
        skipped += f" (see {os.path.join(args.output, 'failures.json')})"
    saved = f"model and processor saved in {args.output}"
    print(f"stage {stage.name}: {trainer.state.global_step} steps; {skipped}; {saved}")
    return 0


def add_failure_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-failure-share`` of ``tempflex train`` (the parser in ``tempflex.cli`` calls this)."""
    parser.add_argument(
        "--max-failure-share", type=float, default=0.5, metavar="SHARE",
        help="stop once more than this share of the samples failed (unreadable, malformed, no answer); default 0.5",
    )  # fmt: skip
