"""The stylenorm HTTP server: FastAPI app, batching inference engine, model registry and web page.

``create_app(settings)`` builds the application (:mod:`stylenorm.server.app`);
``stylenorm serve`` runs it under uvicorn (:mod:`stylenorm.server.cli`).
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # lazy, so `stylenorm --help` (which imports stylenorm.server.cli) does not import FastAPI's whole app
    if name == "create_app":
        from stylenorm.server.app import create_app

        return create_app
    raise AttributeError(name)
