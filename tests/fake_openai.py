"""A deterministic, in-process fake of the OpenAI HTTP API for tests.

The server listens on ``127.0.0.1`` on an ephemeral port and speaks just
enough of the OpenAI REST protocol for the official ``openai`` client (and
anything built on it, such as ``langchain-openai``) to work against it, so
that OpenTelemetry instrumentations can be exercised end to end without any
network access.

Endpoints
---------
``POST /v1/chat/completions``
    The answer is chosen from the request, in this order:

    1. **Failure** - if the last ``user`` message contains the word ``FAIL``
       (case-sensitive, whole word), the server answers HTTP 500 with an
       OpenAI-style error body (see :data:`FAIL_ERROR_MESSAGE`) and the header
       ``x-should-retry: false`` so the ``openai`` client does not retry.
    2. **Tool call** - if the request has a non-empty ``tools`` list, the last
       message is not a ``tool`` result and ``tool_choice`` is not ``"none"``,
       the answer is an assistant message with one ``tool_calls`` entry for the
       first tool (or the tool named by ``tool_choice``), whose arguments are
       derived from the tool's JSON schema (see :func:`fake_arguments_for`),
       and ``finish_reason`` is ``"tool_calls"``.
    3. **Plain answer** - otherwise the assistant content is
       ``ANSWER_PREFIX + <text of the last user message>`` (or
       ``TOOL_RESULT_PREFIX + <tool content>`` when the last message is a tool
       result, which lets agent loops terminate) and ``finish_reason`` is
       ``"stop"``.

    With ``"stream": true`` the same answer is sent as Server-Sent Events
    (``chat.completion.chunk`` objects, then ``data: [DONE]``); when
    ``stream_options.include_usage`` is true a final chunk with empty
    ``choices`` and the usage block is sent before ``[DONE]``.

``POST /v1/embeddings``
    One fixed vector (:data:`EMBEDDING_VECTOR`) per input item, honouring
    ``encoding_format`` (``"float"`` or ``"base64"``; the ``openai`` client
    asks for base64 by default). An input containing the word ``FAIL`` yields
    the same HTTP 500 error as for chat.

``GET /v1/models``
    A one-model listing (convenience only).

Anything else gets an OpenAI-style 404 error; malformed JSON gets a 400.

Every request (including failing and unknown ones) is recorded in
:attr:`FakeOpenAIServer.requests` for assertions.

Fixed numbers
-------------
All usage numbers are constants, independent of the request, so tests can
assert exact token counts: chat uses :data:`PROMPT_TOKENS` /
:data:`COMPLETION_TOKENS` / :data:`TOTAL_TOKENS`; embeddings use
:data:`EMBEDDING_PROMPT_TOKENS`. The response ``model`` is the request model
followed by :data:`RESPONSE_MODEL_SUFFIX`, so request and response model can
be told apart. Ids are deterministic per server instance: the N-th chat
completion answered (failures excluded) has id ``chatcmpl-fake-N`` and, if it
is a tool call, tool-call id ``call_fake_N``; every response carries
``x-request-id: req_fake_M`` (M counts HTTP responses). ``created`` is
:data:`CREATED` and ``system_fingerprint`` is :data:`SYSTEM_FINGERPRINT`.

Usage
-----
As a context manager::

    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert server.requests[0].path == "/v1/chat/completions"

As a pytest fixture::

    @pytest.fixture
    def fake_openai() -> Iterator[FakeOpenAIServer]:
        with FakeOpenAIServer() as server:
            yield server

The module is standard-library only.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "ANSWER_PREFIX",
    "COMPLETION_TOKENS",
    "CREATED",
    "EMBEDDING_PROMPT_TOKENS",
    "EMBEDDING_VECTOR",
    "FAIL_ERROR_CODE",
    "FAIL_ERROR_MESSAGE",
    "FAIL_ERROR_TYPE",
    "FakeOpenAIServer",
    "PROMPT_TOKENS",
    "RESPONSE_MODEL_SUFFIX",
    "RecordedRequest",
    "SYSTEM_FINGERPRINT",
    "TOOL_RESULT_PREFIX",
    "TOTAL_TOKENS",
    "fake_arguments_for",
]

# --------------------------------------------------------------------------
# Fixed values (part of the test contract: tests may assert on them)
# --------------------------------------------------------------------------

#: ``usage.prompt_tokens`` of every chat completion.
PROMPT_TOKENS: int = 11
#: ``usage.completion_tokens`` of every chat completion.
COMPLETION_TOKENS: int = 7
#: ``usage.total_tokens`` of every chat completion.
TOTAL_TOKENS: int = PROMPT_TOKENS + COMPLETION_TOKENS
#: ``usage.prompt_tokens_details.cached_tokens`` of every chat completion.
CACHED_TOKENS: int = 3
#: ``usage.completion_tokens_details.reasoning_tokens`` of every chat completion.
REASONING_TOKENS: int = 2
#: ``usage.prompt_tokens`` (and ``total_tokens``) of every embeddings call.
EMBEDDING_PROMPT_TOKENS: int = 5
#: The embedding returned for every input item.
EMBEDDING_VECTOR: tuple[float, ...] = (0.125, -0.25, 0.5, 1.0)
#: Appended to the request model to form the response ``model``.
RESPONSE_MODEL_SUFFIX: str = "-fake-0001"
#: ``created`` timestamp of every response.
CREATED: int = 1_700_000_000
#: ``system_fingerprint`` of every chat response.
SYSTEM_FINGERPRINT: str = "fp_fake"
#: Prefix of a plain answer; the last user message's text follows it.
ANSWER_PREFIX: str = "Fake answer to: "
#: Prefix of the answer given after a ``tool`` message; its content follows.
TOOL_RESULT_PREFIX: str = "Tool result received: "
#: ``error.message`` of the HTTP 500 answer.
FAIL_ERROR_MESSAGE: str = "The fake server was asked to FAIL."
#: ``error.type`` of the HTTP 500 answer.
FAIL_ERROR_TYPE: str = "server_error"
#: ``error.code`` of the HTTP 500 answer.
FAIL_ERROR_CODE: str = "fake_failure"

_FAIL_RE = re.compile(r"\bFAIL\b")
_JSON = dict[str, Any]


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake server.

    A request is recorded *before* any byte of its response is written, so a
    client that has received a response can always find its request in
    :attr:`FakeOpenAIServer.requests`. ``status`` is filled in just before the
    response status line is sent (it is ``0`` only in that short window).

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request path without the query string, e.g.
            ``"/v1/chat/completions"``.
        query: Raw query string (without ``?``), possibly empty.
        headers: Request headers with lower-cased names (last value wins).
        body: The raw request body.
        json: The body parsed as JSON, or ``None`` if it was empty or invalid.
        status: The HTTP status the server answered with.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    json: Any | None
    status: int = 0


@dataclass
class _Answer:
    """The assistant turn chosen for a chat request."""

    content: str | None
    tool_calls: list[_JSON] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


# --------------------------------------------------------------------------
# Request interpretation helpers
# --------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Return the text of a message ``content`` (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return " ".join(texts)
    return str(content)


def _messages(body: Mapping[str, Any]) -> list[_JSON]:
    raw = body.get("messages")
    if not isinstance(raw, list):
        return []
    return [m for m in raw if isinstance(m, dict)]


def _last_user_text(messages: list[_JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _fake_value_for(schema: Any) -> Any:
    """A deterministic value matching a (small subset of) JSON schema."""
    if not isinstance(schema, dict):
        return "test"
    if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return [_fake_value_for(schema.get("items"))]
    if kind == "object":
        return fake_arguments_for(schema)
    if kind == "null":
        return None
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            for option in options:
                if not (isinstance(option, dict) and option.get("type") == "null"):
                    return _fake_value_for(option)
    return "test"


def fake_arguments_for(parameters: Any) -> _JSON:
    """Build deterministic tool-call arguments from a JSON-schema object.

    Every property listed in ``properties`` gets a value: the first ``enum``
    member, else the ``default``, else ``"test"`` for strings, ``1`` for
    integers, ``1.5`` for numbers, ``True`` for booleans, a one-element list
    for arrays and a recursively built object for objects.
    """
    if not isinstance(parameters, dict):
        return {}
    properties = parameters.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {name: _fake_value_for(schema) for name, schema in properties.items()}


def _tool_function(tool: Any) -> _JSON | None:
    """The ``function`` object of a tool definition (``{"type": "function"}``)."""
    if not isinstance(tool, dict):
        return None
    function = tool.get("function")
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return function
    # Tolerate the flat (Responses-API-like) form {"type": "function", "name": ...}.
    if isinstance(tool.get("name"), str):
        return tool
    return None


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


class FakeOpenAIServer:
    """A threaded fake OpenAI-compatible HTTP server on ``127.0.0.1``.

    Args:
        host: Interface to bind; keep the loopback default.
        port: Port to bind; ``0`` (the default) picks a free ephemeral port.
        stream_chunk_delay: Seconds to sleep between streamed SSE events
            (default ``0``); useful to test time-to-first-token handling.
        no_retry_header: When true (default), error answers carry
            ``x-should-retry: false`` so the ``openai`` client fails at once
            instead of retrying (which would record the request three times).

    Use :meth:`start` / :meth:`stop` or the context-manager protocol. The
    server is safe to use from several client threads; recorded requests are
    appended under a lock.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        stream_chunk_delay: float = 0.0,
        no_retry_header: bool = True,
    ) -> None:
        self._host = host
        self._requested_port = port
        self.stream_chunk_delay = stream_chunk_delay
        self.no_retry_header = no_retry_header
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._completion_counter = itertools.count(1)
        self._http_counter = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind the socket and serve in a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer is already started")
        httpd = ThreadingHTTPServer((self._host, self._requested_port), _make_handler(self))
        httpd.daemon_threads = True
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-openai-{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd = httpd
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call more than once."""
        httpd, thread = self._httpd, self._thread
        self._httpd = None
        self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:  # their handler threads end as their reads fail
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is currently serving."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound TCP port (only valid while running)."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        """The bound host."""
        return self._host

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no path)."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``: pass as ``base_url`` to OpenAI clients."""
        return f"{self.url}/v1"

    # -- recorded requests -------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of all requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path_suffix: str) -> list[RecordedRequest]:
        """Recorded requests whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    def clear_requests(self) -> None:
        """Forget all recorded requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_completion_number(self) -> int:
        """1, 2, 3... per chat completion answered (used in ids)."""
        with self._lock:
            return next(self._completion_counter)

    def _next_http_number(self) -> int:
        """1, 2, 3... per HTTP response sent (used in ``x-request-id``)."""
        with self._lock:
            return next(self._http_counter)

    # -- answers (pure functions of the request, apart from ids) -----------

    def choose_answer(self, body: Mapping[str, Any], call_number: int = 1) -> _Answer:
        """Decide the assistant turn for a chat request body (see module doc)."""
        messages = _messages(body)
        last = messages[-1] if messages else {}
        tools = body.get("tools")
        tool_choice = body.get("tool_choice")
        if last.get("role") == "tool":
            return _Answer(content=TOOL_RESULT_PREFIX + _text_of(last.get("content")))
        if isinstance(tools, list) and tools and tool_choice != "none":
            functions = [f for f in (_tool_function(t) for t in tools) if f is not None]
            chosen: _JSON | None = functions[0] if functions else None
            if isinstance(tool_choice, dict):
                wanted = _tool_function(tool_choice)
                if wanted is not None:
                    chosen = next((f for f in functions if f["name"] == wanted["name"]), chosen)
            if chosen is not None:
                arguments = fake_arguments_for(chosen.get("parameters"))
                return _Answer(
                    content=None,
                    tool_calls=[
                        {
                            "id": f"call_fake_{call_number}",
                            "type": "function",
                            "function": {
                                "name": chosen["name"],
                                "arguments": json.dumps(arguments, sort_keys=True),
                            },
                        }
                    ],
                )
        return _Answer(content=ANSWER_PREFIX + _last_user_text(messages))

    @staticmethod
    def usage() -> _JSON:
        """The fixed chat usage block."""
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": TOTAL_TOKENS,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS, "audio_tokens": 0},
        }

    @staticmethod
    def error_body(message: str, err_type: str, code: str | None, param: str | None = None) -> _JSON:
        """An OpenAI-style error body."""
        return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def _response_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    return (model if isinstance(model, str) and model else "fake-model") + RESPONSE_MODEL_SUFFIX


