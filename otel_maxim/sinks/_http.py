"""HTTP calls to Maxim's log API: one ``requests.Session``, Maxim's headers, no redirects, no tracing.

Every call returns a :class:`Reply` instead of raising, classified the way the
OTLP specification classifies export failures: connection errors, timeouts,
429, 502, 503 and 504 may be retried; anything else is final for what was
sent.  Some final answers to the log push (and the repository check) are not
about what was sent: a refused key (401, 403), a missing repository or
endpoint, a redirect, a URL the HTTP client cannot use; they are
:attr:`Kind.BLOCKED`, so that the records wait for the fix instead of being
set aside.  An upload (its upload-url call, its PUT) is never BLOCKED: a 403
there may refuse uploads only (attachments not enabled for the key, say) while
the log push works, so it fails that one upload.  The API key is held here
only: it is sent in the ``x-maxim-api-key`` header of calls to the base URL
(never to the signed storage URL of a large record) and is scrubbed from every
message this module produces.
"""

from __future__ import annotations

import email.utils
import enum
import ipaddress
import json
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests
import urllib3
from opentelemetry import context

from otel_maxim._version import __version__

__all__ = ["ApiClient", "Kind", "Reply", "base_url_problem", "header_value_problem", "shown_url", "untraced"]

#: The maxim-py release whose wire format we write; sent as ``x-maxim-sdk-version`` like maxim-py does.
#: (``User-Agent`` says who we really are.)
MAXIM_SDK_WIRE_VERSION = "3.14.20"
LOG_PATH = "/api/sdk/v3/log"
REPOSITORY_PATH = "/api/sdk/v3/log-repositories"
UPLOAD_URL_PATH = "/api/sdk/v1/log-repositories/attachments/upload-url"
#: Statuses worth another try (OTLP/HTTP's list).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses of the log push (besides redirects, which are not followed) that refuse the key, the repository or
#: the endpoint: whatever a request carries, the next one gets the same answer until the settings change.
BLOCKING_STATUSES = frozenset({401, 403, 404, 405, 407, 410})
#: Of those, the ones that refuse the settings themselves (the key, a proxy's credentials) whatever the
#: call: the upload-url call blocks on these only (a 403 or 404 there may mean uploads alone are refused).
SETTINGS_STATUSES = frozenset({401, 407})
#: The connect phase never needs long; the rest of the time budget is for the answer.
_CONNECT_TIMEOUT = 10.0
#: Longest ``Retry-After`` we accept (a bigger one is clamped: records wait on disk meanwhile).
_MAX_RETRY_AFTER = 600.0
#: Most of an answer that is read: Maxim answers with small JSON objects, and a log keeps 300
#: characters of anything else (a proxy's error page, say, which may be of any size).
_ANSWER_LIMIT = 64 * 1024
_MESSAGE_LIMIT = 300
_UNSAFE_HEADER = re.compile(r"[\x00-\x20\x7f]")
#: How urllib3 reports a proxy's refusal of a tunnel: "Tunnel connection failed: 407 Proxy Authentication Required".
_PROXY_AUTHENTICATION = re.compile(r"\b407\b")


class Kind(enum.Enum):
    OK = "ok"
    RETRY = "retry"  # nothing was settled: the same request may be sent again
    FAIL = "fail"  # the server said no; sending the same bytes again will most likely fail again
    BLOCKED = "blocked"  # no log push can succeed as set up (key, repository, URL), whatever it carries


@dataclass(frozen=True)
class Reply:
    """The outcome of one HTTP call."""

    kind: Kind
    status: int | None  # None: no HTTP answer (connection error, timeout)
    message: str = ""  # for logs: Maxim's error message or the transport error, key scrubbed
    retry_after: float | None = None  # seconds, from ``Retry-After``
    data: Any = None  # the JSON answer of a successful API call

    def describe(self) -> str:
        if self.status is None:
            return self.message
        return f"HTTP {self.status}: {self.message}" if self.message else f"HTTP {self.status}"


