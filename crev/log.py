"""crev's request log: one line per request, answered or refused, with nothing a client sent
able to forge a line or drive a terminal (control characters are shown escaped).

`logging` is imported on first use, which comes after the first response has been sent: importing
it is a visible part of a cold start.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

    from .messages import FallbackAnswer, MirrorAnswer

# How much of a refused request line the log keeps: the method and path, not a flood.
LOGGED_REQUEST_LINE_CHARS = 200
# C0 controls, DEL and C1 controls, each shown as \xNN.
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}


def escaped(text: str) -> str:
    # Every character escaped is unprintable: most text is printable, and is left as it is
    # without a look-up of each character.
    return text if text.isprintable() else text.translate(_ESCAPES)


def crev_log() -> logging.Logger:
    import logging

    log = logging.getLogger("crev")
    if not log.hasHandlers():
        # Nothing in this process says where logs go: Vercel's runtime configures the root
        # logger in production, but `vercel dev` runs functions in an emulation that does not,
        # and its terminal would show no request line at all. To stderr, as the local server.
        configure_logging()
    return log


def log_response(
    method: str,
    path: str,
    status: int,
    upstream_status: int | None,
    ms: float,
    outcome: str = "",
    fallback: FallbackAnswer | None = None,
    failure: str = "",
    mirror: MirrorAnswer | None = None,
) -> None:
    """An answered request: what the client got, what the upstream said (`-` when crev
    answered itself; how it failed when a mirror answered for it, and the mirror's status,
    `upstream=unreachable mirror=200@host`), what the route's fallback said when it was asked
    (`fallback=200@host`), how it ended when not whole (`client-gone`, `upstream-cut`, or
    `unframed` for a response h11 would not frame), and why crev failed it when it did
    (`error="..."`, the message the client was answered with: it names hosts and settings,
    never a credential)."""
    upstream: object = "-" if upstream_status is None else upstream_status
    asked = ""
    if mirror is not None:
        upstream = escaped(mirror.failure)
        asked = f" mirror={mirror.status}@{mirror.host}"
    if fallback is not None:
        asked += f" fallback={fallback.status}@{fallback.host}"
    suffix = f" {outcome}" if outcome else ""
    if failure:
        quoted = escaped(failure).replace('"', '\\"')
        suffix += f' error="{quoted}"'
    crev_log().info(
        "%s %s %s upstream=%s%s %.1fms%s",
        escaped(method),
        escaped(path),
        status,
        upstream,
        asked,
        ms,
        suffix,
    )


def log_refusal(request_line: str, status: int, message: str) -> None:
    """A request refused before any endpoint ran (a malformed or oversized head); its request
    line is quoted unless there is none to show."""
    if not request_line:
        crev_log().info("refused %s %s", status, escaped(message))
        return
    crev_log().info(
        'refused "%s" %s %s',
        escaped(request_line[:LOGGED_REQUEST_LINE_CHARS]),
        status,
        escaped(message),
    )


def configure_logging() -> None:
    import logging

    log = logging.getLogger("crev")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_line_formatter_class()("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _line_formatter_class() -> type[logging.Formatter]:
    import logging  # as in crev_log: after the first response

    class LineFormatter(logging.Formatter):
        """`logging.Formatter`'s lines, the date and time of each second formatted once: a
        line per request made it a visible part of a request's CPU."""

        _second: tuple[int, str] = (-1, "")

        def formatTime(  # noqa: N802 (logging's name)
            self, record: logging.LogRecord, datefmt: str | None = None
        ) -> str:
            if datefmt is not None or not self.default_msec_format:
                return super().formatTime(record, datefmt)
            second = int(record.created)
            kept, text = self._second
            if kept != second:
                text = time.strftime(self.default_time_format, self.converter(second))
                self._second = (second, text)
            return self.default_msec_format % (text, record.msecs)

    return LineFormatter
