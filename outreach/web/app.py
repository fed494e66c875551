"""``create_app(settings, engine)``: the FastAPI application (a factory: nothing at import)."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine, text

from outreach import __version__
from outreach.config import Settings


def create_app(settings: Settings, engine: Engine) -> FastAPI:
    app = FastAPI(title="outreach", version=__version__, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.engine = engine

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Answers as soon as the server listens; says whether the database answers too."""
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # the health page reports, it does not fail
            database = f"unavailable ({type(exc).__name__})"
        return {"status": "ok", "database": database, "version": __version__}

    return app
