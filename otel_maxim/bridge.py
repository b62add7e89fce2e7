"""``otel-maxim bridge``: an OTLP/HTTP trace receiver that feeds :class:`~otel_maxim.MaximSpanExporter`.

Services in any language, and Collector pipelines, send OTLP here; the bridge
turns each request into SDK ``ReadableSpan`` objects (:mod:`otel_maxim.otlp`)
and hands them, through a bounded queue and one worker thread, to the same
exporter the in-process path uses (same assembly, mapping and delivery).  The
exporter is built with ``cross_service_grace``, so a trace whose spans come
from several services is assembled across them.

The server is Starlette on uvicorn (the ``bridge`` extra): a small, typed,
widely deployed ASGI stack (FastAPI's own foundation) with HTTP/1.1 keep-alive,
graceful shutdown on SIGTERM/SIGINT and an asyncio event loop, so slow clients
cost no threads; decoding runs in a thread pool, off the loop.

Behaviour, in OTLP/HTTP's terms:

* ``POST /v1/traces``: protobuf (``application/x-protobuf``) or OTLP JSON
  (``application/json``), plain, gzip or deflate.  200 with an
  ``ExportTraceServiceResponse``; spans with invalid ids are rejected through
  ``partial_success`` and the rest is accepted.
* A malformed body: 400 with a ``google.rpc.Status`` that says what is wrong;
  nothing else is affected.  Strings that are not valid UTF-8 (which the
  Collector passes on) are not a malformed body: they are read with U+FFFD.
  Too large (``Content-Length``, the body read so far, or the body once
  decompressed), more spans than the whole queue, or more than a million items
  in all (spans, events, links, attributes and the items of array and
  key-value-list values, :data:`otel_maxim.otlp.MAX_ITEMS`; OTLP JSON is
  counted before the costly part of its parsing): 413, with a
  ``google.rpc.Status`` that says which bound, and nothing of the request is
  exported.  An unsupported media type or encoding: 415.  No valid bearer token
  when one is configured: 401.
* Back-pressure: when the queue cannot take a request's spans, 503 with
  ``Retry-After``; OTLP clients (the Collector, the SDKs) retry it later.
* Bytes held: the bodies of all requests, as their bytes arrive until they are decoded or
  refused, and the spans decoded from them (their size estimated by
  :func:`~otel_maxim.assembly.held_size`, plus their resources' and scopes' attributes) from then
  until the worker takes them from the queue, take at most ``max_pending_bytes``
  (``MAXIM_BRIDGE_MAX_PENDING_BYTES``, 128 MiB) together; a request that would take more is
  answered 503 with ``Retry-After``, unless nothing else is held (so one body up to
  ``max_body_bytes`` can always go through: alone, it is never refused).  A declared
  ``Content-Length`` holds nothing until its bytes come, so idle connections hold no budget.  A
  small gzip body can decode to spans a thousand times its size: once decoded, the spans are
  what counts.
* Connections (under :class:`BridgeServer`): at most ``max_connections`` open at once
  (``MAXIM_BRIDGE_MAX_CONNECTIONS``, 1000); one more is answered 503 with ``Retry-After`` at
  once, before its request is read, and closed.  A request's head must arrive within
  ``header_timeout`` (10 s) of its connection opening or of the previous request ending, and
  its whole body within ``body_timeout`` (30 s) of its head, else 408; either way the
  connection is closed.  A client that reads none of the bridge's answers for ``body_timeout``
  once they back up (it pipelines requests and never reads) is dropped.
* ``GET /healthz``: 200 while serving, with the spans queued (``queued_spans``) and the bytes held
  by request bodies (``pending_bytes``) and by queued spans (``queued_bytes``).  Under
  :class:`BridgeServer` the listener closes first on shutdown, so a probe then fails to connect;
  an app mounted elsewhere answers 503 once closed.
* Shutdown (SIGTERM, SIGINT): stop accepting, finish the requests in flight (under
  :class:`BridgeServer`, one still unfinished after 10 s is answered 503 with ``Retry-After``
  and ``Connection: close``, never uvicorn's 500, which clients do not retry),
  drain the queue into the exporter, then shut the exporter down, which sends
  the traces it still holds and spools what it cannot deliver.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator, Sequence

import h11
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from otel_maxim import environment_variables as env
from otel_maxim import otlp
from otel_maxim._config import env_str, resolve_int, resolve_seconds
from otel_maxim._log import RateLimitedLog
from otel_maxim.assembly import held_size
from otel_maxim.exporter import MaximSpanExporter

if sys.platform != "win32":
    import resource

__all__ = ["Bridge", "BridgeServer", "ListenError", "serve"]

_logger = logging.getLogger(__name__)
_limited = RateLimitedLog(_logger)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4318
_MAX_PORT = 65535
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 16_384
DEFAULT_CROSS_SERVICE_GRACE = 10.0
DEFAULT_RETRY_AFTER = 2
DEFAULT_HEADER_TIMEOUT = 10.0
#: As long as the Collector's OTLP/HTTP exporter waits for a whole request by default.
DEFAULT_BODY_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 1000
#: A few bodies of the largest size at once, where 1000 connections could otherwise hold 20 GB.
DEFAULT_MAX_PENDING_BYTES = 128 * 1024 * 1024
#: File descriptors kept for all but client connections: the exporter's HTTPS connections and
#: spool files, log files, the listening socket, the event loop's own.
_FDS_KEPT = 128
#: google.rpc.Code DEADLINE_EXCEEDED, in the 408 answer to a request whose body came too slowly.
_CODE_DEADLINE_EXCEEDED = 4
#: Spans handed to the exporter in one ``export`` call (requests are not split).
_EXPORT_BATCH = 512
#: Seconds uvicorn waits for requests in flight after a shutdown signal.
_GRACEFUL_SECONDS = 10
#: Seconds the queue drain and the exporter's shutdown may take together.
_SHUTDOWN_SECONDS = 30.0
_TRACES_PATH = "/v1/traces"
#: What a bearer token may hold: visible ASCII (RFC 6750's b64token is a subset).
_TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")
#: Requests decoded at once: decoding is CPU work under one interpreter lock, and a small body can
#: hold hundreds of thousands of tiny spans that cost far more built than sent.
_DECODES_AT_ONCE = 2


class _TooManySpans(Exception):
    """A request holds more spans than the whole queue."""


class _NoRoom(Exception):
    """A request's spans do not fit in the queue now."""


