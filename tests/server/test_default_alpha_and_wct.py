"""The WCT family served (the page, cached colouring statistics) and a model's own default alpha
(card ``contract.default_alpha``): what /v1/models shows, what a request without alpha gets, what
the page's slider starts at, and a clear refusal of a bad value."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm.repository import ModelCard
from tests.server.conftest import (
    ADAIN_ARGS,
    GALLERY,
    _gallery,
    _save,
    image_bytes,
    live_server,
    open_model,
    result_size,
    wait_for,
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("alpha") / "models"
    for name, contract in (("soft", {"default_alpha": 0.4}), ("plain", {}), ("odd", {"default_alpha": 0.5})):
        card = ModelCard(name=name, architecture="adain", arguments=ADAIN_ARGS, styles=list(GALLERY),
                         contract=contract)
        _gallery(_save(root, card, seed=3))
    card_file = root / "odd" / "card.toml"  # edited by hand to a value no model could have been saved with
    card_file.write_text(card_file.read_text().replace("default_alpha = 0.5", "default_alpha = 2"))
    return root


def test_a_request_without_alpha_gets_the_model_s_own(repository: Path) -> None:
    with live_server(repository) as server:
        assert server.client.get("/v1/models/soft").json()["options"]["default_alpha"] == 0.4
        assert server.client.get("/v1/models/plain").json()["options"]["default_alpha"] == 1.0
        content = image_bytes(48, 40)

        def stylized(model: str, **extra: str) -> bytes:
            r = server.client.post(
                "/v1/stylize", files={"content": ("c.png", content)},
                data={"model": model, "styles": "warm", "format": "png", **extra},
            )
            assert r.status_code == 200, r.text
            return r.content

        assert stylized("soft") == stylized("soft", alpha="0.4") != stylized("soft", alpha="1")
        assert stylized("plain") == stylized("plain", alpha="1")
        # a card whose default is out of range is unavailable, and says why
        unavailable = {m["name"]: m["reason"] for m in server.client.get("/v1/models").json()["unavailable"]}
        assert "default_alpha must be a number in [0, 1]" in unavailable["odd"]


def test_the_page_s_alpha_slider_starts_at_the_model_s_own(repository: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    with live_server(repository) as server:
        for model, want in (("soft", "0.4"), ("plain", "1")):
            open_model(browser, server, model)
            slider = browser.find_element(By.ID, "alpha")
            assert slider.get_attribute("value") == want
            assert browser.find_element(By.ID, "alpha-value").text == f"{float(want):.2f}"


WCT_CARD = ModelCard(
    name="wct", architecture="wct", styles=list(GALLERY), contract={"default_alpha": 0.6},
    arguments={"encoder": {"fmt": "random", "depth": 16, "last": "relu2_1", "seed": 0},
               "levels": ["relu1_1", "relu2_1"], "eps": 1e-5},
)


@pytest.fixture(scope="module")
def wct_repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(models folder with a tiny WCT model and its gallery, a 64×48 content photo)."""
    root = tmp_path_factory.mktemp("wct-page") / "models"
    _gallery(_save(root, WCT_CARD, seed=5))
    content = root.parent / "photo.png"
    pixels = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(content)
    return root, content


def test_a_wct_model_stylizes_through_the_page_at_its_default_alpha(
    wct_repository: tuple[Path, Path], browser: Any
) -> None:
    """The WCT family end to end in the browser: gallery thumbnail, upload, slider at the card's 0.6."""
    from selenium.webdriver.common.by import By

    root, content = wct_repository
    with live_server(root) as server:
        open_model(browser, server, "wct")
        assert browser.find_element(By.ID, "alpha").get_attribute("value") == "0.6"
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gallery .thumb img")) == 3)
        browser.find_element(By.CSS_SELECTOR, '#gallery .thumb[data-style="cool"]').click()
        browser.find_element(By.ID, "content-input").send_keys(str(content))
        browser.find_element(By.ID, "stylize-button").click()
        size = result_size(browser)
        assert size == (64, 48) and browser.find_element(By.ID, "error").get_attribute("hidden")
        # the page's request (alpha 0.6 from the slider) equals the API's default for this model
        direct = server.client.post(
            "/v1/stylize", files={"content": ("c.png", content.read_bytes())},
            data={"model": "wct", "styles": "cool", "format": "png"},
        )
        explicit = server.client.post(
            "/v1/stylize", files={"content": ("c.png", content.read_bytes())},
            data={"model": "wct", "styles": "cool", "format": "png", "alpha": "0.6"},
        )
        assert direct.status_code == 200 and direct.content == explicit.content
        assert Image.open(io.BytesIO(direct.content)).size == (64, 48)


def _hits(server: Any) -> float:
    text = server.client.get("/metrics").text
    found = re.search(r'^stylenorm_style_cache_total\{result="hit"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_server_caches_wct_colouring_statistics(wct_repository: tuple[Path, Path]) -> None:
    """A named style is encoded and its covariance square-rooted once, at warm-up; an uploaded one on
    first use. Later requests reuse the cached statistics and give the library's uncached image."""
    from stylenorm import models
    from stylenorm.inference.stylize import stylize

    root, content = wct_repository
    style_png = (root / "wct" / "styles" / "grass.png").read_bytes()
    with live_server(root) as server:
        def post(**files_and_data: Any) -> bytes:
            files = {"content": ("c.png", content.read_bytes())}
            if "style" in files_and_data:
                files["style"] = ("s.png", files_and_data.pop("style"))
            r = server.client.post("/v1/stylize", files=files, data={"model": "wct", "format": "png",
                                                                     **files_and_data})
            assert r.status_code == 200, r.text
            return r.content

        before = _hits(server)
        first = post(styles="cool")  # the gallery's statistics were computed at warm-up: both hit
        assert post(styles="cool") == first and _hits(server) == before + 2
        uploaded = post(style=style_png)  # an upload: computed on first use, then reused
        assert post(style=style_png) == uploaded and _hits(server) == before + 3
    model = models.load(root / "wct")
    pixels = torch.from_numpy(np.array(Image.open(content).convert("RGB"))).permute(2, 0, 1)[None] / 255
    want = stylize(model, pixels.float(), ["cool"], alpha=0.6)
    got = torch.from_numpy(np.array(Image.open(io.BytesIO(first)).convert("RGB"))).permute(2, 0, 1)[None]
    assert (got.float() / 255 - want).abs().max() <= 1.5 / 255
