"""Deliver record lines with retries inside one deadline.

Lines go out in order, in bodies of at most 5 MB (the newline after each line
counted, like maxim-py).  A line over about 900 KB is uploaded to a signed URL
and replaced, in place, by a ``storage{...process-large-log...}`` record.  An
``upload-attachment`` line (a file in a generation's messages) is resolved as
maxim-py's writer resolves it: a file inline (base64) is uploaded to a signed
URL under the key maxim-py uses, and the line is replaced by ``add-attachment``
with that key (a URL is only given the key).
Retryable failures are retried with exponential backoff and jitter, honouring
``Retry-After``, for as long as the deadline allows; every sleep is on an
``Event`` so closing the sink cuts it short.  A log push that the settings
block (:attr:`Kind.BLOCKED`: the key, the repository, the URL) ends the
attempt at once, to be retried after the backoff: the records are not at
fault.  An upload refused for good (its upload-url call or its PUT, whatever
the status: uploads may be refused while the log push works) costs only
itself: a file is dropped and logged, and a large record is
:attr:`Outcome.REJECTED` like a record Maxim refuses (its batch is sent again
alone, then set aside).  The caller learns how many lines were acknowledged,
so an acknowledged body is never sent again.  A 413 to a body of several
lines is about its size, not its records (nginx's default limit is 1 MiB):
the most a body holds is halved, for good (a server's limit does not change
often), and the lines go again at once, in smaller bodies, down to a line each;
a single line that still gets a 413 is refused like any other.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from otel_maxim import environment_variables as env
from otel_maxim._log import RateLimitedLog
from otel_maxim.sinks._http import ApiClient, Kind, Reply

__all__ = ["Backoff", "Deliverer", "Outcome", "Result", "line_size", "lines_size"]

#: Largest request body, in bytes.
MAX_BODY_BYTES = 5 * 1024 * 1024
#: A line whose size (with its newline) is over this goes through the large-log upload.
LARGE_RECORD_BYTES = 900 * 1024
#: Room kept in a body for the ``storage`` line that replaces a large record.
_STORAGE_LINE_ROOM = 512
#: How an ``upload-attachment`` line starts (after its entity and id, which the match reads).
_UPLOAD_LINE = re.compile(r"([a-z_]+)\{id=([A-Za-z0-9_-]+),action=upload-attachment,data=")
_UPLOAD_MARK = ",action=upload-attachment,data="
#: Where in a line its action can be: the longest entity name and id, and the mark.
_HEAD_CHARS = 512
#: Magic numbers of the files a message most often holds, for a file sent with no type (maxim-py
#: guesses the type of every file from its bytes first).
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
)
_UNKNOWN_TYPE = "application/octet-stream"


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # not done by the deadline (or closing), or the log push blocked by the settings: try again later
    REJECTED = "rejected"  # Maxim answered no; the same lines will likely be refused again


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reply: Reply | None = None
    retry_at: float = 0.0  # time.monotonic() before which the next attempt should not start
    honour: bool = False  # retry_at comes from the server's Retry-After


def line_size(line: str) -> int:
    """Bytes ``line`` takes in a body, with its newline."""
    return (len(line) if line.isascii() else len(line.encode("utf-8", "replace"))) + 1


def is_upload(line: str) -> bool:
    """Whether ``line`` is an ``upload-attachment`` record (looked for in its head only)."""
    return line.find(_UPLOAD_MARK, 0, _HEAD_CHARS) >= 0 and _UPLOAD_LINE.match(line) is not None


def _mime_type(payload: bytes, given: object) -> str:
    if isinstance(given, str) and given and given != _UNKNOWN_TYPE:
        return given
    if payload[:4] == b"RIFF" and payload[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _MAGIC if payload.startswith(magic)), _UNKNOWN_TYPE)


def _decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional, whitespace ignored; :class:`ValueError` if it is not base64."""
    compact = "".join(text.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(compact, altchars=b"-_", validate=True)


def lines_size(lines: Sequence[str]) -> int:
    """Bytes ``lines`` take in a body, newlines included (the exporter's lines are ASCII: one pass in C)."""
    if all(map(str.isascii, lines)):
        return sum(map(len, lines)) + len(lines)
    return sum(line_size(line) for line in lines)


def _what_to_check(status: int | None) -> str:
    """The setting a blocked call points to (see ``Kind.BLOCKED``)."""
    if status in (401, 403):
        return f"check the API key ({env.MAXIM_API_KEY}) and its access to the repository"
    if status == 407:
        return "check the HTTP proxy's credentials"
    if status == 404:
        return f"check the repository id ({env.MAXIM_LOG_REPO_ID}) and the base URL ({env.MAXIM_BASE_URL})"
    return f"check the base URL ({env.MAXIM_BASE_URL})"


class Backoff:
    """Exponential backoff with +-20 % jitter.  Failures count on across deadlines; a success resets them."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.failures = 0


class Deliverer:
    """Sends lines through an :class:`ApiClient`; one instance per sink, used by one thread at a time."""

    def __init__(
        self,
        client: ApiClient,
        backoff: Backoff,
        stop: threading.Event,
        log: RateLimitedLog,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        large_record_bytes: int = LARGE_RECORD_BYTES,
    ) -> None:
        self._client = client
        self._backoff = backoff
        self._stop = stop
        self._log = log
        self._max_body = max_body_bytes  # halved by a 413 (see _smaller_bodies)
        self._large = large_record_bytes
        self._too_large = 0  # the first body a 413 refused, until a smaller body is taken (then logged)

    def deliver(self, lines: Sequence[str], deadline: float, on_ack: Callable[[int], None]) -> Result:
        """Send ``lines`` in order by ``deadline``; ``on_ack(n)`` after each body: the first ``n`` are in."""
        start = 0
        while start < len(lines):
            end, body, failed = self._next_body(lines, start, deadline)
            if failed is not None:
                return failed
            if not body:  # every line was an attachment that cannot be sent (said in the log)
                start = end
                on_ack(start)
                continue
            data = "\n".join(body).encode("utf-8", "replace")
            got = self._retrying(
                lambda t: self._client.post_log(data, t), deadline, f"{len(body)} records", splittable=len(body) > 1
            )
            if isinstance(got, Result):
                if self._smaller_bodies(got, len(body), len(data)):
                    continue  # the same lines again, at once, in smaller bodies
                return got
            if self._too_large:
                self._log.log(
                    logging.WARNING,
                    f"body-size-{self._max_body}",  # each new size once
                    "Maxim's log API (or a proxy in front of it) refused a body of %d bytes as too large (HTTP 413);"
                    " bodies now hold at most %d bytes.",
                    self._too_large,
                    self._max_body,
                )
                self._too_large = 0
            start = end
            on_ack(start)
        return Result(Outcome.DELIVERED)

    def _smaller_bodies(self, failed: Result, count: int, size: int) -> bool:
        """Whether ``failed``, the answer to a body of ``count`` lines and ``size`` bytes, is a 413 that
        smaller bodies may get past; if so, bodies from now on hold at most half of it."""
        if failed.reply is None or failed.reply.status != 413 or count < 2:
            return False
        self._too_large = self._too_large or size
        self._max_body = size // 2  # a body holds one line whatever its size: this ends with a line a body
        return True

    def _next_body(self, lines: Sequence[str], start: int, deadline: float) -> tuple[int, list[str], Result | None]:
        rest = list(lines[start:])
        if all(map(str.isascii, rest)) and max(map(len, rest)) < self._large and not any(map(is_upload, rest)):
            if sum(map(len, rest)) + len(rest) <= self._max_body:
                return len(lines), rest, None  # the usual case: all of it fits one body, nothing to upload
        body: list[str] = []
        size = 0
        i = start
        while i < len(lines):
            line = lines[i]
            n = line_size(line)
            if n > self._large or is_upload(line):
                if body and size + _STORAGE_LINE_ROOM > self._max_body:
                    break
                got = self._replacement(line, deadline)
                if isinstance(got, Result):
                    if body:
                        break  # send what comes before it; the upload is tried again for the next body
                    return i, body, got
                if got is None:  # nothing can be sent of it (said in the log)
                    i += 1
                    continue
                line, n = got, line_size(got)
            if body and size + n > self._max_body:
                break
            body.append(line)
            size += n
            i += 1
        return i, body, None

    def _replacement(self, line: str, deadline: float) -> str | Result | None:
        """What goes in the body for an ``upload-attachment`` line or a large record, its upload done."""
        if is_upload(line):
            got = self._attach(line, deadline)
            if not isinstance(got, str):
                return got
            line = got
        return self._upload(line, deadline) if line_size(line) > self._large else line

    def _store(self, key: str, payload: bytes, mime_type: str, deadline: float, what: str) -> Result | None:
        """Put ``payload`` in Maxim's storage under ``key`` (ask a signed URL, PUT there); ``None`` once done."""
        got = self._retrying(
            lambda t: self._client.upload_url(key, len(payload), t, mime_type=mime_type),
            deadline,
            f"the upload URL of {what}",
        )
        if isinstance(got, Result):
            return got
        url: str = got.data
        put = self._retrying(lambda t: self._client.put(url, payload, t, mime_type=mime_type), deadline, what)
        return put if isinstance(put, Result) else None

    def _upload(self, line: str, deadline: float) -> str | Result:
        """Upload one large record; the ``storage`` line to send in its place."""
        file_id = str(uuid.uuid4())
        key = f"{self._client.repo_id}/large-logs/{file_id}"
        failed = self._store(key, line.encode("utf-8", "replace"), "text/plain", deadline, "a large record")
        if failed is not None:
            return failed
        data_json = json.dumps({"key": key}, separators=(",", ":"))  # compact, as maxim-py writes it
        return f"storage{{id={file_id},action=process-large-log,data={data_json}}}"

    def _attach(self, line: str, deadline: float) -> str | Result | None:
        """The ``add-attachment`` line that replaces an ``upload-attachment`` line, once its file is uploaded.

        ``None`` when nothing can be sent of it (its data is not a file, or storage refused the
        file): the log says so, and the lines around it go on.
        """
        match = _UPLOAD_LINE.match(line)
        assert match is not None  # is_upload() said so
        entity, entity_id = match.groups()
        try:
            data = json.loads(line[match.end() : -1])
            if not isinstance(data, dict):
                raise ValueError("not an object")
            payload = None
            if data.get("type") == "file_data":
                if not isinstance(data.get("data"), str):
                    raise ValueError("its data is not base64 text")
                payload = _decode_base64(data["data"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:  # what a redact callback made of it
            self._log.error(
                "attachment-data",
                "An attachment of %s %s is not a file this can upload (%s: %s); it is not sent.",
                entity,
                entity_id,
                type(exc).__name__,
                exc,
            )
            return None
        file_id = str(data.get("id") or uuid.uuid4())
        key = f"{self._client.repo_id}/{entity}/{entity_id}/files/original/{file_id}"
        if payload is None:  # a URL: only the key
            data["key"] = key
        else:
            del data["data"]
            mime_type = _mime_type(payload, data.get("mime_type"))
            what = f"an attachment of {entity} {entity_id}"
            failed = self._store(key, payload, mime_type, deadline, what)
            if failed is not None and failed.outcome is not Outcome.REJECTED:
                return failed
            if failed is not None:  # refused for good: this file, not the records around it
                self._log.error("attachment-refused", "Storage refused %s; it is not sent.", what)
                return None
            data["key"] = key
            data["mimeType"] = mime_type
        data_json = json.dumps(data, separators=(",", ":"))  # ASCII, compact like the storage line
        return f"{entity}{{id={entity_id},action=add-attachment,data={data_json}}}"

    def _retrying(
        self, call: Callable[[float], Reply], deadline: float, what: str, *, splittable: bool = False
    ) -> Reply | Result:
        """Make ``call(timeout)`` until it succeeds, fails for good, or the deadline comes.

        ``splittable``: the call sends several lines, and the caller sends them again in smaller bodies
        on a 413 (see ``_smaller_bodies``); that 413 refuses no record, so it is not logged here.
        """
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Result(Outcome.RETRY, None, time.monotonic())
            reply = call(remaining)
            if reply.kind is Kind.OK:
                self._backoff.reset()
                return reply
            if reply.kind is Kind.FAIL:
                if reply.status == 413 and splittable:
                    return Result(Outcome.REJECTED, reply)  # no record refused yet: see _smaller_bodies
                if reply.status is None:  # the client could not send it: not an answer of Maxim's
                    self._log.error("fail-client", "Could not send %s (%s).", what, reply.describe())
                else:
                    self._log.error(f"fail-{reply.status}", "Maxim's log API refused %s (%s).", what, reply.describe())
                return Result(Outcome.REJECTED, reply)
            if reply.kind is Kind.BLOCKED:  # refused whatever it carries until the settings change (key, URL, ...)
                delay = self._backoff.next_delay()
                self._log.error(
                    f"blocked-{reply.status}",
                    "Maxim's log API did not take %s (%s): %s. The records wait, and are tried again in %.2f s.",
                    what,
                    reply.describe(),
                    _what_to_check(reply.status),
                    delay,
                )
                return Result(Outcome.RETRY, reply, time.monotonic() + delay)
            # A Retry-After is the least the server asks to wait: it lengthens the backoff, never
            # shortens it (a "Retry-After: 0" on every 429 must not make a busy loop).
            delay, honour = self._backoff.next_delay(), False
            if reply.retry_after is not None and reply.retry_after >= delay:
                delay, honour = reply.retry_after, True
            retry_at = time.monotonic() + delay
            self._log.warning(
                "retry", "Maxim's log API did not take %s (%s); next try in %.2f s.", what, reply.describe(), delay
            )
            if retry_at >= deadline or self._stop.wait(delay):
                return Result(Outcome.RETRY, reply, retry_at, honour)
