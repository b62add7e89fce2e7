"""Drive a three-turn conversation against the example service, then say goodbye.

Every request carries the session in the W3C ``baggage`` header, the way an instrumented
front end or another service would pass it on.  The header is made by OpenTelemetry's own
baggage propagator from ``otel_maxim.session(...)``, so it holds ``session.id``,
``session.name`` and the session's tags (``maxim.session.tags.<key>``)::

    python examples/service/client.py --url http://127.0.0.1:8000 --session-id support-chat-42

The client needs only the OpenTelemetry API (no SDK, no instrumentation): it sends a header.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
import uuid
from typing import Any

from opentelemetry.baggage.propagation import W3CBaggagePropagator

import otel_maxim

QUESTIONS = (
    "Where is my order A-1001?",
    "Can it go to my office instead of my home?",
    "Thanks. When will it arrive now?",
)


def post(url: str, session: otel_maxim.Session, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST ``body`` as JSON to ``url`` with ``session`` in the ``baggage`` header; return the JSON answer."""
    headers = {"Content-Type": "application/json"}
    W3CBaggagePropagator().inject(headers, context=session.context())  # -> baggage: session.id=...,session.name=...
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default: %(default)s)")
    parser.add_argument("--session-id", default=None, help="default: a new id, chat-<random>")
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")

    session_id = args.session_id or f"chat-{uuid.uuid4().hex[:12]}"
    session = otel_maxim.session(session_id, name="Support chat", tags={"channel": "example-client"})
    print(f"Session {session_id}")
    try:
        for question in QUESTIONS:
            reply = post(f"{url}/chat", session, {"message": question})
            print(f"  user:  {question}\n  agent: {reply['answer']}")
        ended = post(f"{url}/goodbye", session)
    except OSError as error:  # URLError and HTTPError too: the service is not there, or failed
        print(
            f"client.py: the service at {url} did not answer: {getattr(error, 'reason', None) or error}",
            file=sys.stderr,
        )
        return 1
    print(f"Session {ended['session_id']} ended.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
