"""`mmrag ui` in a real browser: Debian's Chromium (headless, driven by Playwright) asks a question."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.core.server import free_port
from mmrag.core.settings import Settings
from mmrag.indexer.service import index_paths
from tests.helpers import MMRAG_SCRIPT, cli_env, run_cli

pytestmark = pytest.mark.browser

QUESTION = "What was the revenue in the fourth quarter?"
FIGURE_QUESTION = "Annual revenue 2021-2024 in the report"
FIGURE_SOURCE = "report.pdf p.2, Figure 1: Annual revenue 2021-2024 in million USD"
FIGURE_CAPTION = "Figure 1: Annual revenue 2021-2024 in million USD, rising every year."
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    return path


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`mmrag ui` exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"`mmrag ui` not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def ui_url(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`mmrag ui` on a free loopback port, over the sample corpus, as a user starts it."""
    index_paths(settings, write_sample_corpus(tmp_path / "corpus"), workers=0)
    port = free_port()
    log = tmp_path / "mmrag.ui.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [MMRAG_SCRIPT, "ui", "--port", str(port)],
            env=cli_env(settings, MMRAG_MAX_NEW_TOKENS="24"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_question_answer_and_source_thumbnail_in_chromium(ui_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(ui_url)
            expect(page.get_by_role("heading", name="mmrag")).to_be_visible(timeout=60_000)
            box = page.get_by_test_id("stChatInputTextArea")
            box.fill(QUESTION)
            box.press("Enter")

            assistant = page.get_by_test_id("stChatMessage").nth(1)
            thumbnail = assistant.get_by_test_id("stImage").locator("img").first
            expect(thumbnail).to_be_visible(timeout=120_000)
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
            expect(assistant.get_by_text("Sources", exact=True)).to_be_visible()
            answer = assistant.get_by_test_id("stMarkdownContainer").first.inner_text().strip()
            assert answer and answer != "Sources"
            expect(assistant.get_by_text("revenue_by_quarter.png")).to_be_visible()
            expect(page.get_by_test_id("stException")).to_have_count(0)
            page.get_by_test_id("stExpander").locator("summary").click()  # fold "Add documents" away
            expect(page.get_by_test_id("stFileUploader")).to_be_hidden()
            page.mouse.move(700, 400)
            page.mouse.wheel(0, -5000)  # back to the top: the title, the question, the answer and its sources
            page.wait_for_timeout(500)  # let the last paint land
            page.screenshot(path=str(tmp_path / "mmrag.ui.png"))

            assistant.get_by_role("button", name="Enlarge").first.click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_test_id("stImage").locator("img")).to_be_visible(timeout=30_000)
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()

            # A new chat: the history and the shown turns go, so the next question is not read as a follow-up
            page.get_by_role("button", name="New chat").click()
            expect(page.get_by_test_id("stChatMessage")).to_have_count(0, timeout=30_000)
            box.fill(FIGURE_QUESTION)  # the report's chart: its crop, label and caption; enlarged on its page
            box.press("Enter")
            cited = (
                page.get_by_test_id("stChatMessage")
                .nth(1)
                .get_by_test_id("stVerticalBlock")
                .filter(has_text=FIGURE_SOURCE, has=page.get_by_test_id("stImage"))
            )
            expect(cited.last).to_be_visible(timeout=120_000)
            expect(cited.last.get_by_text(FIGURE_CAPTION)).to_be_visible()
            cited.last.get_by_role("button", name="Enlarge").click()
            expect(dialog.get_by_text(FIGURE_CAPTION)).to_be_visible(timeout=30_000)
            expect(dialog.get_by_test_id("stImage").locator("img")).to_be_visible()
        finally:
            browser.close()
    assert (tmp_path / "mmrag.ui.png").stat().st_size > 10_000


def test_bad_settings_fail_in_one_line(settings: Settings) -> None:
    result = run_cli(cli_env(settings, MMRAG_K="0"), "ui", "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: invalid settings: MMRAG_K")
    assert "Traceback" not in result.stderr
