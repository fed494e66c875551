"""The email HTML the template editor rendered, kept in the database for its preview frame:
the frame's request may reach another web process than the one that rendered it (several
machines on one PostgreSQL), or come after a restart.

A preview is served by its token to the user who rendered it only, for ``seconds`` (15
minutes); each user keeps their newest ``kept``. Storing one deletes the user's older ones
beyond that and a batch of anyone's past their time.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import Engine, insert, select

from outreach.clock import Clock, SystemClock
from outreach.models import HtmlPreview
from outreach.store import delete_unheld, table_of

html_previews = table_of(HtmlPreview)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what token_urlsafe gives
_EXPIRED_AT_ONCE = 1_000  # previews past their time deleted by one new one, at most


class HtmlPreviews:
    """Rendered email HTML for the preview frame, for the user who rendered it, for a
    while; each user's oldest go first."""

    def __init__(
        self, engine: Engine, kept: int = 20, seconds: float = 900.0, clock: Clock | None = None
    ) -> None:
        self.engine = engine
        self.kept, self.lifetime = kept, timedelta(seconds=seconds)
        # Real time, whatever clock the app runs on (a demo's runs faster).
        self.clock = clock or SystemClock()

    def put(self, user_id: int, html: str) -> str:
        token = secrets.token_urlsafe(18)
        now = self.clock.now()
        c = html_previews.c
        # PostgreSQL cannot store a NUL; a browser shows one as U+FFFD anyway.
        html = html.replace("\x00", "\ufffd")
        row = {"token": token, "user_id": user_id, "created_at": now, "html": html}
        # The user's previews beyond the newest kept (newest by id: instants may be equal),
        # and a batch of anyone's past their time.
        older = select(c.id).where(c.user_id == user_id).order_by(c.id.desc()).offset(self.kept)
        expired = select(c.id).where(c.created_at < now - self.lifetime).limit(_EXPIRED_AT_ONCE)
        with self.engine.begin() as connection:
            connection.execute(insert(html_previews).values(row))
            delete_unheld(connection, html_previews, older)
            delete_unheld(connection, html_previews, expired)
        return token

    def get(self, user_id: int, token: str) -> str | None:
        """The preview's HTML; ``None`` if it is not this user's, or no longer kept."""
        if not _TOKEN.fullmatch(token):
            return None  # not one of ours (a NUL in it would be PostgreSQL's error)
        c = html_previews.c
        with self.engine.connect() as connection:
            html: str | None = connection.execute(
                select(c.html).where(
                    c.token == token,
                    c.user_id == user_id,
                    c.created_at >= self.clock.now() - self.lifetime,
                )
            ).scalar_one_or_none()
        return html
