"""The server side of the webhook benchmark: one app under uvicorn, in a process of its own.

``python -m bench.webhook_server MODE [STACK]`` with the settings in the environment
prints the port it listens on (127.0.0.1) and serves until terminated. STACK ``h11`` runs
uvicorn on its pure-Python parser and asyncio's loop instead of httptools and uvloop.
Modes:

- ``batched``: the product, ``create_app``: verify, parse, the batched writer;
- ``per_request``: the same route, each request's events applied in a transaction of its
  own (``apply_events`` in FastAPI's threadpool): the one-commit-per-request baseline;
- ``bare``: verify and parse, then answer: what the endpoint costs without the database.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from outreach.clock import SystemClock
from outreach.config import Settings
from outreach.db import make_engine
from outreach.errors import WebhookRejected
from outreach.events import EventPolicy, apply_events
from outreach.providers.base import Provider, ProviderEvent, WebhookRequest
from outreach.providers.registry import build_provider
from outreach.providers.transport import make_http_client
from outreach.web.app import create_app, freeze_startup_objects

PATH = "/webhooks/twilio_sms/status"


def _provider(settings: Settings) -> Provider:
    return build_provider("twilio_sms", "sms", settings, make_http_client(), SystemClock())


async def _verified(provider: Provider, request: Request) -> list[ProviderEvent] | Response:
    """The request's events, or the 403 a forged one gets."""
    incoming = WebhookRequest("POST", str(request.url), dict(request.headers),
                              await request.body())  # fmt: skip
    try:
        provider.verify(incoming)
    except WebhookRejected as exc:
        return JSONResponse({"detail": str(exc)}, status_code=403)
    return provider.parse(incoming)


def bare_app(settings: Settings) -> FastAPI:
    provider = _provider(settings)
    app = FastAPI()

    @app.post(PATH)
    async def status(request: Request) -> Response:
        events = await _verified(provider, request)
        if isinstance(events, Response):
            return events
        return JSONResponse({"stored": 0, "duplicates": len(events)})

    return app


def per_request_app(settings: Settings) -> FastAPI:
    provider = _provider(settings)
    engine = make_engine(settings)
    policy = EventPolicy.from_settings(settings)
    clock = SystemClock()
    app = FastAPI()

    @app.post(PATH)
    async def status(request: Request) -> Response:
        events = await _verified(provider, request)
        if isinstance(events, Response):
            return events
        applied = await run_in_threadpool(apply_events, engine, events, clock.now(), policy)
        return JSONResponse({"stored": applied.stored, "duplicates": applied.duplicates})

    return app


def main() -> None:
    mode = sys.argv[1]
    pure_python = sys.argv[2:] == ["h11"]
    settings = Settings(_env_file=None)
    if mode == "batched":
        app = create_app(settings, make_engine(settings))
    elif mode == "per_request":
        app = per_request_app(settings)
    else:
        app = bare_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # connections wait in the backlog while the app starts
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", backlog=2048,
        http="h11" if pure_python else "auto", loop="asyncio" if pure_python else "auto",
    )  # fmt: skip
    freeze_startup_objects()  # as the product's lifespan does, for every mode alike
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
