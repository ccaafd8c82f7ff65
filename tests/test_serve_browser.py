"""The web chat page in headless Chromium (Debian's ``chromium`` driven by Playwright): upload, ask, watch a stream.

Chromium is required: ``scripts/setup`` installs it. The test skips only when it is missing *and*
``TEMPFLEX_SKIP=browser`` says the browser was left out on purpose (``setup_parts``).
"""

from __future__ import annotations

import shutil

import pytest
import torch

from serving import running, write_png
from setup_parts import missing
from tempflex.serve.app import create_app
from tempflex.serve.engine import Engine

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def page_url():
    torch.manual_seed(0)
    with running(create_app(Engine.load("tiny"), max_tokens_limit=64)) as url:
        yield url


def test_upload_an_image_ask_and_see_a_streamed_answer(page_url, tmp_path):
    if CHROMIUM is None:
        missing("browser", "chromium (Debian's chromium and chromium-driver)")
    from playwright.sync_api import expect, sync_playwright

    image = write_png(tmp_path / "upload.png", 96, 160)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            console_errors = []
            page.on("pageerror", lambda error: console_errors.append(str(error)))
            page.goto(page_url + "/")
            expect(page.locator("#model")).to_have_text("model: tiny")
            page.set_input_files("#file", str(image))
            expect(page.locator("#frames img")).to_have_count(1)
            expect(page.locator("#tokens")).to_contain_text("visual tokens")
            page.fill("#question", "What colour is it?")
            page.click("#send")
            answer = page.locator("#answer-0")
            expect(answer).to_have_attribute("data-done", "true", timeout=60_000)
            text = answer.locator(".text").inner_text()
            expect(answer.locator(".usage")).to_contain_text("tokens")
            page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        finally:
            browser.close()
    assert text.strip(), "the streamed answer is empty"
    assert not console_errors
    assert (tmp_path / "chat.png").stat().st_size > 10_000
    print(f"screenshot: {tmp_path / 'chat.png'}")