class _NoBytes(Exception):
    """A request's body would take the bridge past ``max_pending_bytes`` now."""


@dataclasses.dataclass
class _Reserved:
    """The bytes one request holds of the bridge's ``max_pending_bytes``."""

    bytes: int = 0


class _SpanQueue:
    """A bounded queue of spans (counted in spans, not requests) and the worker that exports them.

    It also keeps the sum of the sizes its callers gave with the spans (:attr:`bytes`): the bridge
    bounds that with its byte budget, and the queue lets a request's bytes go with its spans.
    """

    def __init__(self, exporter: SpanExporter, capacity: int) -> None:
        self._exporter = exporter
        self._capacity = capacity
        self._cond = threading.Condition()
        self._batches: collections.deque[tuple[list[ReadableSpan], int]] = collections.deque()
        self._size = 0
        self._bytes = 0
        self._closing = False
        self._worker: threading.Thread | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def bytes(self) -> int:
        """About how many bytes the queued spans hold (only the worker lowers it, as it takes them)."""
        return self._bytes

    def full(self) -> bool:
        return self._size >= self._capacity

    def fits(self, count: int) -> bool:
        """Whether ``count`` more spans fit now (a request is never larger than the queue: see the bridge)."""
        return self._size + count <= self._capacity

    def offer(self, spans: list[ReadableSpan], size: int) -> bool:
        """Queue ``spans``, which hold about ``size`` bytes, whole, or return ``False`` when they do not fit."""
        if not spans:
            return True
        with self._cond:
            if self._closing:
                return False
            if not self.fits(len(spans)):
                return False
            self._batches.append((spans, size))
            self._size += len(spans)
            self._bytes += size
            self._cond.notify()
            return True

    def start(self) -> None:
        with self._cond:
            if self._worker is None and not self._closing:
                self._worker = threading.Thread(target=self._run, name="OtelMaximBridgeWorker", daemon=True)
                self._worker.start()

    def close(self, timeout: float) -> bool:
        """Take nothing more, export what is queued within ``timeout`` seconds; ``False`` if some is left."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            worker = self._worker
        if worker is None:  # never started: export on this thread
            self._run()
        else:
            worker.join(timeout)
        with self._cond:
            left = self._size
        if left:
            _logger.error("Shutting down with %d spans still queued for the exporter; they are lost.", left)
        return left == 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._closing:
                    self._cond.wait()
                if not self._batches:
                    return
                batch: list[ReadableSpan] = []
                while self._batches and len(batch) < _EXPORT_BATCH:
                    spans, size = self._batches.popleft()
                    batch.extend(spans)
                    self._size -= len(spans)
                    self._bytes -= size
            try:
                result = self._exporter.export(batch)
            except Exception:  # the worker must outlive a broken exporter
                _limited.error("export-raised", "The exporter raised on %d spans.", len(batch), exc_info=True)
                continue
            if result is not SpanExportResult.SUCCESS:
                _limited.warning("export-failed", "The exporter could not export %d spans (it logged why).", len(batch))


class Bridge:
    """The OTLP/HTTP receiver as an ASGI application (:attr:`app`) and the queue behind it.

    Every argument defaults to ``None``: then the environment decides
    (``MAXIM_BRIDGE_*``, see :mod:`otel_maxim.environment_variables`), then the
    default.  ``exporter`` defaults to a :class:`~otel_maxim.MaximSpanExporter`
    configured from the environment (``MAXIM_*``) with ``cross_service_grace``;
    the bridge owns it and shuts it down.

    The bounds it holds each request to, each from its argument, else its variable, else its default:

    * ``max_body_bytes`` (``MAXIM_BRIDGE_MAX_BODY_BYTES``, 20 MiB): one request's body, as sent
      and once decompressed; past it, 413.
    * ``queue_size`` (``MAXIM_BRIDGE_QUEUE_SIZE``, 16384): spans waiting for the exporter; past
      it, 503 with ``Retry-After`` (``retry_after``, ``MAXIM_BRIDGE_RETRY_AFTER``, 2 s), and 413 for
      a request of more spans than the whole queue.
    * ``max_pending_bytes`` (``MAXIM_BRIDGE_MAX_PENDING_BYTES``, 128 MiB): the bytes held at once
      for requests, across all of them: each request's body bytes as they arrive (not its declared
      ``Content-Length`` before they do) until it is decoded or refused, then the estimated size of
      its decoded spans (:func:`~otel_maxim.assembly.held_size`, plus their resources' and scopes'
      attributes, see :attr:`otel_maxim.otlp.DecodedSpans.values_bytes`)
      until the worker takes them from the queue for the exporter.  A request that would take more, as
      a body or once decoded, is answered 503 with ``Retry-After``, unless nothing else is held
      (no other request's body, no queued spans): one body up to ``max_body_bytes`` can always
      go through (it may still be refused part way if another request takes bytes meanwhile).
      The batch the exporter is working on is no longer in the queue, so at most about as much
      again is held while it exports.

    One more bound is fixed: at most :data:`otel_maxim.otlp.MAX_ITEMS` (a million) items a request
    (spans, events, links, attributes, items of array and key-value-list values), counted before they
    are built; past it, 413.  Decoding costs CPU for each, and a small compressed body can hold millions.

    The application's lifespan starts the worker and, at shutdown, drains the
    queue into the exporter and shuts the exporter down; :meth:`close` does the
    same for a bridge used without a server.
    """

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        token: str | None = None,
        max_body_bytes: int | None = None,
        queue_size: int | None = None,
        cross_service_grace: float | None = None,
        retry_after: int | None = None,
        max_pending_bytes: int | None = None,
    ) -> None:
        self._max_body = resolve_int(
            max_body_bytes, "max_body_bytes", env.MAXIM_BRIDGE_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, minimum=1
        )
        self._max_pending = resolve_int(
            max_pending_bytes,
            "max_pending_bytes",
            env.MAXIM_BRIDGE_MAX_PENDING_BYTES,
            DEFAULT_MAX_PENDING_BYTES,
            minimum=1,
        )
        capacity = resolve_int(queue_size, "queue_size", env.MAXIM_BRIDGE_QUEUE_SIZE, DEFAULT_QUEUE_SIZE, minimum=1)
        self._retry_after = resolve_int(
            retry_after, "retry_after", env.MAXIM_BRIDGE_RETRY_AFTER, DEFAULT_RETRY_AFTER, minimum=0
        )
        if token is not None and not isinstance(token, str):
            raise ValueError("token must be a string")
        # Stripped like the credentials of a request (a token read from a file often ends in a
        # newline, which no Authorization header can carry).
        secret = token.strip() if token is not None else os.environ.get(env.MAXIM_BRIDGE_TOKEN)
        if secret is not None:
            secret = secret.strip()
            where = "token" if token is not None else env.MAXIM_BRIDGE_TOKEN
            # "--token $UNSET" or MAXIM_BRIDGE_TOKEN= must not turn authentication off.
            if not secret:
                raise ValueError(f"{where} must not be empty (leave it out for no authentication)")
            if not _TOKEN_CHARACTERS.fullmatch(secret):
                # An Authorization header is ASCII: clients encode other characters each their own way.
                raise ValueError(f"{where} must be printable ASCII without spaces (an RFC 6750 bearer token)")
        self._token = secret.encode("ascii") if secret else None
        if exporter is None:
            grace = resolve_seconds(
                cross_service_grace,
                "cross_service_grace",
                env.MAXIM_BRIDGE_CROSS_SERVICE_GRACE,
                DEFAULT_CROSS_SERVICE_GRACE,
                minimum=0,
            )
            exporter = MaximSpanExporter(cross_service_grace=grace)
        elif cross_service_grace is not None:
            raise ValueError("cross_service_grace configures the default exporter; pass it to your exporter instead")
        self._exporter = exporter
        self._queue = _SpanQueue(exporter, capacity)
        self._closed = threading.Event()
        self._close_lock = threading.Lock()
        self._busy_responses = 0  # only touched on the event loop
        # Bytes held by requests not yet queued (see max_pending_bytes): their bodies, then their
        # decoded spans until queued; only touched on the event loop too.
        self._pending_bytes = 0
        self._decode_slots = asyncio.Semaphore(_DECODES_AT_ONCE)
        self.app = Starlette(
            routes=[
                Route(_TRACES_PATH, self._traces, methods=["POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
            ],
            lifespan=self._lifespan,
        )

    def __repr__(self) -> str:  # never the token
        return f"Bridge(exporter={self._exporter!r}, auth={'on' if self._token else 'off'})"

    @property
    def requires_token(self) -> bool:
        """Whether requests need ``Authorization: Bearer <token>``."""
        return self._token is not None

    @property
    def exporter(self) -> SpanExporter:
        return self._exporter

    def start(self) -> None:
        """Start the worker that feeds the exporter (the lifespan does it; idempotent)."""
        self._queue.start()

    def close(self, timeout: float = _SHUTDOWN_SECONDS) -> None:
        """Take no more spans, export what is queued, shut the exporter down; idempotent, never raises."""
        with self._close_lock:
            if self._closed.is_set():
                return
            self._closed.set()
        deadline = time.monotonic() + timeout
        try:
            self._queue.close(timeout)
            remaining = max(0.0, deadline - time.monotonic())
            if isinstance(self._exporter, MaximSpanExporter):
                self._exporter.shutdown(remaining * 1000)
            else:
                self._exporter.shutdown()
        except Exception:  # shutdown must finish whatever the exporter does
            _logger.exception("Could not shut the bridge's exporter down cleanly.")

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            # Off the event loop: the exporter's shutdown may wait on the network.
            await run_in_threadpool(self.close)

    # --- endpoints ------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        if self._closed.is_set():
            return _json_response(503, {"status": "stopping"})
        return _json_response(
            200,
            {
                "status": "ok",
                "queued_spans": self._queue.size,
                "queued_bytes": self._queue.bytes,
                "pending_bytes": self._pending_bytes,
                "queue_capacity": self._queue.capacity,
                "busy_responses": self._busy_responses,
            },
        )

    async def _traces(self, request: Request) -> Response:
        peer = request.client.host if request.client else "?"
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        answer_as = _answer_media(media)

        if self._token is not None and not self._authorized(request):
            _limited.warning("unauthorized", "Refused an OTLP request from %s: no valid bearer token.", peer)
            return _status(401, otlp.CODE_UNAUTHENTICATED, "a valid bearer token is required", answer_as, auth=True)
        if media != answer_as:
            return _status(
                415,
                otlp.CODE_INVALID_ARGUMENT,
                f"unsupported Content-Type {media!r}: use {otlp.CONTENT_TYPE_PROTOBUF} or {otlp.CONTENT_TYPE_JSON}",
                answer_as,
            )
        encoding = request.headers.get("content-encoding")
        if encoding is not None and encoding.strip().lower() not in ("", "identity", "gzip", "x-gzip", "deflate"):
            return _status(
                415,
                otlp.CODE_INVALID_ARGUMENT,
                f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none",
                answer_as,
            )
        if self._closed.is_set():
            return self._unavailable("the bridge is shutting down; retry later", answer_as)
        if self._queue.full():
            return self._busy(answer_as)

        reserved = _Reserved()
        try:
            return await self._receive(request, reserved, peer, media, encoding, answer_as)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still in flight when its graceful shutdown runs out, and answers them
            # 500, which OTLP clients never retry: their spans would be lost.  Nothing of this request was queued
            # (queuing it and answering 200 happen together), so a 503 it retries loses nothing.  The task goes
            # on only to send it: uvicorn does not wait for it, and nothing else awaits it.
            uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()
            _limited.warning(
                "cancelled",
                "Answered 503 to a request from %s still in flight when the server stopped waiting for it; its "
                "client retries it.",
                peer,
            )
            response = self._unavailable("the bridge is shutting down; retry later", answer_as)
            response.headers["Connection"] = "close"
            return response
        finally:  # whatever became of the request: decoded, refused, disconnected, cancelled, a bug of ours
            self._pending_bytes -= reserved.bytes

    async def _receive(
        self, request: Request, reserved: _Reserved, peer: str, media: str, encoding: str | None, answer_as: str
    ) -> Response:
        """Read, decode and queue one request whose head has passed every check; its body's bytes in ``reserved``."""
        try:
            body = await self._read_body(request, reserved)
        except otlp.BodyTooLarge as exc:
            _limited.warning("too-large", "Refused an OTLP request from %s: %s.", peer, exc)
            return _status(413, otlp.CODE_RESOURCE_EXHAUSTED, str(exc), answer_as)
        except _NoBytes:
            return self._busy_bytes(peer, reserved, answer_as)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it

        try:
            decoded, size = await self._decode_in_pool(body, encoding, media)
        except _TooManySpans as exc:
            _limited.warning("too-many", "Refused an OTLP request from %s: %s.", peer, exc)
            return _status(413, otlp.CODE_RESOURCE_EXHAUSTED, str(exc), answer_as)
        except _NoRoom:
            return self._busy(answer_as)
        except otlp.BodyTooLarge as exc:
            _limited.warning("too-large", "Refused an OTLP request from %s: %s.", peer, exc)
            return _status(413, otlp.CODE_RESOURCE_EXHAUSTED, str(exc), answer_as)
        except otlp.OtlpDecodeError as exc:
            _limited.warning("malformed", "Refused a malformed OTLP request from %s: %s", peer, exc)
            return _status(400, otlp.CODE_INVALID_ARGUMENT, str(exc), answer_as)
        except Exception:  # a bug of ours: say so, and keep serving
            _limited.error("decode-bug", "Could not decode an OTLP request from %s.", peer, exc_info=True)
            return _status(500, otlp.CODE_INTERNAL, "the bridge failed to decode the request", answer_as)

        try:
            self._reserve(reserved, size)  # the spans, in place of the body that made them, until queued
        except _NoBytes:
            return self._busy_bytes(peer, reserved, answer_as)
        if not self._queue.offer(decoded.spans, size):
            if self._closed.is_set():
                return self._unavailable("the bridge is shutting down; retry later", answer_as)
            return self._busy(answer_as)
        self._pending_bytes -= reserved.bytes  # the queue counts them now, and lets them go with the spans
        reserved.bytes = 0
        if decoded.rejected:
            _limited.warning("partial", "Accepted an OTLP request from %s in part: %s.", peer, decoded.error_message)
        return Response(
            otlp.encode_response(decoded.rejected, decoded.error_message, answer_as),
            status_code=200,
            media_type=answer_as,
        )

    async def _decode_in_pool(self, body: bytes, encoding: str | None, media: str) -> tuple[otlp.DecodedSpans, int]:
        """:meth:`_decode` in the thread pool, at most ``_DECODES_AT_ONCE`` at a time.

        What it raises lets go of the request at once: anyio's frame holds the future that holds the
        exception, whose traceback holds that frame, a cycle that kept the request's decompressed body and
        its parsed JSON (hundreds of MB from a 50 KB gzip body refused in a fraction of a second) until a
        full garbage collection.  Clearing the frames it came through, which have all returned, breaks it;
        the traceback still says where it came from.
        """
        async with self._decode_slots:
            try:
                return await run_in_threadpool(self._decode, body, encoding, media)
            except Exception as exc:
                traceback.clear_frames(exc.__traceback__)
                raise

    def _authorized(self, request: Request) -> bool:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or self._token is None:
            return False
        # Starlette reads headers as latin-1: bytes back as they came, compared in constant time.
        return hmac.compare_digest(credentials.strip().encode("latin-1"), self._token)

    def _busy(self, answer_as: str) -> Response:
        self._busy_responses += 1
        _limited.warning(
            "busy", "The span queue is full (%d spans); answering 503 so that clients retry.", self._queue.size
        )
        return self._unavailable("the bridge is busy; retry later", answer_as)

    def _busy_bytes(self, peer: str, reserved: _Reserved, answer_as: str) -> Response:
        self._busy_responses += 1
        _limited.warning(
            "busy-bytes",
            "Refused an OTLP request from %s: other request bodies hold %d bytes and the spans queued for the "
            "exporter about %d, and this one would take the bridge past the %d it may hold (%s); answering 503 "
            "so that it retries.",
            peer,
            self._pending_bytes - reserved.bytes,
            self._queue.bytes,
            self._max_pending,
            env.MAXIM_BRIDGE_MAX_PENDING_BYTES,
        )
        return self._unavailable("the bridge holds as many request bytes as it may; retry later", answer_as)

    def _reserve(self, reserved: _Reserved, size: int) -> None:
        """Hold ``size`` bytes in all for this request (at least what ``reserved`` holds); raise ``_NoBytes`` if
        that would take the bridge past ``max_pending_bytes`` while other requests or queued spans hold bytes too."""
        more = size - reserved.bytes
        if more <= 0:
            return
        others = self._pending_bytes - reserved.bytes + self._queue.bytes
        if others > 0 and others + size > self._max_pending:
            raise _NoBytes
        self._pending_bytes += more
        reserved.bytes += more

    def _unavailable(self, message: str, answer_as: str) -> Response:
        response = _status(503, otlp.CODE_UNAVAILABLE, message, answer_as)
        response.headers["Retry-After"] = str(self._retry_after)
        return response

    async def _read_body(self, request: Request, reserved: _Reserved) -> bytes:
        """The whole body, its bytes reserved as they arrive (a declared length too large is refused at once).

        Not the declared length up front: a few connections that declared 20 MiB and sent nothing would
        hold the whole budget, and turn every other client away, until their body deadline.
        """
        declared = request.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self._max_body:
            raise otlp.BodyTooLarge(f"the body is larger than {self._max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._max_body:
                raise otlp.BodyTooLarge(f"the body is larger than {self._max_body} bytes")
            self._reserve(reserved, size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes, encoding: str | None, media: str) -> tuple[otlp.DecodedSpans, int]:
        """The request's spans, and about how many bytes they hold (what they count against ``max_pending_bytes``)."""
        raw = otlp.decompress(body, encoding, self._max_body)
        request = otlp.parse_request(raw, media)
        del raw
        count = otlp.span_count(request)
        if count > self._queue.capacity:  # it would never fit: retrying cannot help
            raise _TooManySpans(
                f"{count} spans in one request; the bridge takes at most {self._queue.capacity} "
                f"({env.MAXIM_BRIDGE_QUEUE_SIZE}): send smaller batches"
            )
        if not self._queue.fits(count):
            raise _NoRoom
        with _sdk_refusals.held() as held:
            decoded = otlp.spans_from_request(request)
        if held.count:
            _limited.warning(
                "sdk-refused",
                "Dropped %d invalid items of one OTLP request, as the OpenTelemetry SDK drops them (empty attribute "
                "keys, malformed tracestates, ...); the first: %.200r",
                held.count,
                held.first,
            )
        return decoded, sum(map(held_size, decoded.spans)) + decoded.values_bytes


@dataclasses.dataclass
class _Held:
    """What the SDK refused while one request was decoded: how many items, and its first message."""

    count: int = 0
    first: str = ""


class _SdkRefusals(logging.Filter):
    """Holds back, on a thread that decodes a request, what the SDK logs for each item it refuses.

    The SDK warns once per empty attribute key or malformed tracestate: one request could log a
    line per span, in text its client chose.  While :meth:`held` is active on a thread, those
    records are counted instead (the bridge says it once per request, rate-limited); other
    threads, and this one at other times, log as usual.
    """

    LOGGERS = ("opentelemetry.attributes", "opentelemetry.trace.span", otlp.__name__)

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None:
            return True
        if not held.count:
            held.first = record.getMessage()
        held.count += 1
        return False

    @contextlib.contextmanager
    def held(self) -> Iterator[_Held]:
        self._local.held = held = _Held()
        try:
            yield held
        finally:
            self._local.held = None


_sdk_refusals = _SdkRefusals()


class _ServerNoise(logging.Filter):
    """Lets each of the HTTP server's warnings through once a minute, with a count of those held back.

    uvicorn warns once per bad connection ("Invalid HTTP request received."): any client can make
    it write a line per connection. The bridge's own messages are rate-limited the same way.
    """

    def __init__(self) -> None:
        super().__init__()
        self._limit = RateLimitedLog(_logger)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        held = self._limit.admit(str(record.msg)[:200])
        if held:
            record.msg = f"{record.msg} ({held} similar messages suppressed)"
        return held is not None


_server_noise = _ServerNoise()


def _bounded_protocol(
    *, header_timeout: float, body_timeout: float, max_connections: int, retry_after: int
) -> type[H11Protocol]:
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head and body, and a ceiling on connections.

    uvicorn times out a kept-alive connection only between requests, once one has completed:
    a client that connects and sends nothing, or sends a request line and then a header byte
    at a time, or a body a byte at a time, holds its connection (and a file descriptor) for ever,
    however many such connections there are.  Here:

    * The request line and headers must be in within ``header_timeout`` of the connection
      opening or of the previous request ending (its response sent and its body in); else the
      connection is closed.
    * Once a head is in, the whole body must be in within ``body_timeout``, however steadily it
      trickles; else the request is answered 408 (an OTLP ``Status``, ``DEADLINE_EXCEEDED``) and
      the connection closed.  This also bounds a request answered before its body was read (a
      401, a 404, a 503): uvicorn reads such a body on, and discards it, for as long as it comes.
    * A client that reads none of the answers (it pipelines requests, or sends a body, and reads
      nothing) holds its connection no longer than ``body_timeout`` once the bridge's writes to it
      back up (the transport pauses writing): then the connection is dropped (aborted, as what is
      buffered for it would never go out).
    * At most ``max_connections`` connections are open.  One more is answered at once, before
      its request is read, with a 503 and ``Retry-After`` (which OTLP clients retry), and closed
      at once: no lingering, so a flood of connections holds no more file descriptors than that.
      Refused connections do not count.

    uvicorn's own ``limit_concurrency`` is not used: it looks at the count only once a request's
    head has arrived, so a connection over the limit still holds its descriptor until then; its
    503 carries no ``Retry-After``; and it counts the connection that asks, so it serves one
    connection fewer than its limit.
    """
    refusal = _refusal(retry_after)

    class BoundedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _write_deadline: asyncio.TimerHandle | None = None  # runs while the client reads none of our answers
        _waiting_for: str | None = None  # what the running deadline is for: "head", "body" or nothing
        _refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            full = len(self.connections) >= max_connections  # asked before uvicorn counts this one
            super().connection_made(transport)
            if full:
                self._refuse()
            else:
                self._watch()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._waiting_for = None
            self._cancel_deadline()
            self._cancel_write_deadline()
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_deadline is None:
                self._write_deadline = self.loop.call_later(body_timeout, self._write_expired)

        def resume_writing(self) -> None:
            super().resume_writing()
            self._cancel_write_deadline()

        def _cancel_write_deadline(self) -> None:
            if self._write_deadline is not None:
                self._write_deadline.cancel()
                self._write_deadline = None

        def _write_expired(self) -> None:
            """The client has read nothing of our answers for ``body_timeout``: drop the connection."""
            self._write_deadline = None
            _limited.warning(
                "write-timeout",
                "Dropped a connection from %s that read none of its answers for %s s (%s).",
                self._peer(),
                body_timeout,
                env.MAXIM_BRIDGE_BODY_TIMEOUT,
            )
            self.transport.abort()  # close() would wait for the client to read what is buffered: for ever

        def _refuse(self) -> None:
            self._refused = True
            self.connections.discard(self)  # closed below: it must keep no other connection out
            _limited.warning(
                "too-many-connections",
                "Refused a connection from %s: %d connections are open, the most the bridge holds (%s); "
                "answered 503 so that it retries later.",
                self._peer(),
                len(self.connections),
                env.MAXIM_BRIDGE_MAX_CONNECTIONS,
            )
            self.transport.write(refusal)
            self.transport.close()

        def _watch(self) -> None:
            """Start the deadline for what the connection now waits for, when that has changed."""
            state = self.conn.their_state
            waiting_for = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
            if waiting_for == self._waiting_for:
                return  # still the same head, or the same body: its deadline runs on
            self._waiting_for = waiting_for
            self._cancel_deadline()
            if waiting_for is not None and not self.transport.is_closing():
                timeout = header_timeout if waiting_for == "head" else body_timeout
                self._deadline = self.loop.call_later(timeout, self._expired)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            waited_for, self._waiting_for = self._waiting_for, None
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            if (waited_for, state) not in (("head", h11.IDLE), ("body", h11.SEND_BODY)):
                self._watch()  # the request moved on unseen: time what it waits for now
                return
            if waited_for == "head":
                _limited.warning(
                    "header-timeout",
                    "Closing a connection from %s that sent no complete request head within %s s.",
                    self._peer(),
                    header_timeout,
                )
                with contextlib.suppress(h11.LocalProtocolError):
                    self.conn.send(h11.ConnectionClosed())
            else:
                answered = self._answer_late_body()
                _limited.warning(
                    "body-timeout",
                    "%s a connection from %s whose request body did not all arrive within %s s of its head (%s).",
                    "Answered 408 and closed" if answered else "Closed",
                    self._peer(),
                    body_timeout,
                    env.MAXIM_BRIDGE_BODY_TIMEOUT,
                )
            if self.flow.write_paused:
                self.transport.abort()  # the client reads nothing: close() would wait for it to
            else:
                self.transport.close()

        def _answer_late_body(self) -> bool:
            """Answer 408 to the request whose body is late, unless it has been answered; whether it was."""
            cycle = self.cycle
            if cycle is None or cycle.response_started:
                return False  # answered already (a 401, a 404): only the connection is left to close
            cycle.disconnected = True  # the application's reads end, and what it answers goes nowhere
            cycle.message_event.set()
            answer_as = _answer_media(dict(self.headers).get(b"content-type", b"").decode("latin-1"))
            message = f"the request body did not all arrive within {body_timeout} s of its head"
            body = otlp.encode_status(_CODE_DEADLINE_EXCEEDED, message, answer_as)
            headers = [
                (b"content-type", answer_as.encode("ascii")),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ]
            events = (h11.Response(status_code=408, headers=headers, reason=b"Request Timeout"), h11.Data(data=body))
            try:
                for event in (*events, h11.EndOfMessage()):
                    data = self.conn.send(event)
                    if data:
                        self.transport.write(data)
            except h11.LocalProtocolError:
                return False
            return True

        def _peer(self) -> str:
            return "%s:%d" % self.client if self.client else "an unknown address"  # noqa: UP031

    return BoundedH11Protocol


def _refusal(retry_after: int) -> bytes:
    """The whole answer to a connection over the limit: a 503 that OTLP clients retry after ``retry_after`` s.

    Sent before the request is read, so its media type is unknown: plain text, not an OTLP ``Status``.
    """
    body = b"the bridge holds as many connections as it may; retry later\n"
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {retry_after}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _answer_media(content_type: str) -> str:
    """The media type of an answer to a request of ``content_type``: the same, when it is OTLP's; else JSON."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media if media in (otlp.CONTENT_TYPE_PROTOBUF, otlp.CONTENT_TYPE_JSON) else otlp.CONTENT_TYPE_JSON


def _connections_the_process_can_hold(wanted: int, configured: bool) -> int:
    """``wanted``, or fewer when the process may not open that many files and keep ``_FDS_KEPT`` for the rest.

    A ceiling on connections is there to keep file descriptors for the exporter (its HTTPS connections,
    its spool files): one above the process's limit on open files (often 1024) would not.
    """
    if sys.platform == "win32":
        return wanted
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted + _FDS_KEPT <= soft:
        return wanted
    held = max(1, soft - _FDS_KEPT)
    _logger.log(
        logging.WARNING if configured else logging.INFO,
        "The bridge holds at most %d connections, not %d: the process may open %d files (ulimit -n) and keeps "
        "%d of them for the exporter and the server. Raise that limit (ulimit -n; LimitNOFILE= under systemd) "
        "to hold more.",
        held,
        wanted,
        soft,
        _FDS_KEPT,
    )
    return held


def _status(code: int, rpc_code: int, message: str, answer_as: str, *, auth: bool = False) -> Response:
    response = Response(otlp.encode_status(rpc_code, message, answer_as), status_code=code, media_type=answer_as)
    if auth:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _json_response(code: int, body: dict[str, object]) -> Response:
    return Response(json.dumps(body), status_code=code, media_type="application/json")


class ListenError(OSError):
    """The address cannot be listened on; the message names it, and the variables it came from."""


def _listen(host: str, port: int, variables: Sequence[str]) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port); ``variables``: the environment
    variables that gave the address, for the message of a :class:`ListenError`."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = addresses[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        given = f" (from {' and '.join(variables)})" if variables else ""
        raise ListenError(exc.errno, f"cannot listen on {host}:{port}{given}: {exc.strerror or exc}") from exc
    return sock


class BridgeServer:
    """``bridge`` served by uvicorn on a socket bound at once (so ``port=0`` gives a known free :attr:`port`).

    :meth:`run` blocks until :meth:`stop`, SIGTERM or SIGINT (signals only when run
    on the main thread), then shuts down gracefully: requests in flight finish,
    and the bridge's lifespan drains the queue and shuts the exporter down.
    ``host`` and ``port`` default to ``MAXIM_BRIDGE_HOST`` / ``MAXIM_BRIDGE_PORT``,
    else 127.0.0.1:4318.  Each bound below comes from its argument, else its variable, else
    its default:

    * ``header_timeout`` (``MAXIM_BRIDGE_HEADER_TIMEOUT``, 10): seconds a connection may take
      to send a request's line and headers, from when it opens or its previous request ends;
      a connection that takes longer is closed.
    * ``body_timeout`` (``MAXIM_BRIDGE_BODY_TIMEOUT``, 30): seconds a request's whole body may
      take once its head is in; a request that takes longer is answered 408 (unless answered
      already) and its connection closed.  Also how long a client may read none of the answers
      backed up for it before its connection is dropped.
    * ``max_connections`` (``MAXIM_BRIDGE_MAX_CONNECTIONS``, 1000): connections open at once;
      one more is answered 503 with the bridge's ``Retry-After`` before its request is read,
      and closed.  Lowered, with a log line, to the process's limit on open files minus 128.

    Raises ``OSError`` when the address cannot be bound and ``ValueError`` for a bad
    argument.
    """

    def __init__(
        self,
        bridge: Bridge,
        host: str | None = None,
        port: int | None = None,
        *,
        header_timeout: float | None = None,
        body_timeout: float | None = None,
        max_connections: int | None = None,
    ) -> None:
        variables = [
            name
            for name, arg in ((env.MAXIM_BRIDGE_HOST, host), (env.MAXIM_BRIDGE_PORT, port))
            if arg is None and env_str(name)
        ]
        host = host if host is not None else (env_str(env.MAXIM_BRIDGE_HOST) or DEFAULT_HOST)
        # A bad argument (a --port flag) raises; a bad MAXIM_BRIDGE_PORT, out of range too, is warned about.
        port = resolve_int(port, "port", env.MAXIM_BRIDGE_PORT, DEFAULT_PORT, minimum=0, maximum=_MAX_PORT)
        header_timeout = resolve_seconds(
            header_timeout, "header_timeout", env.MAXIM_BRIDGE_HEADER_TIMEOUT, DEFAULT_HEADER_TIMEOUT, minimum=0.001
        )
        body_timeout = resolve_seconds(
            body_timeout, "body_timeout", env.MAXIM_BRIDGE_BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT, minimum=0.001
        )
        wanted = resolve_int(
            max_connections, "max_connections", env.MAXIM_BRIDGE_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS, minimum=1
        )
        configured = max_connections is not None or env_str(env.MAXIM_BRIDGE_MAX_CONNECTIONS) is not None
        self.bridge = bridge
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = _connections_the_process_can_hold(wanted, configured)
        self._socket = _listen(host, port, variables)
        bound = self._socket.getsockname()
        self.host: str = bound[0]
        self.port: int = bound[1]
        config = uvicorn.Config(
            bridge.app,
            lifespan="on",
            ws="none",  # OTLP/HTTP only: no websocket stack to import
            http=_bounded_protocol(
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                max_connections=self.max_connections,
                retry_after=bridge._retry_after,
            ),
            log_config=None,  # the application configures logging, not the server
            access_log=False,
            timeout_graceful_shutdown=_GRACEFUL_SECONDS,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(_server_noise)  # once: a filter is added only once

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self._socket.family == socket.AF_INET6 else self.host
        return f"http://{host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._server.started

    def run(self) -> None:
        _logger.info(
            "otel-maxim bridge listening on %s%s (bearer token %s)",
            self.url,
            _TRACES_PATH,
            "required" if self.bridge.requires_token else "not required",
        )
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            self.bridge.close()  # done by the lifespan already, unless the server failed to start

    def stop(self) -> None:
        """Ask :meth:`run` to shut down gracefully (from any thread)."""
        self._server.should_exit = True


def serve(
    bridge: Bridge,
    host: str | None = None,
    port: int | None = None,
    *,
    header_timeout: float | None = None,
    body_timeout: float | None = None,
    max_connections: int | None = None,
) -> None:
    """Serve ``bridge`` until SIGTERM or SIGINT, then shut down gracefully (blocking); see :class:`BridgeServer`."""
    try:
        server = BridgeServer(
            bridge,
            host,
            port,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
        )
    except BaseException:
        bridge.close()
        raise
    server.run()
