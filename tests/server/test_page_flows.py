"""The page's first five minutes, in the real headless Chromium: a sample photo in one click, thumbnails
that apply, the mix shown, before/after, download, history, drop and paste, progress, errors in words,
503 retried after Retry-After, and a layout that fits desktop and phone widths.

Screenshots go to $STYLENORM_SCREENSHOT_DIR when set (the note's desktop/phone pictures), else tmp.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stylenorm.server.routes.ops import STATIC
from tests.server.conftest import BROWSER_MISSING, LiveServer, image_bytes, open_model, result_size, wait_for

pytestmark = pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)

SAMPLES = json.loads((STATIC / "samples" / "index.json").read_text())


def _by(css: str) -> tuple[str, str]:
    from selenium.webdriver.common.by import By

    return (By.CSS_SELECTOR, css)


def _history(driver: Any) -> list[str]:
    return [i.get_attribute("alt") for i in driver.find_elements(*_by("#history .history-item img"))]


def _wait_history(driver: Any, n: int) -> list[str]:
    wait_for(driver, lambda d: len(_history(d)) == n)
    return _history(driver)


def _result_src(driver: Any) -> str:
    return driver.find_element(*_by("#result")).get_attribute("src")


def _wait_new_result(driver: Any, before: str) -> None:
    wait_for(driver, lambda d: _result_src(d) not in ("", before) and result_size(d))


def _open_page(driver: Any, server: LiveServer) -> None:
    """The page as a newcomer opens it: no model named, the default one set up."""
    driver.get(server.url + "/")
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.model"))


def test_the_samples_are_small_licensed_photos_the_page_lists() -> None:
    licences = (STATIC / "samples" / "LICENSES.md").read_text()
    assert len(SAMPLES) >= 4
    for sample in SAMPLES:
        path = STATIC / "samples" / sample["file"]
        assert path.stat().st_size < 150_000, "a sample photo should stay small"
        with Image.open(path) as img:
            assert img.format == "JPEG" and 512 <= max(img.size) <= 1024
        assert sample["alt"] and sample["credit"] and f"`{sample['file']}`" in licences


def test_a_sample_photo_is_stylized_in_one_click_compared_downloaded_and_kept(
    browser: Any, server: LiveServer, tmp_path: Path
) -> None:
    """Open the page, click a sample: a stylized photo (the default model's first style is chosen); the
    slider uncovers the original, the download is the PNG with a telling name, results stay in the
    history across styles and models, and a click on one shows it again."""
    _open_page(browser, server)
    model = browser.execute_script("return document.body.dataset.model")
    assert model == "adain"  # the first stylize model; its first gallery style is preselected
    assert (
        browser.find_element(*_by('#gallery .thumb[data-style="warm"]')).get_attribute("aria-pressed")
        == "true"
    )
    browser.find_element(*_by('.sample[data-sample="kite.jpg"]')).click()  # click 1
    assert result_size(browser) == (256, 160)  # 819×512 within the test server's max_side 256
    assert _wait_history(browser, 1) == ["kite × warm · adain"]
    assert browser.find_element(*_by("#error")).get_attribute("hidden")

    # before/after: the slider clips the result from the right over the original beneath it
    assert browser.find_element(*_by("#content-preview")).is_displayed()
    browser.execute_script(
        "const s = document.getElementById('compare-slider'); s.value = 30;"
        "s.dispatchEvent(new Event('input'));"
    )
    assert (
        browser.find_element(*_by("#result")).value_of_css_property("clip-path") == "inset(0px 70% 0px 0px)"
    )

    link = browser.find_element(*_by("#download"))
    assert link.is_displayed() and link.get_attribute("download") == "kite-adain-warm.png"
    # a real download, as a click saves it (the page's CSP keeps fetch() off blob: URLs)
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    link.click()
    saved = tmp_path / "kite-adain-warm.png"
    wait_for(browser, lambda d: saved.is_file() and saved.stat().st_size > 1000)
    with Image.open(saved) as img:
        assert img.format == "PNG" and img.size == (256, 160)

    # a thumbnail applies at once; the history keeps both, newest first
    before = _result_src(browser)
    browser.find_element(*_by('#gallery .thumb[data-style="cool"]')).click()
    _wait_new_result(browser, before)
    assert _wait_history(browser, 2) == ["kite × cool · adain", "kite × warm · adain"]
    assert browser.find_element(*_by("#download")).get_attribute("download") == "kite-adain-cool.png"

    # another model keeps the history; clicking an entry shows that result, caption and download again
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element(*_by("#model-select"))).select_by_value("color")
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.model") == "color")
    assert len(_history(browser)) == 2
    browser.find_element(*_by("#history .history-item:nth-child(2)")).click()
    assert browser.find_element(*_by("#result-caption")).text == "kite × warm · adain"
    assert browser.find_element(*_by("#download")).get_attribute("download") == "kite-adain-warm.png"
    assert (
        browser.find_element(*_by("#history .history-item:nth-child(2)")).get_attribute("aria-pressed")
        == "true"
    )


def test_model_descriptions_are_one_line_with_the_card_behind_a_link(
    browser: Any, server: LiveServer
) -> None:
    open_model(browser, server, "adain")
    description = server.client.get("/v1/models/adain").json()["description"]
    first = re.match(r"^.*?[.!?](?=\s|$)", description, re.S)
    assert (
        browser.find_element(*_by("#model-info")).text == (first.group(0) if first else description).strip()
    )
    more = browser.find_element(*_by("#model-more"))
    assert more.is_displayed() and not more.get_attribute("open")
    more.find_element(*_by("summary")).click()
    assert browser.find_element(*_by("#model-description")).text == description.strip()
    facts = browser.find_element(*_by("#model-facts")).text
    assert "architecture" in facts and "adain" in facts
    assert browser.find_element(*_by("#model-card")).get_attribute("href").endswith("/v1/models/adain")


def _png_b64(w: int, h: int, seed: int) -> str:
    return base64.b64encode(image_bytes(w, h, seed=seed)).decode()


DROP = """
const [b64, name, target] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const data = new DataTransfer();
data.items.add(new File([bytes], name, { type: "image/png" }));
const into = target === "document" ? document : document.querySelector(target);
if (target === "document") {
  into.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
} else {
  into.dispatchEvent(new DragEvent("dragover", { dataTransfer: data, bubbles: true, cancelable: true }));
  into.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
}
"""


def test_a_dropped_or_pasted_photo_is_stylized_and_a_dropped_style_is_used(
    browser: Any, server: LiveServer
) -> None:
    open_model(browser, server, "adain")
    browser.execute_script(DROP, _png_b64(60, 40, 1), "dropped.png", "#compare")
    assert result_size(browser) == (60, 40)
    assert _history(browser)[0] == "dropped × warm · adain"
    before = _result_src(browser)
    browser.execute_script(DROP, _png_b64(50, 70, 2), "pasted.png", "document")
    _wait_new_result(browser, before)
    assert result_size(browser) == (50, 70) and _history(browser)[0] == "pasted × warm · adain"
    # a style image dropped on the style box replaces the gallery pick (adain takes uploads) and applies
    before = _result_src(browser)
    browser.execute_script(DROP, _png_b64(40, 40, 3), "my-style.png", "#style-box")
    _wait_new_result(browser, before)
    assert _history(browser)[0] == "pasted × my-style · adain"
    assert browser.find_elements(*_by('#gallery .thumb[aria-pressed="true"]')) == []


def test_thumbnails_apply_on_click_and_the_mix_bar_shows_the_weights(
    browser: Any, server: LiveServer
) -> None:
    open_model(browser, server, "multi")
    wait_for(browser, lambda d: len(d.find_elements(*_by("#gallery .thumb"))) == 3)
    browser.execute_script(DROP, _png_b64(48, 40, 4), "photo.png", "#content-box")
    _wait_history(browser, 1)  # the preselected first style "a" applied to the dropped photo
    before = _result_src(browser)
    browser.find_element(*_by('#gallery .thumb[data-style="b"]')).click()
    _wait_new_result(browser, before)
    pressed = browser.find_elements(*_by('#gallery .thumb[aria-pressed="true"]'))
    assert [p.get_attribute("data-style") for p in pressed] == ["b"]
    assert _history(browser)[0] == "photo × b · multi"
    # "+" builds a mix: one slider per style, the bar's parts in proportion to the weights
    for style in ("a", "c"):
        browser.find_element(*_by(f'#gallery .mix-toggle[data-style="{style}"]')).click()
    assert len(browser.find_elements(*_by("#selected-styles input.weight"))) == 3
    bar = browser.find_element(*_by("#mix-bar"))
    assert bar.is_displayed()
    browser.execute_script(
        "const s = document.querySelectorAll('#selected-styles input.weight')[0]; s.value = 0.5;"
        "s.dispatchEvent(new Event('input'));"
    )
    widths = browser.execute_script(
        "return Array.from(document.querySelectorAll('#mix-bar .mix-part'),"
        " (p) => [p.dataset.style, p.getBoundingClientRect().width]);"
    )
    assert [w[0] for w in widths] == ["b", "a", "c"]
    total = sum(w[1] for w in widths)
    assert widths[0][1] / total == pytest.approx(0.5 / 2.5, abs=0.02)
    assert widths[1][1] / total == pytest.approx(1 / 2.5, abs=0.02)
    before = _result_src(browser)
    browser.find_element(*_by("#stylize-button")).click()
    _wait_new_result(browser, before)
    assert _history(browser)[0] == "photo × b + a + c · multi"


FAKE_FETCH = """
// stand-in answers for /v1/stylize, in order; everything else goes to the real server
window.__answers = arguments[0];
window.__calls = 0;
const real = window.__realFetch || window.fetch;
window.__realFetch = real;
window.fetch = async (url, options) => {
  if (String(url).includes("/v1/stylize") && window.__answers.length) {
    window.__calls++;
    const a = window.__answers.shift();
    if (a.network) throw new TypeError("Failed to fetch");
    if (a.delay) await new Promise((r, j) => {
      const t = setTimeout(r, a.delay);
      if (options && options.signal) options.signal.addEventListener("abort", () => {
        clearTimeout(t); j(new DOMException("aborted", "AbortError"));
      });
    });
    if (a.status) return new Response(JSON.stringify({ error: a.error }), {
      status: a.status, headers: { "Content-Type": "application/json", ...(a.headers || {}) },
    });
  }
  if (String(url).includes("/v1/stylize")) window.__calls++;
  return real(url, options);
};
"""


def _stylize_ready(driver: Any, server: LiveServer, model: str = "color") -> None:
    open_model(driver, server, model)
    driver.execute_script(DROP, _png_b64(40, 30, 5), "photo.png", "#content-box")
    _wait_history(driver, len(_history(driver)) or 1)


def test_a_503_is_retried_after_its_retry_after_with_a_countdown(browser: Any, server: LiveServer) -> None:
    _stylize_ready(browser, server)
    busy = {
        "status": 503,
        "headers": {"Retry-After": "2"},
        "error": {"status": 503, "code": "overloaded", "message": "the queue is full"},
    }
    browser.execute_script(FAKE_FETCH, [busy])
    before = _result_src(browser)
    browser.find_element(*_by("#stylize-button")).click()
    text = wait_for(
        browser, lambda d: re.search(r"trying again in \d s", d.find_element(*_by("#progress-text")).text)
    )
    assert text
    _wait_new_result(browser, before)  # the second try reached the real server
    assert browser.execute_script("return window.__calls") == 2
    assert browser.find_element(*_by("#error")).get_attribute("hidden")
    # a server that stays busy: three retries, then the reason in words
    browser.execute_script(FAKE_FETCH, [busy | {"headers": {"Retry-After": "1"}}] * 4)
    browser.find_element(*_by("#stylize-button")).click()
    error = wait_for(
        browser, lambda d: (e := d.find_element(*_by("#error"))).is_displayed() and e.text, timeout=30
    )
    assert error == "The server is busy: the queue is full (503 overloaded)"
    assert browser.execute_script("return window.__calls") == 4


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (
            {
                "status": 413,
                "error": {
                    "status": 413,
                    "code": "too_large",
                    "message": "the upload is 3 MB; the limit is 1 MB",
                },
            },
            "That is too large for this server: the upload is 3 MB; the limit is 1 MB (413 too_large)",
        ),
        (
            {"status": 504, "error": {"status": 504, "code": "deadline", "message": "not done within 30 s"}},
            "The server took too long: not done within 30 s (504 deadline)",
        ),
        ({"network": True}, "Could not reach the server: check the connection and try again."),
    ],
    ids=["413", "504", "offline"],
)
def test_errors_are_said_in_words(browser: Any, server: LiveServer, answer: dict, shown: str) -> None:
    _stylize_ready(browser, server)
    browser.execute_script(FAKE_FETCH, [answer])
    browser.find_element(*_by("#stylize-button")).click()
    error = wait_for(browser, lambda d: (e := d.find_element(*_by("#error"))).is_displayed() and e.text)
    assert error == shown
    assert browser.find_element(*_by("#progress")).get_attribute("hidden")


def test_a_spinner_counts_the_seconds_and_cancel_stops_the_request(browser: Any, server: LiveServer) -> None:
    _stylize_ready(browser, server)
    n = len(_history(browser))
    browser.execute_script(FAKE_FETCH, [{"delay": 20_000}])
    browser.find_element(*_by("#stylize-button")).click()
    progress = wait_for(browser, lambda d: (e := d.find_element(*_by("#progress"))).is_displayed() and e)
    assert progress.find_element(*_by(".spinner")).is_displayed()
    first = wait_for(
        browser,
        lambda d: re.fullmatch(r"Stylizing… (\d+\.\d) s", d.find_element(*_by("#progress-text")).text),
    )
    later = wait_for(
        browser,
        lambda d: (
            (m := re.fullmatch(r"Stylizing… (\d+\.\d) s", d.find_element(*_by("#progress-text")).text))
            and float(m.group(1)) >= float(first.group(1)) + 0.5
            and m
        ),
    )
    assert later
    browser.find_element(*_by("#cancel-button")).click()
    wait_for(browser, lambda d: not d.find_element(*_by("#progress")).is_displayed())
    assert browser.find_element(*_by("#status")).text == "Cancelled."
    assert browser.find_element(*_by("#error")).get_attribute("hidden")
    assert len(_history(browser)) == n


# ------------------------------------------------------------------------------- layout and access

VIEWPORTS = {"desktop": (1280, 900, False), "phone": (390, 844, True)}

LAYOUT_PROBLEMS = """
const width = window.innerWidth, problems = [];
const pageWidth = document.documentElement.scrollWidth;
if (pageWidth > width) problems.push(`page ${pageWidth} px wide`);
const visible = (e) => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
for (const e of document.querySelectorAll("button, input, select, a, img, canvas, label, output")) {
  if (!visible(e) || (e.type === "file")) continue;
  const r = e.getBoundingClientRect();
  const name = e.id || e.className || e.tagName;
  if (r.left < -1 || r.right > width + 1) problems.push(`${name} spans ${r.left}..${r.right}`);
}
for (const img of document.querySelectorAll("img")) {
  if (!visible(img)) continue;
  if (!img.complete || img.naturalWidth === 0) problems.push(`image not loaded: ${img.alt || img.src}`);
  if (!img.getAttribute("alt")) problems.push(`image without alt text: ${img.src}`);
}
for (const e of document.querySelectorAll("button, input, select, canvas")) {
  if (!visible(e) && e.type !== "file") continue;
  const named = (e.labels && e.labels.length) || e.getAttribute("aria-label") || (e.textContent || "").trim();
  if (!named) problems.push(`control without a label: ${e.outerHTML.slice(0, 80)}`);
}
return problems;
"""


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_page_fits_desktop_and_phone_widths(
    browser: Any, server: LiveServer, viewport: str, tmp_path: Path
) -> None:
    """At each width, after a result: nothing sticks out sideways, every image shown has loaded and has
    alt text, every control has a label; the screenshot is kept for people to look at."""
    w, h, mobile = VIEWPORTS[viewport]
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile},
    )
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})
    try:
        _open_page(browser, server)
        assert browser.execute_script("return window.innerWidth") == w
        wait_for(
            browser,
            lambda d: all(
                d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
                for i in d.find_elements(*_by(".sample img, #gallery .thumb img"))
            ),
        )
        assert browser.execute_script(LAYOUT_PROBLEMS) == []
        browser.find_element(*_by('.sample[data-sample="pier.jpg"]')).click()
        result_size(browser)
        _wait_history(browser, len(_history(browser)) or 1)
        if mobile:  # the result sits right under the photo choice, not below the whole form
            y = browser.execute_script(
                "return [document.getElementById('content-box').getBoundingClientRect().bottom,"
                " document.getElementById('compare').getBoundingClientRect().top,"
                " document.getElementById('style-box').getBoundingClientRect().top]"
            )
            assert y[0] <= y[1] < y[2]
            assert browser.find_element(*_by("#camera-input")).get_attribute("capture") == "environment"
            assert browser.find_element(*_by(".camera")).is_displayed()
        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.execute_script(LAYOUT_PROBLEMS) == []
        folder = Path(os.environ.get("STYLENORM_SCREENSHOT_DIR") or tmp_path)
        folder.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(folder / f"page-{viewport}.png"))
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


def test_the_layout_check_fails_on_a_broken_page(browser: Any, server: LiveServer) -> None:
    """The checks above can fail: an image that does not load and a control wider than the viewport."""
    _open_page(browser, server)
    browser.execute_script(
        "const img = document.createElement('img'); img.src = '/static/missing.png'; img.alt = 'gone';"
        "img.style.width = '20px'; img.style.height = '20px'; document.querySelector('main').append(img);"
        "const b = document.createElement('button'); b.textContent = 'wide'; b.style.width = '3000px';"
        "document.querySelector('footer').append(b);"
    )
    wait_for(browser, lambda d: d.execute_script("return document.querySelector('img[alt=gone]').complete"))
    problems = browser.execute_script(LAYOUT_PROBLEMS)
    assert any("image not loaded: gone" in p for p in problems)
    assert any(p.startswith("page ") for p in problems)


def test_every_control_is_reachable_by_keyboard(browser: Any, server: LiveServer) -> None:
    """Tab walks through the tabs, samples, thumbnails and the stylize button; Enter on a sample stylizes."""
    from selenium.webdriver.common.keys import Keys

    _open_page(browser, server)
    wait_for(browser, lambda d: d.find_elements(*_by("#gallery .thumb img")))
    from selenium.webdriver.common.action_chains import ActionChains

    seen = []
    for _ in range(60):
        ActionChains(browser).send_keys(Keys.TAB).perform()  # the keyboard, as a person presses it
        active = browser.switch_to.active_element
        seen.append(active.get_attribute("id") or active.get_attribute("class") or active.tag_name)
    for wanted in ("tab-stylize", "model-select", "sample", "thumb", "mix-toggle", "alpha", "stylize-button"):
        assert any(wanted in s for s in seen), (wanted, seen)
    browser.find_element(*_by('.sample[data-sample="cups.jpg"]')).send_keys(Keys.ENTER)
    wait_for(browser, lambda d: _history(d) and _history(d)[0].startswith("cups ×"))
