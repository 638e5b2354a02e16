"""Server test fixtures: tiny model folders, a real uvicorn on loopback, image helpers."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image

from stylenorm.models import build, weights_to_save
from stylenorm.repository import ModelCard, save_model
from stylenorm.server.app import create_app
from stylenorm.server.protocol import PROTOCOL
from stylenorm.server.settings import Settings

ADAIN_ARGS = {"encoder": {"fmt": "random", "depth": 19, "last": "relu2_1", "seed": 0}}
GALLERY = ("warm", "cool", "grass")


# ------------------------------------------------------------------------------------------ images


def image_bytes(
    w: int = 32, h: int = 32, seed: int = 0, fmt: str = "PNG", mode: str = "RGB", **options: Any
) -> bytes:
    """A noise image of the given size, mode and format, as file bytes."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    img = rgb if mode == "RGB" else rgb.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def http_answer(sock: socket.socket) -> bytes:
    """One HTTP response's head and (small, Content-Length) body from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def decode(data: bytes) -> Image.Image:
    """An answer's image bytes -> a loaded Pillow image."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (IHDR rewritten, CRC fixed): a decompression bomb on paper."""
    import struct
    import zlib

    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return png[:16] + ihdr + crc + png[33:]


def swatch(color: tuple[int, int, int], size: int = 24, seed: int = 0) -> Image.Image:
    """A gallery style: a colour with some texture."""
    rng = np.random.default_rng(seed)
    base = np.array(color, dtype=np.float64)[None, None] + rng.normal(0, 25, (size, size, 3))
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


# ------------------------------------------------------------------------------------------ models


def _randomize(net: torch.nn.Module, seed: int) -> None:
    """Distinct style rows and non-trivial affines, so equality tests are not trivially true."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() <= 2 and name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif p.dim() <= 2 and name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _save(root: Path, card: ModelCard, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    net = build(card)
    _randomize(net, seed)
    folder = root / card.name
    save_model(folder, card, weights_to_save(card, net))
    return folder


def _gallery(folder: Path) -> None:
    (folder / "styles").mkdir(parents=True, exist_ok=True)
    colors = {"warm": (220, 120, 40), "cool": (40, 90, 200), "grass": (60, 160, 70)}
    for i, name in enumerate(GALLERY):
        swatch(colors[name], seed=i).save(folder / "styles" / f"{name}.png")


def make_models(root: Path, broken: bool = True) -> Path:
    """color (no weights), fast, multistyle (a, b, c), adain (+ gallery), and two broken folders."""
    root.mkdir(parents=True, exist_ok=True)
    color = _save(root, ModelCard(name="color", architecture="color", styles=list(GALLERY)))
    _gallery(color)
    _save(root, ModelCard(name="fast", architecture="fast"), seed=1)
    _save(root, ModelCard(name="multi", architecture="multistyle", styles=["a", "b", "c"]), seed=2)
    adain = _save(
        root,
        ModelCard(name="adain", architecture="adain", arguments=ADAIN_ARGS, styles=list(GALLERY)),
        seed=3,
    )
    _gallery(adain)
    if broken:
        (root / "garbled").mkdir()
        (root / "garbled" / "card.toml").write_text("name = [unclosed")
        lost = _save(root, ModelCard(name="lost", architecture="fast"), seed=4)
        (lost / "weights.safetensors").unlink()
    return root


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test repository (shared by every server of the session)."""
    return make_models(tmp_path_factory.mktemp("server") / "models")


# ------------------------------------------------------------------------------------------ servers


class LiveServer:
    """A real uvicorn serving an app on a free loopback port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            timeout_graceful_shutdown=settings.shutdown_grace_s,
            timeout_keep_alive=settings.keepalive_timeout_s,
            lifespan="on",
            http=PROTOCOL,  # as stylenorm serve: uvicorn's h11 with a header deadline
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=60.0)

    @property
    def engine(self) -> Any:
        """The app's inference engine."""
        return self.app.state.server.engine

    def start(self, ready: bool = True) -> LiveServer:
        """Start serving; with ready, also wait for /readyz."""
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        if ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Poll /readyz until 200."""
        deadline = time.monotonic() + timeout
        while self.client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready")
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut down (graceful) and wait for the thread."""
        self.client.close()
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


def settings_for(models_dir: Path, **overrides: Any) -> Settings:
    """Test settings: the tiny repository, no allocator tuning, small limits."""
    values: dict[str, Any] = {
        "models_dir": models_dir,
        "device": "cpu",
        "tune_allocator": False,
        "max_upload_bytes": 1_000_000,
        "max_pixels": 4_000_000,
        "max_side": 256,
        "max_batch_size": 8,
        "max_batch_delay_ms": 10.0,
        "queue_size": 64,
        "request_timeout_s": 30.0,
        "shutdown_grace_s": 5.0,
        "log_level": "warning",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.contextmanager
def live_server(models_dir: Path, ready: bool = True, **overrides: Any) -> Iterator[LiveServer]:
    """A LiveServer with test settings, stopped afterwards."""
    server = LiveServer(settings_for(models_dir, **overrides))
    try:
        yield server.start(ready)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[LiveServer]:
    """The shared server: default test settings over the tiny repository."""
    with live_server(models_dir) as s:
        yield s


@pytest.fixture()
def client(server: LiveServer) -> httpx.Client:
    """An httpx client of the shared server."""
    return server.client


# ------------------------------------------------------------------------------------------ browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
_absent = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
BROWSER_MISSING = (
    "the web-page tests need Debian's chromium and chromium-driver (make browser): "
    f"{', '.join(_absent)} not found"
    if _absent
    else ""
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium driven by selenium, with a fresh profile."""
    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="stylenorm-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
        # offline as on a machine without internet: every host but the loopback fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver: Any, condition: Any, timeout: float = 30) -> Any:
    """Poll condition(driver) until truthy (selenium's WebDriverWait)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def open_model(driver: Any, server: LiveServer, model: str) -> None:
    """Load the page and pick a model; returns once the page is set up for it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.get(f"{server.url}/?model={model}")  # the page opens that model's task with it picked
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.model") == model)
    picked = Select(driver.find_element(By.ID, "model-select")).first_selected_option
    assert picked.get_attribute("value") == model


def result_size(driver: Any, element_id: str = "result") -> tuple[int, int]:
    """Wait for a result image of the page (the stylized one by default) to load; its natural
    (width, height)."""
    from selenium.webdriver.common.by import By

    img = wait_for(
        driver,
        lambda d: (
            (e := d.find_element(By.ID, element_id)).is_displayed()
            and d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", e)
            and e
        ),
    )
    return tuple(driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img))
