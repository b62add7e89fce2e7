"""A small chat service whose traces reach Maxim as sessions, with no OpenTelemetry code in it.

Run it under ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=maxim`` (see README.md
beside this file).  Then:

- the FastAPI instrumentation starts a span for every request and extracts the W3C
  ``traceparent`` and ``baggage`` headers;
- otel_maxim's pre-instrument hook has added the session stamping to the SDK, so the
  ``session.id`` in the request's baggage goes onto every span of the request, including
  the model call's span from the OpenAI instrumentation;
- the ``maxim`` exporter turns each request into a Maxim trace in that session.

The only Maxim call is on ``POST /goodbye``: ``otel_maxim.end_session`` ends the session,
which triggers Maxim's session-level evaluations.

Endpoints (the session is always the ``session.id`` entry of the ``baggage`` header)::

    POST /chat     {"message": "..."}  -> {"session_id": ..., "answer": ...}
    POST /goodbye                      -> {"session_id": ..., "ended": true}

The model is reached through the official ``openai`` client, configured by the usual
``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` variables (point them at ``fake_model.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, HTTPException
from openai import AsyncOpenAI
from opentelemetry import baggage, trace
from pydantic import BaseModel

import otel_maxim

MODEL = os.environ.get("EXAMPLE_MODEL", "gpt-4o-mini")
SYSTEM_PROMPT = "You are the support agent of a small web shop. Answer in one sentence."


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    # On SIGTERM (docker stop, Kubernetes) uvicorn shuts down gracefully, then ends the process with
    # that same signal, and a process ended by a signal skips Python's exit hooks, where the SDK would
    # export its last batch of spans.  So flush here, at the end of uvicorn's graceful shutdown.
    # (This is plain OpenTelemetry, not Maxim-specific; any exporter needs it under uvicorn.)
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush()


app = FastAPI(title="otel_maxim example service", lifespan=lifespan)

#: Each session's conversation so far (the model sees the whole conversation at every turn).
_conversations: dict[str, list[dict[str, str]]] = {}


class Turn(BaseModel):
    message: str


@functools.cache
def _model() -> AsyncOpenAI:
    # Built on first use, so that importing the app needs no OPENAI_* variables.
    return AsyncOpenAI(api_key=os.environ.get("OPENAI_API_KEY", "not-needed-by-the-fake-model"))


def _session_id() -> str:
    """The session of the current request: the ``session.id`` entry of its ``baggage`` header."""
    session_id = baggage.get_baggage("session.id")
    if not isinstance(session_id, str) or not session_id:
        raise HTTPException(400, "Send the session in the W3C baggage header: `baggage: session.id=<id>`.")
    return session_id


@app.post("/chat")
async def chat(turn: Turn) -> dict[str, str]:
    session_id = _session_id()
    messages = _conversations.setdefault(session_id, [{"role": "system", "content": SYSTEM_PROMPT}])
    messages.append({"role": "user", "content": turn.message})
    completion = await _model().chat.completions.create(model=MODEL, messages=messages)
    answer = completion.choices[0].message.content or ""
    messages.append({"role": "assistant", "content": answer})
    return {"session_id": session_id, "answer": answer}


@app.post("/goodbye")
async def goodbye() -> dict[str, str | bool]:
    session_id = _session_id()
    _conversations.pop(session_id, None)
    otel_maxim.end_session(session_id)  # the session-end marker: Maxim's session-level evaluations run now
    return {"session_id": session_id, "ended": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: 8000)")
    args = parser.parse_args(argv)

    # Bind first, then announce the address: a client may connect as soon as the line is printed.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    print(f"Serving on http://{host}:{port}", flush=True)
    # uvicorn stops gracefully on SIGINT / SIGTERM, running the lifespan's end (which flushes the
    # last records: after SIGTERM, uvicorn ends the process with that signal, skipping exit hooks).
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn re-raises it once it has stopped
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
