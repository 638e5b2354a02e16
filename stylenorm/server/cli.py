"""``stylenorm serve``: the HTTP server under uvicorn, settings from flags over STYLENORM_* and .env."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stylenorm import logs
from stylenorm.repository import MODELS_DIR_HELP


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve`` on the ``stylenorm`` command's subparsers."""
    p = subparsers.add_parser(
        "serve",
        help="serve the models of the repository over HTTP (API + web page)",
        description=(
            "Serve the models in models/ over HTTP: the API under /v1, the web page at /, /docs, /healthz, "
            "/readyz and /metrics. Every setting can also be given as an environment variable "
            "STYLENORM_<NAME> (e.g. STYLENORM_API_KEYS=key1,key2) or in a .env file; flags win."
        ),
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each with its own copy of the models (default %(default)s)",
    )
    p.add_argument("--models-dir", default=None, help=MODELS_DIR_HELP)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default: auto")
    p.add_argument("--max-batch-size", type=int, default=None, help="largest batch (1: no batching)")
    p.add_argument("--max-batch-delay-ms", type=float, default=None, help="how long a batch waits to fill")
    p.add_argument("--queue-size", type=int, default=None, help="requests waiting; beyond: 503")
    p.add_argument("--request-timeout-s", type=float, default=None, help="per-request deadline; beyond: 504")
    p.add_argument("--max-upload-bytes", type=int, default=None, help="largest request body")
    p.add_argument(
        "--keepalive-timeout-s", type=float, default=None, help="close idle keep-alive connections after this"
    )
    p.add_argument(
        "--header-timeout-s", type=float, default=None, help="close connections whose headers take longer"
    )
    p.add_argument("--body-timeout-s", type=float, default=None, help="408 for a body silent this long")
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="allow this origin by CORS (repeatable; default: CORS closed)",
    )
    p.add_argument("--no-docs", action="store_true", help="do not serve /docs, /redoc, /openapi.json")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default=None)
    p.add_argument(
        "--timeout-graceful-shutdown",
        type=float,
        default=None,
        help="seconds to finish running requests on SIGTERM (the shutdown_grace_s setting, default 30)",
    )
    p.set_defaults(func=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    """Settings from the environment/.env, with the flags that were given on top."""
    from stylenorm.server.settings import Settings

    overrides: dict[str, Any] = {}
    for flag, field in (
        ("models_dir", "models_dir"),
        ("device", "device"),
        ("max_batch_size", "max_batch_size"),
        ("max_batch_delay_ms", "max_batch_delay_ms"),
        ("queue_size", "queue_size"),
        ("request_timeout_s", "request_timeout_s"),
        ("max_upload_bytes", "max_upload_bytes"),
        ("keepalive_timeout_s", "keepalive_timeout_s"),
        ("header_timeout_s", "header_timeout_s"),
        ("body_timeout_s", "body_timeout_s"),
        ("cors_origin", "cors_origins"),
        ("log_level", "log_level"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "no_docs", False):
        overrides["docs_enabled"] = False
    if getattr(args, "timeout_graceful_shutdown", None) is not None:
        overrides["shutdown_grace_s"] = args.timeout_graceful_shutdown
    from pydantic import ValidationError

    from stylenorm.errors import SpecError

    try:
        base = Settings()
        return Settings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:  # a bad flag, STYLENORM_* variable or .env line: one clear line
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SpecError(f"invalid server settings: {problems}") from None


# the import names of the `server` extra's distributions (pyproject.toml)
_SERVER_EXTRA = (
    "fastapi", "fastapi_offline", "uvicorn", "multipart", "pydantic_settings", "prometheus_client"
)


def require_server_extra() -> None:
    """A clear error, not an ImportError traceback, when stylenorm was installed without the server."""
    import importlib.util

    from stylenorm.errors import SpecError

    missing = [name for name in _SERVER_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise SpecError(
            f"the server needs the 'server' extra ({', '.join(missing)} not installed): "
            'pip install "stylenorm[server]"'
        )


def run(args: argparse.Namespace) -> int:
    """``stylenorm serve``: run uvicorn until SIGINT/SIGTERM; returns the exit status."""
    require_server_extra()
    import uvicorn

    from stylenorm.errors import SpecError
    from stylenorm.runtime import tune_cpu_allocator
    from stylenorm.server.protocol import PROTOCOL

    settings = settings_from_args(args)
    if args.workers < 1:
        raise SpecError(f"--workers must be at least 1; got {args.workers}")
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SpecError("--device cuda was asked for, but no CUDA device is available; use --device cpu")
    if not Path(settings.models_dir).is_dir():
        logging.getLogger("stylenorm.server").warning("models folder %s does not exist", settings.models_dir)
    tune_cpu_allocator()
    # the level: --log-level > STYLENORM_LOG_LEVEL > .env > info, then the global -v/-q steps
    level = logs.level_from(getattr(args, "verbose", 0), getattr(args, "quiet", 0), settings.log_level)
    fmt = logs.format_from(getattr(args, "log_format", None) or settings.log_format)
    log_config = logs.config_dict(level, fmt)
    logs.configure_from(log_config)
    common = {
        "host": args.host,
        "port": args.port,
        "log_level": level,
        "log_config": log_config,  # every worker process configures its logging from it
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        "timeout_keep_alive": settings.keepalive_timeout_s,
        # --workers N: the supervisor's ping timeout (a starting worker answers only after importing torch)
        "timeout_worker_healthcheck": settings.worker_healthcheck_timeout_s,
        "server_header": False,
        "http": PROTOCOL,  # uvicorn's h11 protocol with a header deadline (stylenorm.server.protocol)
    }
    if args.workers == 1:
        from stylenorm.server.app import create_app

        uvicorn.run(create_app(settings), **common)
        return 0
    # several processes: each builds its own app (and models) from the same settings, handed on by env
    # (restored afterwards: a caller's process keeps the environment it had)
    saved_env = os.environ.copy()
    os.environ.update(settings.to_env())
    own_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if own_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="stylenorm-metrics-")
    else:  # the operator's folder (a volume, say): what a previous run left would be counted again
        from stylenorm.server.metrics import wipe_multiprocess_dir

        gone = wipe_multiprocess_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        logging.getLogger("stylenorm.server").info(
            "PROMETHEUS_MULTIPROC_DIR %s: removed %d metric files of a previous run",
            os.environ["PROMETHEUS_MULTIPROC_DIR"],
            gone,
        )
    try:
        uvicorn.run("stylenorm.server.app:create_app", factory=True, workers=args.workers, **common)
    finally:
        if own_dir:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        os.environ.clear()
        os.environ.update(saved_env)
    return 0
