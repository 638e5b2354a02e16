"""Server settings: one pydantic-settings schema for the environment (``STYLENORM_*``), ``.env`` and the CLI.

List settings (``api_keys``, ``cors_origins``) read from the environment as a
JSON list or as comma-separated text: ``STYLENORM_API_KEYS=key1,key2``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stylenorm.repository import models_dir as resolve_models_dir
from stylenorm.runtime import InferencePath, MemoryFormat, Precision, inference_path

ENV_PREFIX = "STYLENORM_"
# Measured memory per pixel (peak RSS over a forward pass of each shipped model at 1024×768, batches 1 and 4):
FORWARD_BYTES_PER_PIXEL = 1200  # a float32 forward pass of the shipped nets on a CPU: 1.0-1.13 kB a pixel
UPLOAD_BYTES_PER_PIXEL = 16  # a decoded upload: uint8 RGB, then float32 (1, 3, H, W), 15 bytes


def _split_list(value: Any) -> Any:
    """'a,b' or '["a", "b"]' -> ['a', 'b']; lists pass through."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything an operator can set; each field is also the env variable STYLENORM_<FIELD NAME>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    models_dir: Path = Field(
        default_factory=resolve_models_dir,
        description="the model repository to serve (default: ./models, else the checkout's models/)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")
    precision: Precision = Field(
        "auto", description="autocast dtype of the models: auto = float16 on CUDA, bfloat16 on a CPU with "
        "native bf16 (AVX512_BF16/AMX; emulated bf16 is ~100× slower), else float32",
    )
    memory_format: MemoryFormat = Field(
        "auto", description="auto = channels_last (measured faster on CPU and CUDA), or contiguous",
    )
    max_upload_bytes: int = Field(20_000_000, ge=1024, description="largest request body, all files together")
    max_pixels: int = Field(16_000_000, ge=256, description="largest decoded input image (width × height)")
    max_pixels_in_flight: int = Field(
        64_000_000, ge=256, description="decoded upload pixels held at once by stylize requests (≈ 16 bytes "
        "each decoded): beyond, 503 busy; one request above it, 413",
    )
    max_side: int = Field(1024, ge=16, le=16384, description="largest output side; requests may ask for less")
    style_max_side: int = Field(512, ge=16, le=4096, description="uploaded style images are bounded to this")
    max_untiled_pixels: int = Field(
        4_000_000, ge=256, description="contents above this many pixels run alone, in exact tiles"
    )
    max_batch_size: int = Field(
        8, ge=1, le=64, description="largest batch of one forward pass (1: no batching)"
    )
    max_batch_pixels: int = Field(
        4_194_304, ge=256, description="most content pixels in one forward pass (a batch stops short of it; "
        "one image above it runs alone, in tiles beyond max_untiled_pixels): a pass's memory grows with its "
        "pixels, about 1.1 kB each for the shipped nets on a CPU",
    )
    max_batch_delay_ms: float = Field(
        5.0, ge=0.0, le=1000.0, description="how long the first request of a batch waits for others"
    )
    queue_size: int = Field(64, ge=1, le=100_000, description="requests waiting for the worker; beyond: 503")
    request_timeout_s: float = Field(30.0, gt=0.0, le=3600.0, description="per-request deadline; beyond: 504")
    header_timeout_s: float = Field(
        10.0, gt=0.0, le=3600.0, description="a connection must send its request headers within this long "
        "of opening (or of its first byte after a keep-alive wait); else it is closed",
    )
    body_timeout_s: float = Field(
        15.0, gt=0.0, le=3600.0, description="a request body that sends nothing this long is answered 408"
    )
    shutdown_grace_s: float = Field(
        30.0, gt=1.0, le=3600.0, description="on SIGTERM, running requests get this long (uvicorn's graceful "
        "timeout; --timeout-graceful-shutdown); those still waiting 1 s before its end are answered 503 "
        "shutting_down in JSON, so none is cut off with a bare 500. Keep it below the orchestrator's grace",
    )
    keepalive_timeout_s: float = Field(
        15.0,
        gt=0.0,
        le=3600.0,
        description=(
            "idle keep-alive connections are closed after this long; keep it above the clients' own idle "
            "expiry (httpx 5 s, nginx upstream 4 s), or a request can be sent on a connection being closed"
        ),
    )
    worker_healthcheck_timeout_s: int = Field(
        60,
        ge=1,
        le=3600,
        description=(
            "with --workers N: a worker that does not answer the supervisor's ping this long is killed and "
            "restarted; a worker starting up imports torch and loads models, which under CPU load takes "
            "far longer than uvicorn's 5 s default (it then restarts forever)"
        ),
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="accepted API keys (X-API-Key or Bearer); empty: no auth"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="origins allowed by CORS; empty: CORS closed"
    )
    metrics_public: bool = Field(
        False,
        description=(
            "serve /metrics without an API key even when api_keys are set, for the cluster's scraper "
            "(keep /metrics off the public side of the proxy)"
        ),
    )
    docs_enabled: bool = Field(True, description="serve /docs, /redoc and /openapi.json")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="text, or one JSON object a line")
    optimise_max_side: int = Field(
        512,
        ge=16,
        le=4096,
        description="largest output side of an optimisation job (seconds per iteration grow with the pixels)",
    )
    optimise_max_iterations: int = Field(300, ge=1, le=2000, description="most iterations a job may ask for")
    optimise_queue_size: int = Field(4, ge=1, le=1000, description="optimisation jobs waiting; beyond: 503")
    optimise_time_limit_s: float = Field(
        900.0, gt=0.0, le=86400.0, description="an optimisation job running longer is stopped (failed, 504)"
    )
    job_keep_s: float = Field(
        900.0, gt=0.0, description="finished jobs (and their images) are kept this long"
    )
    job_max_kept: int = Field(32, ge=1, le=10_000, description="finished jobs kept at most (oldest dropped)")
    default_model: str = Field("color-transfer", description="model of /v1/stylize when none is named")
    style_cache_size: int = Field(256, ge=1, description="cached statistics of uploaded style images")
    thumbnail_size: int = Field(128, ge=16, le=512, description="longer side of style thumbnails")
    warmup: bool = Field(True, description="run one tiny inference per model before reporting ready")
    tune_allocator: bool = Field(True, description="stylenorm.runtime.tune_cpu_allocator() at start")

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("api_keys")
    @classmethod
    def _no_empty_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        if any(not k.get_secret_value() for k in keys):
            raise ValueError("an API key may not be empty")
        return keys

    def resolved_device(self) -> str:
        """'cpu' or 'cuda' (auto: cuda when torch sees a GPU)."""
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def inference_path(self) -> InferencePath:
        """The dtype and memory format models run in on the resolved device."""
        return inference_path(self.resolved_device(), self.precision, self.memory_format)

    def memory_bound(self, idle_bytes: int) -> int:
        """The worst case of the server's resident memory under stylize load, given its memory once
        ready (models loaded and warmed): one forward pass at its largest (a batch stops at
        max_batch_pixels; an image alone holds at most max_untiled_pixels, larger ones run in 512-px
        tiles) plus every upload the pixel budget admits, decoded. Optimisation jobs and synthesis add
        their own (one at a time each)."""
        forward = max(self.max_batch_pixels, self.max_untiled_pixels) * FORWARD_BYTES_PER_PIXEL
        return idle_bytes + forward + self.max_pixels_in_flight * UPLOAD_BYTES_PER_PIXEL

    def to_env(self) -> dict[str, str]:
        """These settings as STYLENORM_* variables (how `stylenorm serve --workers N` hands them on)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "api_keys":
                text = json.dumps([k.get_secret_value() for k in value])
            elif isinstance(value, list):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[ENV_PREFIX + name.upper()] = text
        return env
