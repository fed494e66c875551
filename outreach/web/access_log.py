"""Access log lines without secrets or debtors' data.

uvicorn logs each request's path with its query string. Ours carry unsubscribe tokens
(``?token=``), attempt ids, and in ``/u/{token}`` the debtor's address itself (signed,
not encrypted). The filter logs the path alone, with the unsubscribe token cut out.
"""

from __future__ import annotations

import logging
import re

_UNSUBSCRIBE_LINK = re.compile(r"^/u/[^/?]+")


class RedactPaths(logging.Filter):
    """Rewrites uvicorn.access records: (client, method, path, http version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact(args[2]), args[3], args[4])
        return True

    @classmethod
    def install(cls, logger: logging.Logger) -> None:
        if not any(isinstance(existing, cls) for existing in logger.filters):
            logger.addFilter(cls())


def redact(path: str) -> str:
    bare = path.split("?", 1)[0]
    return _UNSUBSCRIBE_LINK.sub("/u/(token)", bare)
