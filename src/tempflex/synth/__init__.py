"""Synthetic data, the TempFlex-2M method: video + text -> caption + VQA, from any OpenAI-compatible endpoint.

One stage, as in the paper's appendix: frames at 1 fps in 3x3 grids go straight to the model with the video's
metadata and the Figure 6 prompt (15 task dimensions of Figure 7); the answer is validated and kept per video in
a durable store; a killed job resumes. Modules, one purpose each:

- ``prompt``: the Figure 6 / Figure 7 text, templated and versioned (``PromptSpec``).
- ``grids``: frames -> 3x3 stitched images -> JPEG data URIs.
- ``schema``: pydantic validation of the answer (``validate_output``).
- ``ratelimit`` / ``client``: requests/min and tokens/min limits; ``ChatClient`` with retries and backoff.
- ``dedup``: content hash (video id) and perceptual hash (near-duplicates).
- ``store``: SQLite (WAL) per (video id, prompt version): pending / done / failed / duplicate.
- ``inputs``: video lists and metadata JSONL.
- ``pipeline``: ``run_synthesis``, the resumable job.
- ``export`` / ``stats``: LLaVA JSONL for training; Figure 5 counts as a table and a PNG.
- ``cli``: ``tempflex synth run | export | stats``.

Needs the ``synth`` extra (``pip install 'tempflex[synth]'``: httpx, pydantic, PyAV, matplotlib, tqdm). This
package's ``__init__`` imports nothing, so ``tempflex`` commands work without the extra.
"""
