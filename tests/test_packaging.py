"""Packaging as the ecosystem expects: the lock file, the version, the licence, and the model-folder resolver.

The slow test builds the wheel, installs it (not editable) into a fresh venv and runs it from another
directory: ``stylenorm models``, a stylize, and the server on ``STYLENORM_MODELS_DIR``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from importlib.metadata import version as dist_version
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import stylenorm
from stylenorm.repository import MODELS_DIR_ENV, models_dir

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", line)
        assert match, f"constraints.txt: {line!r} is not a 'name==version' pin"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in extra]
    return [r for r in reqs if canonicalize_name(r.name) != "stylenorm"]


# ------------------------------------------------------------------------------------ the lock file


def test_the_lock_pins_every_dependency_within_its_range() -> None:
    pins = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} (pyproject.toml) is not pinned in constraints.txt: scripts/lock.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}"
        )
    assert pins["torch"].startswith("2.14.1") and pins["torchvision"].startswith("0.29.2")  # the pair


def test_the_lock_pins_what_is_installed_here() -> None:
    """This environment was installed from the lock: a package whose version differs means a stale lock."""
    pins = _lock()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert dist_version(req.name) == pins[name], f"{req.name}: installed {dist_version(req.name)}"


def test_every_pip_install_uses_the_lock() -> None:
    sources = {
        "Makefile": (ROOT / "Makefile").read_text(),
        "docker/Dockerfile": (ROOT / "docker" / "Dockerfile").read_text(),
        "docker/Dockerfile.cpu": (ROOT / "docker" / "Dockerfile.cpu").read_text(),
    }
    for where, text in sources.items():
        text = text.replace("\\\n", " ")
        installs = [ln for ln in text.splitlines() if re.search(r"pip install(?! --quiet --upgrade pip)", ln)]
        assert installs, where
        for line in installs:
            assert "-c constraints.txt" in line, f"{where}: a pip install without the lock: {line.strip()}"
            assert "-r constraints.txt" not in line, f"{where}: the lock is constraints, not requirements"


# ------------------------------------------------------------------------- version, licence, typing


def test_the_version_comes_from_the_package_metadata() -> None:
    assert stylenorm.__version__ == dist_version("stylenorm") == PYPROJECT["project"]["version"]
    for cmd in (["stylenorm", "--version"], [sys.executable, "-m", "stylenorm", "--version"]):
        exe = Path(sys.executable).with_name("stylenorm") if cmd[0] == "stylenorm" else None
        out = subprocess.run(
            [str(exe), *cmd[1:]] if exe else cmd, capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == f"stylenorm {stylenorm.__version__}"
    for dockerfile in ("Dockerfile", "Dockerfile.cpu"):
        text = (ROOT / "docker" / dockerfile).read_text()
        assert f'org.opencontainers.image.version="{stylenorm.__version__}"' in text, dockerfile


def test_licence_and_typing_marker() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert (ROOT / "stylenorm" / "py.typed").is_file()


def test_log_levels_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenorm import logs
    from stylenorm.errors import SpecError

    monkeypatch.delenv(logs.LEVEL_ENV, raising=False)
    assert logs.level_from() == "info"
    assert logs.level_from(verbose=1) == "debug" and logs.level_from(verbose=5) == "debug"
    assert logs.level_from(quiet=1) == "warning" and logs.level_from(quiet=9) == "critical"
    monkeypatch.setenv(logs.LEVEL_ENV, "ERROR")
    assert logs.level_from() == "error" and logs.level_from(verbose=1) == "warning"
    monkeypatch.setenv(logs.LEVEL_ENV, "loud")
    with pytest.raises(SpecError, match="STYLENORM_LOG_LEVEL"):
        logs.level_from()


def test_training_info_lines_reach_stderr_as_text_or_json(tmp_path: Path) -> None:
    """The CLI configures logging for every command (it used to be `serve` only): training's INFO shows."""
    from tests.server.conftest import image_bytes

    (tmp_path / "content").mkdir()
    for i in range(2):
        (tmp_path / "content" / f"c{i}.png").write_bytes(image_bytes(40, 40, seed=i))
    (tmp_path / "style.png").write_bytes(image_bytes(40, 40, seed=9))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLENORM_LOG")}

    def train(*flags: str, out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stylenorm", *flags, "train", "fast", "--content", "content",
             "--style", "style.png", "--out", f"models/{out}", "--run-dir", f"runs/{out}", "--steps", "2",
             "--batch-size", "1", "--image-size", "32", "--encoder", "random", "--workers", "0"],
            cwd=tmp_path, env=env, capture_output=True, text=True,
        )

    text = train(out="a")
    assert text.returncode == 0, text.stderr
    assert re.search(r"INFO stylenorm\.train\.engine step 2: loss=", text.stderr), text.stderr
    assert "INFO stylenorm.train.checkpoint checkpoint" in text.stderr
    quiet = train("-q", out="b")
    assert quiet.returncode == 0 and " INFO " not in quiet.stderr
    as_json = train("--log-format", "json", out="c")
    records = [json.loads(ln) for ln in as_json.stderr.splitlines() if ln.startswith("{")]
    assert any(r["logger"] == "stylenorm.train.engine" and r["message"].startswith("step 2") for r in records)
    bad = subprocess.run(
        [sys.executable, "-m", "stylenorm", "--log-format", "xml", "norms"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


# ---------------------------------------------------------------------------- the model folder


def test_the_model_folder_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    checkout = ROOT / "models"  # this test runs from the checkout (an editable install)
    assert models_dir().resolve() == checkout.resolve()
    (tmp_path / "models").mkdir()
    assert models_dir() == Path("models")  # ./models wins over the checkout's
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "env-models"))
    assert models_dir() == tmp_path / "env-models"  # the environment over ./models
    assert models_dir("flag-models") == Path("flag-models")  # the flag over everything


