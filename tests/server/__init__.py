"""Tests of the HTTP server (server/): a real uvicorn on loopback, a real headless browser."""
