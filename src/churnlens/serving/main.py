"""The app factory uvicorn imports in each worker: settings from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from churnlens.serving.app import create_app
from churnlens.settings import load_settings


def app() -> FastAPI:
    return create_app(load_settings())