def test_the_server_settings_use_the_same_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylenorm.server.settings import Settings

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert Settings(_env_file=None).models_dir == tmp_path


# ------------------------------------------------------------------------- the wheel, installed


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_wheel_installs_and_serves_from_another_directory(tmp_path: Path) -> None:
    from tests.server.conftest import image_bytes, make_models

    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("stylenorm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "stylenorm/py.typed" in names and "stylenorm/server/static/index.html" in names
    assert not [n for n in names if n.startswith(("server/", "models/", "tests/"))], "stray top-level names"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, cli = venv / "bin" / "python", venv / "bin" / "stylenorm"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True)
    # the dependencies (GBs of torch) come from this environment's site-packages, after the venv's own:
    # its stylenorm is the wheel's, not this checkout
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    Path(purelib, "_host_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (MODELS_DIR_ENV, "PYTHONPATH")}
    where = subprocess.run(
        [str(py), "-c", "import stylenorm as s, stylenorm.server; print(s.__file__, s.__version__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert where.startswith(purelib) and where.split()[1] == stylenorm.__version__, where

    # no flag, no variable, no ./models: nothing found, and it says where it looked (not site-packages)
    empty = subprocess.run([str(cli), "models"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert "site-packages" not in empty.stdout + empty.stderr, empty

    models = make_models(tmp_path / "repo" / "models", broken=False)
    env[MODELS_DIR_ENV] = str(models)
    listed = subprocess.run([str(cli), "models"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and {"color", "fast", "multi", "adain"} <= set(
        ln.split()[0] for ln in listed.stdout.splitlines()[1:]
    ), listed
    (elsewhere / "c.png").write_bytes(image_bytes(48, 40))
    stylized = subprocess.run(
        [str(cli), "stylize", "--model", "multi", "--style", "b", "--content", "c.png", "--out", "o.png"],
        cwd=elsewhere, env=env, capture_output=True, text=True,
    )
    assert stylized.returncode == 0 and (elsewhere / "o.png").is_file(), stylized

    port = _free_port()
    proc = subprocess.Popen(
        [str(py), "-m", "stylenorm", "-q", "serve", "--port", str(port)],
        cwd=elsewhere, env={**env, "STYLENORM_TUNE_ALLOCATOR": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the installed server did not get ready"
            time.sleep(0.2)
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        assert health["version"] == stylenorm.__version__ and health["models_loaded"] == 4
        r = httpx.post(
            f"{url}/v1/stylize",
            files={"content": ("c.png", image_bytes(64, 48))},
            data={"model": "color", "styles": "warm"},
            timeout=60,
        )
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200 and "/static-offline-docs/" in docs.text
    finally:
        proc.terminate()
        proc.wait(30)