@contextmanager
def untraced() -> Iterator[None]:
    """Suppress instrumentation (the SDK's key), so an instrumented HTTP client makes no span of our calls."""
    token = context.attach(context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        context.detach(token)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(url: str, allow_insecure: bool, *, signed: bool = False) -> str | None:
    """What is wrong with ``url`` as the base URL of the API, or ``None``.

    ``signed``: ``url`` is a signed upload URL, whose query is its signature (S3's
    ``X-Amz-Signature``, GCS's ``X-Goog-Signature``): a query is then expected.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http"):
        return "must be an https:// URL"
    if not host:
        return "has no host (https://<host>)"
    if "@" in parts.netloc:
        return "must not carry a user or password (the API key goes in its own header)"
    if parts.fragment:
        return "must not have a fragment"
    if parts.query and not signed:
        return "must not have a query"
    if parts.scheme == "http" and not allow_insecure and not is_loopback(host):
        return "is plain http:// to a host that is not loopback; use https:// (or allow_insecure, MAXIM_ALLOW_INSECURE)"
    return _client_problem(url, host)


def _client_problem(url: str, host: str) -> str | None:
    """Why the HTTP client (``requests``, and urllib3 when it connects) cannot send to ``url``
    as :func:`urlsplit` reads it, or ``None``: better refused with the settings than at every call."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        sent_to = urlsplit(prepared.url or "").hostname or ""
    except (requests.RequestException, ValueError) as exc:  # InvalidURL: "Host 'exa mple.com' contains ..."
        return f"is not a URL the HTTP client can use ({exc})"
    if host.isascii() and sent_to != host:  # a backslash in the host, say: the client calls what comes before it
        return f"names the host {host!r}, which the HTTP client reads as {sent_to!r}"
    try:
        sent_to.encode("idna")  # what urllib3 checks as it connects
    except UnicodeError:
        return f"has a host name with an empty label or one over 63 characters ({sent_to!r})"
    return None


def shown_url(url: str) -> str:
    """``url`` for a message: a user and password in it (a secret, and refused) blotted out."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<not a URL>"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value, without quoting it (it is a secret)."""
    if not value.isascii() or _UNSAFE_HEADER.search(value):
        return "contains whitespace, control or non-ASCII characters"
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):  # OverflowError: a year past 9999
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _answer_text(response: requests.Response) -> str:
    """The answer's body as text, at most :data:`_ANSWER_LIMIT` bytes of it.  A short answer is read to its
    end, so that its connection can be used again; a longer one is cut, and its connection closed."""
    chunks = response.iter_content(_ANSWER_LIMIT)
    body = next(chunks, b"")
    next(chunks, None)  # the end of a short answer (else a second piece, left unread with the rest)
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _describe(exc: BaseException) -> str:
    """``Type: innermost cause`` (urllib3 wraps a refused connection three levels deep), shortened."""
    cause: BaseException = exc
    for _ in range(5):
        inner = getattr(cause, "reason", None)
        if not isinstance(inner, BaseException) and cause.args and isinstance(cause.args[0], BaseException):
            inner = cause.args[0]
        if not isinstance(inner, BaseException) or inner is cause:
            break
        cause = inner
    return f"{type(exc).__name__}: {cause}"


def _signature_of(url: str) -> tuple[str, ...]:
    """The values of signed ``url``'s query (its signature, its credential), raw and decoded, longest first:
    storage answers a refused signature with it (S3's ``SignatureProvided``)."""
    query = urlsplit(url).query
    values = {part.partition("=")[2] for part in query.split("&")} | {value for _, value in parse_qsl(query)}
    return tuple(sorted((value for value in values if len(value) >= 8), key=len, reverse=True))