def _chunk_text(text: str) -> list[str]:
    """Split text into word-ish pieces (keeping whitespace) for streaming."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [text]


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    """Build the request-handler class bound to ``server``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeOpenAI/1.0"
        # Idle keep-alive connections are dropped after this many seconds so
        # handler threads do not linger after the test is done.
        timeout = 30
        _entry: RecordedRequest

        # Silence the default stderr access log.
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return

        # Open connections are known, so that stop() can cut the keep-alive ones a client
        # holds (LangChain's OpenAI client is cached for the whole process).
        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def finish(self) -> None:
            try:
                super().finish()
            finally:
                with server._lock:
                    server._connections.discard(self.connection)

        # -- plumbing ------------------------------------------------------

        def _read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is not None:
                try:
                    n = int(length)
                except ValueError:
                    n = 0
                return self.rfile.read(n) if n > 0 else b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = bytearray()
                while True:
                    size_line = self.rfile.readline().split(b";", 1)[0].strip()
                    size = int(size_line or b"0", 16)
                    if size == 0:
                        # Consume trailers up to the blank line.
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    data += self.rfile.read(size)
                    self.rfile.readline()
                return bytes(data)
            return b""

        def _handle(self) -> None:
            raw_path = self.path
            path, _, query = raw_path.partition("?")
            body = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
            parsed: Any | None = None
            if body:
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
            self._entry = RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                json=parsed,
            )
            # Record before answering: the client must never see a response
            # whose request is not yet in ``server.requests``.
            server._record(self._entry)
            try:
                self._dispatch(path, body, parsed)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            except Exception as exc:  # pragma: no cover - defensive
                self.close_connection = True
                try:
                    self._send_json(500, server.error_body(f"fake server bug: {exc!r}", "server_error", "internal"))
                except OSError:
                    pass

        def _start_response(self, status: int) -> None:
            """Note the status on the recorded request, then send the status line."""
            self._entry.status = status
            self.send_response(status)

        def do_POST(self) -> None:  # noqa: N802
            self._handle()

        def do_GET(self) -> None:  # noqa: N802
            self._handle()

        def do_PUT(self) -> None:  # noqa: N802
            self._handle()

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle()

        def _send_json(self, status: int, payload: Any, extra_headers: Mapping[str, str] | None = None) -> int:
            data = json.dumps(payload).encode("utf-8")
            self._start_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_fake_{server._next_http_number()}")
            if status >= 400 and server.no_retry_header:
                self.send_header("x-should-retry", "false")
            for key, value in (extra_headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return status

        def _fail(self) -> int:
            return self._send_json(500, server.error_body(FAIL_ERROR_MESSAGE, FAIL_ERROR_TYPE, FAIL_ERROR_CODE))

        # -- routing -------------------------------------------------------

        def _dispatch(self, path: str, body: bytes, parsed: Any | None) -> int:
            route = path.rstrip("/")
            if route.startswith("/v1/"):
                route = route[3:]
            if self.command == "GET" and route == "/models":
                return self._send_json(
                    200,
                    {
                        "object": "list",
                        "data": [{"id": "gpt-4o-mini", "object": "model", "created": CREATED, "owned_by": "fake"}],
                    },
                )
            if self.command != "POST" or route not in ("/chat/completions", "/embeddings"):
                return self._send_json(
                    404,
                    server.error_body(f"Unknown route {self.command} {path}", "invalid_request_error", "unknown_url"),
                )
            if not isinstance(parsed, dict):
                return self._send_json(
                    400,
                    server.error_body("Request body must be a JSON object", "invalid_request_error", "invalid_json"),
                )
            if route == "/embeddings":
                return self._embeddings(parsed)
            return self._chat(parsed)

        # -- /v1/embeddings ------------------------------------------------

        def _embeddings(self, body: _JSON) -> int:
            raw_input = body.get("input")
            if isinstance(raw_input, str):
                items: list[Any] = [raw_input]
            elif isinstance(raw_input, list) and raw_input and all(isinstance(x, int) for x in raw_input):
                items = [raw_input]  # a single token array
            elif isinstance(raw_input, list):
                items = list(raw_input)
            else:
                return self._send_json(
                    400, server.error_body("'input' is required", "invalid_request_error", None, "input")
                )
            if any(isinstance(x, str) and _FAIL_RE.search(x) for x in items):
                return self._fail()
            encoding = body.get("encoding_format", "float")
            if encoding == "base64":
                packed = struct.pack(f"<{len(EMBEDDING_VECTOR)}f", *EMBEDDING_VECTOR)
                embedding: Any = base64.b64encode(packed).decode("ascii")
            else:
                embedding = list(EMBEDDING_VECTOR)
            return self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": i, "embedding": embedding} for i in range(len(items))],
                    "model": _response_model(body),
                    "usage": {"prompt_tokens": EMBEDDING_PROMPT_TOKENS, "total_tokens": EMBEDDING_PROMPT_TOKENS},
                },
            )

        # -- /v1/chat/completions -----------------------------------------

        def _chat(self, body: _JSON) -> int:
            if _FAIL_RE.search(_last_user_text(_messages(body))):
                return self._fail()
            number = server._next_completion_number()
            answer = server.choose_answer(body, number)
            completion_id = f"chatcmpl-fake-{number}"
            model = _response_model(body)
            if body.get("stream") is True:
                stream_options = body.get("stream_options")
                include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage") is True
                return self._stream_chat(completion_id, model, answer, include_usage)
            message: _JSON = {"role": "assistant", "content": answer.content, "refusal": None}
            if answer.tool_calls:
                message["tool_calls"] = answer.tool_calls
            return self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": answer.finish_reason,
                        }
                    ],
                    "usage": server.usage(),
                },
            )

        def _stream_events(
            self, completion_id: str, model: str, answer: _Answer, include_usage: bool
        ) -> Iterator[_JSON]:
            def chunk(delta: _JSON, finish_reason: str | None = None) -> _JSON:
                event: _JSON = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
                }
                if include_usage:
                    event["usage"] = None
                return event

            if answer.tool_calls:
                yield chunk({"role": "assistant", "content": None, "refusal": None})
                for index, call in enumerate(answer.tool_calls):
                    yield chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {"name": call["function"]["name"], "arguments": ""},
                                }
                            ]
                        }
                    )
                    for piece in _chunk_text(call["function"]["arguments"]):
                        yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            else:
                yield chunk({"role": "assistant", "content": "", "refusal": None})
                for piece in _chunk_text(answer.content or ""):
                    yield chunk({"content": piece})
            yield chunk({}, answer.finish_reason)
            if include_usage:
                yield {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": model,
                    "system_fingerprint": SYSTEM_FINGERPRINT,
                    "choices": [],
                    "usage": server.usage(),
                }

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
            self.wfile.flush()

        def _stream_chat(self, completion_id: str, model: str, answer: _Answer, include_usage: bool) -> int:
            self._start_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-request-id", f"req_fake_{server._next_http_number()}")
            self.end_headers()
            for event in self._stream_events(completion_id, model, answer, include_usage):
                self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
                if server.stream_chunk_delay > 0:
                    time.sleep(server.stream_chunk_delay)
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return 200

    return Handler
