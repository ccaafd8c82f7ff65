"""Serving TempFlex: ``tempflex chat``, an OpenAI-compatible HTTP server and a web chat page.

- ``engine.Engine``: model + processor -> prepared prompts (token counts) and streamed completions.
- ``session.ChatSession``: multi-turn chat whose images and clips are encoded once per conversation.
- ``app.create_app``: the FastAPI app (``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``, the page
  at ``/``); ``tempflex serve --model tiny --port 8000`` runs it with uvicorn.
- ``media_policy.MediaPolicy`` and ``fetch.fetch_remote``: which media URLs a request may use (SSRF guard).

The server needs the ``serve`` extra: ``pip install 'tempflex[serve]'`` (FastAPI, uvicorn).
"""
