"""Run the test suite's fake OpenAI server on its own, for the example service.

It answers ``POST /v1/chat/completions`` with ``"Fake answer to: <last user message>"`` and
fixed token counts, on 127.0.0.1, so the example needs no network and no API key.  It prints
the base URL to give to the service as ``OPENAI_BASE_URL``, then serves until interrupted::

    python examples/service/fake_model.py --port 9100
    # Fake OpenAI server: OPENAI_BASE_URL=http://127.0.0.1:9100/v1

The server itself is ``tests/fake_openai.py`` (standard library only).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from fake_openai import FakeOpenAIServer  # noqa: E402 - found through the path set just above


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port (default: 9100)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = FakeOpenAIServer(port=args.port)
    try:
        server.start()
    except OSError as error:  # the port is taken (another run of this script?), or not ours to use
        sys.exit(f"fake_model.py: cannot listen on 127.0.0.1:{args.port}: {error.strerror or error}")
    try:
        print(f"Fake OpenAI server: OPENAI_BASE_URL={server.base_url}", flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
