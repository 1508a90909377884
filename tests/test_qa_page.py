"""The QA review page as a reviewer sees it: a real Label Studio 1.23 in headless Chromium.

Label Studio (the session's ``label_studio`` fixture) gets a project with the page of
:func:`qa.review_page.label_config`, a local-files storage holding one real WAV and one call's task
with the champion's prediction. Chromium (Debian's ``chromium`` and ``chromium-driver``, from
``make system-packages``), driven by selenium at their fixed paths (Selenium Manager is never
asked for a driver: nothing is downloaded), logs in through the login form, opens the task in the
labelling editor and finds the audio player (decoded: it shows the file's 1 s), the pre-filled
transcripts and intents of the prediction, and the intent choices of the page. A screenshot of
the page is kept in ``test-artifacts/`` (and in the test's tmp folder); when the check fails, the
screenshot and the page source are kept there for debugging.
"""

from __future__ import annotations

import math
import shutil
import struct
import uuid
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from core.corpus import NO_REQUEST, OUT_OF_SCOPE
from qa.review_page import CallToReview, TurnToReview, label_config, task
from tests.studio_server import StudioHarness

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
)
WAIT_S = 60.0  # the longest any step may take (the editor renders in about 5 s here)
POLL_S = 0.2

INTENTS = ("card_arrival", "lost_card", "top_up")
TURNS = (
    TurnToReview(index=1, start_s=0.1, end_s=0.4, transcript="my card has not arrived yet", intent="card_arrival",
                 confidence=0.83, bundle="bundle-7"),
    TurnToReview(index=3, start_s=0.5, end_s=0.9, transcript="it was sent to <ADDRESS> I think", intent="lost_card",
                 confidence=0.61, bundle="bundle-7"),
)


def _write_tone(path: Path, seconds: float = 1.0, rate: int = 16_000, hz: float = 440.0) -> None:
    """A real WAV: ``seconds`` of a ``hz`` tone, 16-bit mono at ``rate``."""
    frames = b"".join(struct.pack("<h", round(8000 * math.sin(2 * math.pi * hz * i / rate)))
                      for i in range(round(seconds * rate)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


@pytest.fixture()
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    """Headless Chromium from Debian's packages, with a profile of its own in the test's tmp folder."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run `make system-packages` (`make test` does) to install "
                    "Debian's chromium and chromium-driver", pytrace=False)
    monkeypatch.setenv("SE_OFFLINE", "true")  # were Selenium Manager ever run, it would download nothing
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(argument)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def _kept_on_failure(driver: WebDriver, name: str) -> Iterator[None]:
    """On any failure inside, keep the page's screenshot and source in test-artifacts/ before raising."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            driver.save_screenshot(str(ARTIFACTS / f"{name}-failed.png"))
            (ARTIFACTS / f"{name}-failed.html").write_text(driver.page_source)
        except Exception:  # the browser itself may be what failed: the original error matters more
            pass
        raise


def _wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any], timeout_s: float = WAIT_S) -> Any:
    """Poll ``condition`` until it is truthy; a TimeoutException naming ``what`` after ``timeout_s``."""
    wait = WebDriverWait(driver, timeout_s, POLL_S, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(condition, f"{what} (waited {timeout_s:.0f} s)")


def _log_in(driver: WebDriver, url: str, email: str, password: str) -> None:
    driver.get(url + "/user/login/")
    driver.find_element(By.NAME, "email").send_keys(email)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(driver, "the login form accepted the admin", lambda d: "/user/login" not in d.current_url)


def _texts(driver: WebDriver, css: str, attribute: str | None = None) -> list[str]:
    return [(element.get_attribute(attribute) if attribute else element.text) or ""
            for element in driver.find_elements(By.CSS_SELECTOR, css)]


def test_review_page_shows_audio_prefilled_answers_and_intents(
        label_studio: StudioHarness, browser: WebDriver, tmp_path: Path) -> None:
    studio = label_studio.studio
    week = studio.media_root / f"qa-page-{uuid.uuid4().hex[:8]}"
    week.mkdir()
    audio = week / "call-0001.wav"
    _write_tone(audio)
    call = CallToReview(call_id="call-0001", week="2026-W45", audio_url=studio.media_url(audio), turns=TURNS,
                        blind=False, double=False)
    with label_studio.client() as admin:
        project = admin.ensure_project(f"QA review page {uuid.uuid4().hex[:8]}", label_config(INTENTS))
        admin.ensure_local_storage(project, week)
        [task_id] = admin.import_tasks(project, [task(call)])

    for stale in ARTIFACTS.glob("qa-review-page*"):  # an earlier run's pictures must not pass for this one's
        stale.unlink()
    credentials = studio.credentials()
    with _kept_on_failure(browser, "qa-review-page"):
        _log_in(browser, studio.url, credentials.username, credentials.password)
        # the data manager with ?task= opens that task in the labelling editor
        browser.get(f"{studio.url}/projects/{project}/data?task={task_id}")
        transcripts = [turn.transcript for turn in TURNS]
        _wait(browser, f"the editor shows the prediction's transcripts {transcripts}",
              lambda d: _texts(d, '[data-testid="htx-textbox-content"]') == transcripts)
        # the audio player: the Audio tag's <audio> with the task's file, decoded (the waveform's end time: 1 s)
        _wait(browser, "the audio player shows the file's duration, 1 s",
              lambda d: _texts(d, '[data-testid="timebox-end-time"] input', "value") == ["00:00:01:000"])
        [player] = browser.find_elements(By.CSS_SELECTOR, 'audio[data-testid="waveform-audio"]')
        assert player.get_attribute("src") == studio.url + call.audio_url
        assert browser.execute_script("return arguments[0].duration", player) == pytest.approx(1.0, abs=0.01)
        assert browser.find_elements(By.CSS_SELECTOR, ".lsf-audio-tag")  # the player: waveform and controls
        assert browser.find_elements(By.CSS_SELECTOR, '[data-testid="playback-button:play"]')
        # each turn's intent: a select (layout="select") showing the prediction's intent
        triggers = browser.find_elements(By.CSS_SELECTOR, '.lsf-choices_layout_select [data-testid^="select-trigger"]')
        assert [t.get_attribute("data-value") for t in triggers] == [turn.intent for turn in TURNS]
        assert browser.current_url.startswith(f"{studio.url}/projects/{project}/data")

        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "qa-review-page.png"))
        shutil.copy(ARTIFACTS / "qa-review-page.png", tmp_path / "qa-review-page.png")

        # the intent choices: open the first turn's select and read its options
        triggers[0].click()
        _wait(browser, "the intent select opened", lambda d: triggers[0].get_attribute("aria-expanded") == "true", 10)
        popup = browser.find_element(By.ID, triggers[0].get_attribute("aria-controls") or "")
        options = [o.get_attribute("data-value") for o in popup.find_elements(By.CSS_SELECTOR, '[role="option"]')]
        assert options == [NO_REQUEST, *INTENTS, OUT_OF_SCOPE]
        assert browser.save_screenshot(str(ARTIFACTS / "qa-review-page-intents.png"))