def _error_message(payload: Any) -> str | None:
    """Maxim's error message out of a JSON answer: ``{"error": {"message": ...}}`` and the usual variants."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        return str(message) if message is not None else json.dumps(error)
    if error is not None and error is not False:
        return str(error)
    message = payload.get("message")
    return str(message) if message is not None else None


class _Deadline:
    """One call's deadline for the whole exchange.  ``requests`` bounds each read of the socket, not the
    call: a server (or proxy) that trickles its answer a byte at a time would hold the sender for
    hours.  At the deadline, the socket of the connection the call uses is shut, which ends any read."""

    _current = threading.local()  # per thread, the call under way: its connection is noted as it is used

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.expired = False
        self.connection: Any = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        _Deadline._current.call = self
        try:
            self._timer.start()
        except RuntimeError:  # no new thread at interpreter shutdown (3.12+): each read keeps its own bound
            pass
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        _Deadline._current.call = None

    @classmethod
    def note(cls, connection: Any) -> None:
        call = getattr(cls._current, "call", None)
        if call is not None:
            call.connection = connection

    def _expire(self) -> None:
        self.expired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # closed already


class _Watched:
    """A connection that tells the call under way in its thread that the call uses it."""

    def putrequest(self, *args: Any, **kwargs: Any) -> None:
        _Deadline.note(self)
        super().putrequest(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _Adapter(requests.adapters.HTTPAdapter):
    """``requests``' adapter, with connections that a :class:`_Deadline` can find (also through an HTTP
    proxy; a SOCKS proxy's connections are its own, and keep the bound of each read only)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _Session(requests.Session):
    """A session that never works out where a redirect leads: it is not followed (see ``_call``), and
    ``requests`` would raise from inside the call on a ``Location`` that is not a URL (``_classify`` reads it)."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        return None


class ApiClient:
    """The calls to Maxim's log API for one repository."""

    def __init__(self, base_url: str, api_key: str, repo_id: str, *, allow_insecure: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.repo_id = repo_id
        self._allow_insecure = allow_insecure
        self._key = api_key
        self._headers = {
            "x-maxim-api-key": api_key,
            "x-maxim-sdk-version": MAXIM_SDK_WIRE_VERSION,
            "User-Agent": f"otel-maxim/{__version__} {requests.utils.default_user_agent()}",
        }
        self._session = _Session()
        self._session.verify = True
        for prefix in ("https://", "http://"):
            self._session.mount(prefix, _Adapter())
        # Plain http is allowed to a loopback base URL only, as the key then stays on this machine; a proxy
        # from the environment (HTTP_PROXY) would carry it, in clear text, elsewhere.
        host = urlsplit(self.base_url).hostname or ""
        self._api_proxies = {"no_proxy": host} if is_loopback(host) else None
        self._log_url = f"{self.base_url}{LOG_PATH}?id={quote(repo_id, safe='')}"

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self.base_url!r}, repo_id={self.repo_id!r})"

    def close(self) -> None:
        self._session.close()

    def scrub(self, text: str, limit: int = _MESSAGE_LIMIT, *, signature: tuple[str, ...] = ()) -> str:
        """``text`` for a log: the API key (and a signed URL's ``signature``) blotted out, then cut to ``limit``.

        Belt and braces: messages come from servers and libraries, and one may echo what it was sent.
        Blotting out comes first, so that a cut cannot leave part of a secret that no longer matches.
        """
        if self._key and self._key in text:
            text = text.replace(self._key, "[api key]")
        for value in signature:
            if value in text:
                text = text.replace(value, "[signed]")
        return text[:limit]

    # --- the calls ---------------------------------------------------------------

    def post_log(self, body: bytes, timeout: float) -> Reply:
        """POST record lines (joined by newlines) to the repository."""
        return self._call("POST", self._log_url, timeout, data=body, api=True, blocking=BLOCKING_STATUSES)

    def check_repository(self, timeout: float) -> Reply:
        url = f"{self.base_url}{REPOSITORY_PATH}?loggerId={quote(self.repo_id, safe='')}"
        return self._call("GET", url, timeout, api=True, blocking=BLOCKING_STATUSES)

    def upload_url(self, key: str, size: int, timeout: float, *, mime_type: str = "text/plain") -> Reply:
        """Ask for a signed URL to PUT a large record (or a file) at; on success ``data`` is the URL.

        :attr:`Kind.BLOCKED` only for what refuses the settings whatever the call (a refused key, a proxy's
        credentials, a redirect, a URL the client cannot use): the records wait for the fix.  Another
        refusal (403 or 404 when uploads are not enabled for the key, say) is about this upload, while the
        log push may work: it fails this upload only.
        """
        query = f"key={quote(key, safe='/')}&mimeType={quote(mime_type, safe='/')}&size={size}"
        url = f"{self.base_url}{UPLOAD_URL_PATH}?{query}"
        reply = self._call("GET", url, timeout, api=True, blocking=SETTINGS_STATUSES)
        if reply.kind is not Kind.OK:
            return reply
        data = reply.data.get("data") if isinstance(reply.data, dict) else None
        signed = data.get("url") if isinstance(data, dict) else None
        if not isinstance(signed, str) or not signed:
            return Reply(Kind.FAIL, reply.status, "the upload-url answer has no data.url")
        problem = base_url_problem(signed, self._allow_insecure, signed=True)
        if problem is not None:
            return Reply(Kind.FAIL, reply.status, f"the signed upload URL {problem}")
        return Reply(Kind.OK, reply.status, data=signed)

    def put(self, url: str, body: bytes, timeout: float, *, mime_type: str = "text/plain") -> Reply:
        """PUT a large record (or a file) at a signed URL.

        No API key goes there, and its signature stays out of messages.
        """
        return self._call("PUT", url, timeout, data=body, api=False, headers={"Content-Type": mime_type})

    # --- one call, classified ------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        timeout: float,
        *,
        api: bool,
        blocking: frozenset[int] = frozenset(),
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """One call, classified.  It never raises: a fault met on an answer nobody foresaw (ours or a
        library's) is a :attr:`Kind.RETRY`, so the records wait (on disk if it lasts) and the log says what."""
        signature = () if api else _signature_of(url)  # a signed URL's query is a credential too
        try:
            return self._exchange(method, url, timeout, api, blocking, signature, data, headers)
        except Exception as exc:
            return Reply(Kind.RETRY, None, self.scrub(f"unexpected {_describe(exc)}", signature=signature))

    def _exchange(
        self,
        method: str,
        url: str,
        timeout: float,
        api: bool,
        blocking: frozenset[int],
        signature: tuple[str, ...],
        data: bytes | None,
        headers: dict[str, str] | None,
    ) -> Reply:
        timeout = max(timeout, 0.001)
        sent = dict(self._headers) if api else {"User-Agent": self._headers["User-Agent"]}
        if headers:
            sent.update(headers)
        deadline = _Deadline(timeout)
        try:
            with untraced(), deadline:
                response = self._send(method, url, deadline.at, sent, data, self._api_proxies if api else None)
                try:
                    status = response.status_code
                    text = _answer_text(response)
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    location = response.headers.get("Location", "")
                finally:
                    response.close()
        except (requests.RequestException, ValueError) as exc:  # urllib3's LocationParseError is a bare ValueError
            if not deadline.expired:
                return self._failed(exc, blocking, signature)
        if deadline.expired:  # cut at its deadline (what was read of the answer may be any part of it)
            return Reply(Kind.RETRY, None, f"no whole answer within {timeout:.3g} s")
        return self._classify(status, text, retry_after, location, api, blocking, signature)

    def _failed(self, exc: Exception, blocking: frozenset[int], signature: tuple[str, ...]) -> Reply:
        """A call that got no answer, classified."""
        message = self.scrub(_describe(exc), signature=signature)
        if isinstance(exc, requests.exceptions.ProxyError) and _PROXY_AUTHENTICATION.search(str(exc)):
            # An HTTPS proxy answers the tunnel's CONNECT: its 407 comes as an error, not as an answer.
            return Reply(Kind.BLOCKED if 407 in blocking else Kind.FAIL, 407, message)
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
            return Reply(Kind.RETRY, None, message)
        # The client could not make the call.  To the log push, whose URL and headers come from the settings,
        # that is about the settings, not the records; to an upload, about that one upload.
        return Reply(Kind.BLOCKED if blocking else Kind.FAIL, None, message)

    def _send(
        self,
        method: str,
        url: str,
        deadline: float,
        headers: dict[str, str],
        data: bytes | None,
        proxies: dict[str, str] | None,
    ) -> requests.Response:
        """The request, made again at once if the server closed a kept-alive connection under it (an idle
        connection it dropped as the request went out): only a second such failure is an outage."""
        retried = False
        while True:
            timeout = max(deadline - time.monotonic(), 0.001)
            try:
                return self._session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=(min(timeout, _CONNECT_TIMEOUT), timeout),
                    allow_redirects=False,  # a redirect elsewhere would carry the key along
                    stream=True,  # so that no more of the answer than _answer_text reads is read
                    proxies=proxies,
                )
            except requests.ConnectionError as exc:
                dropped = bool(exc.args) and isinstance(exc.args[0], urllib3.exceptions.ProtocolError)
                if retried or not dropped or time.monotonic() >= deadline:
                    raise
                retried = True

    def _classify(
        self,
        status: int,
        text: str,
        retry_after: float | None,
        location: str,
        api: bool,
        blocking: frozenset[int],
        signature: tuple[str, ...],
    ) -> Reply:
        payload: Any = None
        try:
            payload = json.loads(text) if text else None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            payload = None
        if 200 <= status < 300:
            if not api:
                return Reply(Kind.OK, status)
            if payload is None:
                # maxim-py counts this as a failure too; it is most likely a proxy's page, not Maxim: try again.
                return Reply(Kind.RETRY, status, f"the answer is not JSON: {self.scrub(text, 80)!r}")
            message = _error_message(payload) if isinstance(payload, dict) and "error" in payload else None
            if message is not None:
                return Reply(Kind.FAIL, status, self.scrub(message))
            return Reply(Kind.OK, status, data=payload)
        message = _error_message(payload) or " ".join(text.split())
        redirect = 300 <= status < 400
        if redirect:
            try:
                target = urlsplit(location).netloc or location
            except ValueError:  # "http://[::1": not even a URL; not followed all the same
                target = location
            message = f"redirected to {target!r}; not followed"
        if status in RETRYABLE_STATUSES:
            kind = Kind.RETRY
        elif blocking and (redirect or status in blocking):
            kind = Kind.BLOCKED
        else:
            kind = Kind.FAIL
        return Reply(kind, status, self.scrub(message, signature=signature), retry_after)
