"""The seed's four steps -- create a session, add traces, link a trace by id, end the session -- with OTel.

Run it with `make demo` (or `python examples/quickstart.py`).  With no MAXIM_API_KEY set,
the records are appended to maxim-records.log (or MAXIM_RECORDS_FILE); this script
then prints the ones it wrote, and the same as a tree.
"""

from __future__ import annotations

import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import otel_maxim
from otel_maxim.tree import render_tree

# An application's existing OTel setup, plus one line.
provider = TracerProvider(resource=Resource.create({"service.name": "quickstart"}))
exporter = otel_maxim.MaximSpanExporter()
provider.add_span_processor(otel_maxim.MaximSpanProcessor(exporter))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("quickstart")

sink_path = getattr(exporter.sink, "path", None)
start_offset = os.path.getsize(sink_path) if sink_path and os.path.exists(sink_path) else 0

# 1. Create a session: everything started inside the block belongs to it (through W3C baggage).
with otel_maxim.session("support-chat-42", name="Support chat", tags={"channel": "web"}) as session:
    # 2. Add a trace to the session: a root span, with ordinary OTel spans inside.
    with session.trace("turn-1", id="turn-1", tags={"intent": "order-status"}):
        with tracer.start_as_current_span("retrieve-order") as span:
            span.set_attribute("order.id", "A-1001")
        with tracer.start_as_current_span("compose-answer"):
            pass

# 3. Link a trace by session id: any span that carries `session.id` joins that session,
#    here a later request handled outside the `with` block.
with tracer.start_as_current_span("turn-2", attributes={"session.id": "support-chat-42"}):
    with tracer.start_as_current_span("lookup-shipping"):
        pass

# 4. End the session: this is what triggers Maxim's session-level evaluations.
session.end()

provider.shutdown()  # flushes: every record is written before the script goes on

if sink_path and sink_path != "-":
    try:
        with open(sink_path, encoding="utf-8") as f:
            f.seek(start_offset)
            lines = f.read().splitlines()
    except OSError as error:  # the exporter has logged why it could not write there
        sys.exit(f"Could not read the records back from {sink_path}: {error.strerror or error}")
    print(f"Wrote {len(lines)} Maxim records to {os.path.abspath(sink_path)}:\n")
    print("\n".join(lines))
    print("\nAs a tree:\n")
    print(render_tree(lines))
