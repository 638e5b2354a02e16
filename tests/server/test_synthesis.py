"""/v1/synthesize (spade) and /v1/generate (cgan) with tiny real models, and the painting page."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm.models import build, load, weights_to_save
from stylenorm.repository import ModelCard, save_model
from tests.server.conftest import (
    BROWSER_MISSING,
    LiveServer,
    decode,
    image_bytes,
    live_server,
    open_model,
    result_size,
    wait_for,
    with_declared_size,
)

PALETTE = [[120, 180, 240], [60, 160, 70], [30, 60, 160]]
CLASSES = ["sky", "grass", "water"]


@pytest.fixture(scope="module")
def gan_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("gan") / "models"
    torch.manual_seed(0)
    scene = ModelCard(
        name="scene",
        architecture="spade",
        contract={"classes": CLASSES, "palette": PALETTE},
        arguments={"label_nc": 3, "ngf": 4, "z_dim": 8, "crop_size": 64, "use_vae": True, "hidden": 8},
    )
    save_model(root / "scene", scene, weights_to_save(scene, build(scene)))
    (root / "scene" / "example.png").write_bytes(_label_png(_scene_ids()))  # the painting's starting map
    digits = ModelCard(
        name="digits",
        architecture="cgan",
        contract={"classes": ["zero", "one", "two"]},
        arguments={"num_classes": 3, "z_dim": 8, "ngf": 4, "image_size": 32},
    )
    save_model(root / "digits", digits, weights_to_save(digits, build(digits)))
    with live_server(root) as s:
        yield s


CANVAS_COUNTS = """
const ctx = document.getElementById('label-canvas').getContext('2d');
const d = ctx.getImageData(0, 0, 64, 64).data, out = {};
for (let i = 0; i < d.length; i += 4) {
    const k = d[i] + ',' + d[i + 1] + ',' + d[i + 2];
    out[k] = (out[k] || 0) + 1;
}
return out;
"""


def _label_png(ids: np.ndarray, colour: bool = True, fmt: str = "PNG") -> bytes:
    img = (
        Image.fromarray(np.asarray(PALETTE, np.uint8)[ids], "RGB")
        if colour
        else Image.fromarray(ids.astype(np.uint8), "L")
    )
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def _scene_ids(h: int = 64, w: int = 64) -> np.ndarray:
    ids = np.zeros((h, w), np.int64)
    ids[h // 2 :, :] = 1
    ids[3 * h // 4 :, w // 2 :] = 2
    return ids


def test_models_describe_classes_palette_and_size(gan_server: LiveServer) -> None:
    scene = gan_server.client.get("/v1/models/scene").json()
    assert scene["kind"] == "synthesize" and scene["classes"] == CLASSES and scene["palette"] == PALETTE
    assert scene["size"] == [64, 64] and scene["options"] is None
    digits = gan_server.client.get("/v1/models/digits").json()
    assert digits["kind"] == "generate" and digits["classes"] == ["zero", "one", "two"]


def test_synthesize_equals_the_library_and_repeats_with_a_seed(gan_server: LiveServer) -> None:
    from stylenorm.inference.synthesize import labels_from_image, synthesize

    c = gan_server.client
    labels = _label_png(_scene_ids())
    first = c.post("/v1/synthesize", files={"labels": ("l.png", labels)}, data={"seed": "5"})
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png" and first.headers["x-seed"] == "5"
    assert decode(first.content).size == (64, 64)
    again = c.post(
        "/v1/synthesize", files={"labels": ("l.png", labels)}, data={"seed": "5", "model": "scene"}
    )
    assert again.content == first.content
    model = load(gan_server.settings.models_dir / "scene")
    expected = synthesize(model, labels_from_image(model, labels), None, 5)
    got = torch.from_numpy(np.asarray(decode(first.content), np.float32) / 255).permute(2, 0, 1)
    assert (got - expected[0]).abs().max() <= 1 / 255 + 1e-6
    other = c.post("/v1/synthesize", files={"labels": ("l.png", labels)}, data={"seed": "6"})
    assert other.content != first.content  # a VAE model: the seed picks z
    index = c.post(
        "/v1/synthesize",
        files={"labels": ("l.png", _label_png(_scene_ids(), colour=False))},
        data={"seed": "5"},
    )
    assert index.status_code == 200 and index.content == first.content  # the same map, as indices
    styled = c.post(
        "/v1/synthesize",
        files={"labels": ("l.png", labels), "style": ("s.png", image_bytes(48, 48))},
        data={"format": "jpeg"},
    )
    assert styled.status_code == 200 and styled.headers["content-type"] == "image/jpeg"
    assert int(styled.headers["x-seed"]) >= 0


def _foreign_colour_png() -> bytes:
    img = np.asarray(PALETTE, np.uint8)[_scene_ids()]
    img[0, 0] = [255, 0, 255]
    buf = io.BytesIO()
    Image.fromarray(img, "RGB").save(buf, "PNG")
    return buf.getvalue()


BAD_LABELS = {
    "colour not in the palette": (_foreign_colour_png(), 422),
    "jpeg": (_label_png(_scene_ids(), fmt="JPEG"), 422),
    "index out of range": (_label_png(np.full((64, 64), 9), colour=False), 422),
    "other aspect ratio": (_label_png(_scene_ids(64, 32)), 422),
    "bmp": (_label_png(_scene_ids(), fmt="BMP"), 415),
    "bomb": (with_declared_size(image_bytes(8, 8, mode="1"), 30000, 30000), 413),
    "empty": (b"", 422),
    "text": (b"labels" * 50, 415),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_bad_label_maps(gan_server: LiveServer, case: str) -> None:
    data, status = BAD_LABELS[case]
    r = gan_server.client.post("/v1/synthesize", files={"labels": ("l.png", data)})
    assert r.status_code == status, r.text
    assert r.json()["error"]["message"]
    assert gan_server.client.get("/healthz").status_code == 200


def test_synthesize_model_checks(gan_server: LiveServer) -> None:
    c = gan_server.client
    labels = _label_png(_scene_ids())
    r = c.post("/v1/synthesize", files={"labels": ("l.png", labels)}, data={"model": "digits"})
    assert r.status_code == 422 and "synthesize" in r.json()["error"]["message"]
    r = c.post("/v1/synthesize", files={"labels": ("l.png", labels)}, data={"model": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_model"
    r = c.post("/v1/synthesize", files={"labels": ("l.png", labels)}, data={"seed": "-1"})
    assert r.status_code == 422


def test_generate_json_and_form(gan_server: LiveServer) -> None:
    c = gan_server.client
    r = c.post("/v1/generate", json={"class_name": "one", "count": 3, "seed": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "digits" and body["seed"] == 1 and body["media_type"] == "image/png"
    images = [decode(base64.b64decode(b)) for b in body["images"]]
    assert len(images) == 3 and all(im.size == (32, 32) for im in images)
    again = c.post("/v1/generate", data={"class_name": "one", "count": "3", "seed": "1", "model": "digits"})
    assert again.status_code == 200 and again.json()["images"] == body["images"]
    fresh = c.post("/v1/generate", json={"class_name": "two"})
    assert fresh.status_code == 200 and len(fresh.json()["images"]) == 1 and fresh.json()["seed"] >= 0
    webp = c.post("/v1/generate", json={"class_name": "two", "format": "webp"})
    assert webp.json()["media_type"] == "image/webp"
    unknown = c.post("/v1/generate", json={"class_name": "seven"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_class"
    for bad in (
        {"class_name": "one", "count": 17},
        {"class_name": "one", "count": 10**9},
        {"count": 2},
        {"class_name": "one", "extra": 1},
        {"class_name": "one", "model": "scene"},
    ):
        r = c.post("/v1/generate", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert c.post("/v1/generate", json=["one"]).status_code == 422


@pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)
def test_paint_a_label_map_and_synthesize_in_the_browser(browser: object, gan_server: LiveServer) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    open_model(browser, gan_server, "scene")
    browser.find_element(By.ID, "clear-canvas").click()  # the page starts from the example map
    chips = browser.find_elements(By.CSS_SELECTOR, "#class-list .class-chip")
    assert [c.text for c in chips] == ["sky (eraser)", "grass", "water"]
    chips[2].click()  # water
    assert chips[2].get_attribute("aria-checked") == "true"
    canvas = browser.find_element(By.ID, "label-canvas")
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(
        canvas, -w // 4, h // 4
    ).click_and_hold().move_by_offset(w // 2, 0).release().perform()
    browser.find_element(By.CSS_SELECTOR, 'input[name="tool"][value="fill"]').click()
    chips[1].click()  # grass, flood-filled into the sky region
    ActionChains(browser).move_to_element_with_offset(canvas, 0, -h // 3).click().perform()
    counts = browser.execute_script(CANVAS_COUNTS)
    assert set(counts) == {"60,160,70", "30,60,160"}, counts  # only palette colours: grass and water
    assert counts["30,60,160"] > 150  # one continuous stroke across half the canvas, not two dots
    browser.find_element(By.ID, "seed").send_keys("3")
    browser.find_element(By.ID, "synthesize-button").click()
    assert result_size(browser, "synth-result") == (64, 64)
    assert browser.find_element(By.ID, "synth-seed").text == "seed 3"
    assert browser.find_element(By.ID, "error").get_attribute("hidden")
    shot = os.environ.get("STYLENORM_SCREENSHOT_SYNTH")
    if shot:
        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(shot)


@pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)
def test_the_page_lists_generated_images(browser: object, gan_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    open_model(browser, gan_server, "digits")
    count = browser.find_element(By.ID, "gen-count")
    count.clear()
    count.send_keys("3")
    browser.find_element(By.ID, "generate-button").click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gen-results img")) == 3)




def test_a_synthesis_model_serves_its_example_map(gan_server: LiveServer) -> None:
    c = gan_server.client
    scene = c.get("/v1/models/scene").json()
    assert scene["example"] == "/v1/models/scene/example"
    r = c.get(scene["example"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (gan_server.settings.models_dir / "scene" / "example.png").read_bytes()
    assert c.get(scene["example"], headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert c.get("/v1/models/digits").json()["example"] is None
    missing = c.get("/v1/models/digits/example")
    assert missing.status_code == 404 and "no example label map" in missing.json()["error"]["message"]
    assert c.get("/v1/models/nope/example").json()["error"]["code"] == "unknown_model"


@pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)
def test_paint_from_the_example_map_with_undo_and_download(browser: object, gan_server: LiveServer) -> None:
    """The page starts from the model's example map (legend beside it); a stroke, undo (button and
    Ctrl+Z), clear and the example button; the synthesis comes with a download."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_model(browser, gan_server, "scene")
    ids, counts = np.unique(_scene_ids(), return_counts=True)
    example = {",".join(map(str, PALETTE[k])): int(n) for k, n in zip(ids, counts, strict=True)}
    wait_for(browser, lambda d: d.execute_script(CANVAS_COUNTS) == example)
    legend = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#class-list .class-chip")]
    assert legend == ["sky (eraser)", "grass", "water"]
    undo = browser.find_element(By.ID, "undo-button")
    assert not undo.is_enabled()  # nothing painted yet
    browser.execute_script(
        "const s = document.getElementById('brush-size'); s.value = 20; s.dispatchEvent(new Event('input'));"
    )
    assert browser.find_element(By.ID, "brush-value").text == "20"
    canvas = browser.find_element(By.ID, "label-canvas")
    w, h = canvas.size["width"], canvas.size["height"]
    browser.find_elements(By.CSS_SELECTOR, "#class-list .class-chip")[2].click()  # water
    stroke = ActionChains(browser).move_to_element_with_offset(canvas, -w // 4, -h // 4).click_and_hold()
    stroke.move_by_offset(w // 2, 0).release().perform()
    painted = browser.execute_script(CANVAS_COUNTS)
    assert painted["30,60,160"] > example["30,60,160"] + 200  # a 20 px wide stroke of water across the sky
    undo.click()
    assert browser.execute_script(CANVAS_COUNTS) == example
    assert not undo.is_enabled()
    browser.find_element(By.ID, "clear-canvas").click()
    assert browser.execute_script(CANVAS_COUNTS) == {"120,180,240": 64 * 64}
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    assert browser.execute_script(CANVAS_COUNTS) == example
    browser.find_element(By.ID, "clear-canvas").click()
    browser.find_element(By.ID, "example-button").click()
    wait_for(browser, lambda d: d.execute_script(CANVAS_COUNTS) == example)
    seed = browser.find_element(By.ID, "seed")
    seed.clear()
    seed.send_keys("4")
    browser.find_element(By.ID, "synthesize-button").click()
    link = wait_for(browser, lambda d: (e := d.find_element(By.ID, "synth-download")).is_displayed() and e)
    assert link.get_attribute("download") == "scene-seed4.png"
    assert result_size(browser, "synth-result")[0] == 64


@pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)
def test_generate_a_class_in_one_click_and_again_with_its_seed(
    browser: object, gan_server: LiveServer
) -> None:
    from selenium.webdriver.common.by import By

    open_model(browser, gan_server, "digits")
    buttons = browser.find_elements(By.CSS_SELECTOR, "#gen-class-buttons .class-button")
    assert [b.text for b in buttons] == ["zero", "one", "two"]
    assert not browser.find_element(By.ID, "gen-class").is_displayed()  # few classes: buttons instead
    seed = browser.find_element(By.ID, "gen-seed")
    seed.clear()
    seed.send_keys("11")
    buttons[2].click()
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gen-results img")) == 8)
    images = browser.find_elements(By.CSS_SELECTOR, "#gen-results img")
    assert images[0].get_attribute("alt") == "generated two, 1 of 8 (seed 11)"
    first = [i.get_attribute("src") for i in images]
    assert buttons[2].get_attribute("aria-checked") == "true"
    browser.find_element(By.ID, "generate-button").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "generate-button").is_enabled())
    def shown(d: Any) -> list[str]:
        return [i.get_attribute("src") for i in d.find_elements(By.CSS_SELECTOR, "#gen-results img")]

    wait_for(browser, lambda d: shown(d) == first)
    assert "seed 11" in browser.find_element(By.ID, "status").text


@pytest.mark.skipif(bool(BROWSER_MISSING), reason=BROWSER_MISSING)
def test_tabs_offer_the_tasks_the_loaded_models_can_do(browser: object, gan_server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(gan_server.url + "/")
    wait_for(browser, lambda d: d.execute_script("return document.body.dataset.model"))
    tabs = {
        t.get_attribute("data-task"): t for t in browser.find_elements(By.CSS_SELECTOR, "#tasks [role=tab]")
    }
    assert not tabs["stylize"].is_displayed()  # no style model here
    for task, model in (("synthesize", "scene"), ("generate", "digits")):
        tabs[task].click()
        wait_for(browser, lambda d, m=model: d.execute_script("return document.body.dataset.model") == m)
        assert tabs[task].get_attribute("aria-selected") == "true"
        assert browser.find_element(By.ID, f"{task}-panel").is_displayed()
        options = browser.find_elements(By.CSS_SELECTOR, "#model-select option")
        assert [o.get_attribute("value") for o in options] == [model]

