"""The web page in a real headless Chromium (selenium): pick a model and a style, upload, stylize, see it.

Skipped only when Debian's chromium / chromedriver are not installed. The
screenshot of the page with a result goes to $STYLENORM_SCREENSHOT when set,
else into the test's tmp folder.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.server.conftest import BROWSER_MISSING, LiveServer, image_bytes, open_model, result_size, wait_for

pytestmark = pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)


def _landscape(w: int, h: int) -> bytes:
    """A small picture with a sky, a sun and hills (nicer to look at in the screenshot than noise)."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    sky = np.stack([0.45 + 0.3 * y, 0.65 + 0.2 * y, 0.95 - 0.1 * y], -1)
    sun = ((x - 0.75) ** 2 + ((y - 0.3) * h / w) ** 2) < 0.01
    hills = y > 0.62 + 0.08 * np.sin(9 * x)
    img = np.where(sun[..., None], [1.0, 0.85, 0.3], sky)
    img = np.where(hills[..., None], np.stack([0.2 + 0.1 * x, 0.55 - 0.2 * y, 0.2 + 0 * x], -1), img)
    buf = io.BytesIO()
    Image.fromarray((img * 255).astype(np.uint8), "RGB").save(buf, "PNG")
    return buf.getvalue()


def test_stylize_with_the_color_model_in_a_browser(
    browser: object, server: LiveServer, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    content = tmp_path / "content.png"
    content.write_bytes(_landscape(96, 64))
    open_model(browser, server, "color")
    # the gallery shows the thumbnails, fetched from the API
    wait_for(
        browser,
        lambda d: (
            all(
                d.execute_script("return arguments[0].naturalWidth > 0", i)
                for i in d.find_elements(By.CSS_SELECTOR, "#gallery .thumb img")
            )
            and len(d.find_elements(By.CSS_SELECTOR, "#gallery .thumb img")) == 3
        ),
    )
    assert not browser.find_element(By.ID, "style-upload").get_attribute("hidden")
    browser.find_element(By.CSS_SELECTOR, '#gallery .thumb[data-style="cool"]').click()
    assert (
        browser.find_element(By.CSS_SELECTOR, '#gallery .thumb[data-style="cool"]').get_attribute(
            "aria-pressed"
        )
        == "true"
    )
    browser.find_element(
        By.CSS_SELECTOR, '#gallery .thumb[data-style="warm"]'
    ).click()  # color takes one style
    pressed = browser.find_elements(By.CSS_SELECTOR, '#gallery .thumb[aria-pressed="true"]')
    assert [b.get_attribute("data-style") for b in pressed] == ["warm"]
    browser.find_element(By.ID, "content-input").send_keys(str(content))
    browser.find_element(By.ID, "stylize-button").click()
    assert result_size(browser) == (96, 64)
    assert browser.find_element(By.ID, "error").get_attribute("hidden")
    assert browser.find_element(By.ID, "result-size").text == "96×64"
    shot = Path(os.environ.get("STYLENORM_SCREENSHOT") or tmp_path / "page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    assert Image.open(shot).size[0] > 0


def test_mixing_styles_of_a_multistyle_model(browser: object, server: LiveServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    content = tmp_path / "content.jpg"
    content.write_bytes(image_bytes(40, 48, seed=4, fmt="JPEG"))
    open_model(browser, server, "multi")
    assert browser.find_element(By.ID, "alpha-row").get_attribute("hidden")  # multistyle takes no alpha
    assert browser.find_element(By.ID, "style-upload").get_attribute("hidden")
    # "a", the first style, is chosen from the start; "+" on "c" mixes it in
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, '#gallery .mix-toggle[data-style="c"]'))
    browser.find_element(By.CSS_SELECTOR, '#gallery .mix-toggle[data-style="c"]').click()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#selected-styles input.weight")) == 2
    browser.find_element(By.ID, "content-input").send_keys(str(content))
    browser.find_element(By.ID, "stylize-button").click()
    assert result_size(browser) == (40, 48)


def test_errors_are_shown_from_the_json_body(browser: object, server: LiveServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    open_model(browser, server, "color")
    browser.find_element(By.ID, "stylize-button").click()
    error = wait_for(browser, lambda d: (e := d.find_element(By.ID, "error")).is_displayed() and e)
    assert "Choose a photo first" in error.text
    bmp = tmp_path / "content.bmp"
    bmp.write_bytes(image_bytes(32, 32, fmt="BMP"))
    browser.find_element(By.ID, "content-input").send_keys(str(bmp))
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#gallery .thumb[data-style="grass"]'))
    browser.find_element(By.CSS_SELECTOR, '#gallery .thumb[data-style="grass"]').click()
    browser.find_element(By.ID, "stylize-button").click()
    wait_for(browser, lambda d: "415" in d.find_element(By.ID, "error").text)
    assert "not an image in an allowed format" in browser.find_element(By.ID, "error").text


def test_label_painting_helpers(browser: object, server: LiveServer) -> None:
    open_model(browser, server, "color")
    filled, grid = browser.execute_script("""
        const w = 6, h = 4, labels = new Uint8Array(w * h);
        for (let y = 0; y < h; y++) labels[y * w + 3] = 2;          // a wall at x = 3
        const n = window.stylenormPaint.floodFill(labels, w, h, 0, 0, 1);
        return [n, Array.from(labels)];
    """)
    assert filled == 12 and grid.count(1) == 12 and grid.count(2) == 4 and grid.count(0) == 8
    disc = browser.execute_script("""
        const labels = new Uint8Array(9 * 9);
        window.stylenormPaint.paintDisc(labels, 9, 9, 4, 4, 2, 5);
        return Array.from(labels).filter((v) => v === 5).length;
    """)
    assert disc == 13  # the lattice points within radius 2 of the centre
