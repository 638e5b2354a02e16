"""The stylenorm HTTP server: FastAPI app, batching inference engine, model registry and web page.

``create_app(settings)`` builds the application (:mod:`server.app`);
``stylenorm serve`` runs it under uvicorn (:mod:`server.cli`).
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # lazy, so `stylenorm --help` (which imports server.cli) does not import FastAPI's whole app
    if name == "create_app":
        from server.app import create_app

        return create_app
    raise AttributeError(name)
