"""Sessions: baggage in, records out -- across threads, asyncio tasks, W3C headers and plain OTel pipelines."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler, SamplingResult

import otel_maxim
from otel_maxim import MaximSpanExporter, ids
from otel_maxim.ids import maxim_id
from otel_maxim.records import Record
from tests.conftest import Pipeline
from tests.record_checks import ListSink, assert_parent_first


def _traces(records: list[Record]) -> dict[str, Record]:
    """trace create records by name."""
    return {str(r.data["name"]): r for r in records if r.entity == "trace" and r.action == "create"}


def test_the_seed_scenario_end_to_end(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer
    with otel_maxim.session(
        "session-id", name="session-name", tags={"team": "a"}, tracer_provider=pipeline.provider
    ) as s:
        with s.trace("trace-name", id="trace-id", tags={"k": "v"}):
            with tracer.start_as_current_span("span-name"):
                pass
    with tracer.start_as_current_span("trace-2", attributes={"session.id": "session-id"}):
        with tracer.start_as_current_span("span-2"):
            pass
    s.end()
    records = pipeline.records()

    assert_parent_first(records)
    assert records[0] == Record("session", "session-id", "create", records[0].data)
    assert records[0].data["name"] == "session-name" and records[0].data["tags"] == {"team": "a"}
    assert records[-1].entity == "session" and records[-1].action == "end"
    traces = _traces(records)
    assert traces["trace-name"].id == "trace-id"
    assert traces["trace-name"].data["tags"] == {"k": "v"}
    assert traces["trace-name"].data["sessionId"] == "session-id"
    assert traces["trace-2"].data["sessionId"] == "session-id"
    assert len(traces["trace-2"].id) == 32  # the OTel trace id
    assert sum(1 for r in records if r.entity == "session" and r.action == "create") == 1
    # The marker is never shown as a trace.
    assert "maxim.session.end" not in traces


@pytest.mark.parametrize("key", ["session.id", "gen_ai.conversation.id"])
def test_a_session_id_set_on_a_span_is_stripped_as_every_other_way_in(pipeline: Pipeline, key: str) -> None:
    """A span's " conv-7 " is the session that end_session("conv-7 ") ends, not a second one."""
    with pipeline.tracer.start_as_current_span("turn", attributes={key: " conv-7 "}):
        pass
    with pipeline.tracer.start_as_current_span("odd", attributes={"session.id": "   ", key: "conv-7"}):
        pass  # a blank session.id: the other key names the session
    otel_maxim.end_session("conv-7 ", tracer_provider=pipeline.provider)
    records = pipeline.records()
    sessions = [(r.id, r.action) for r in records if r.entity == "session"]
    assert sessions == [("conv-7", "create"), ("conv-7", "end")]
    assert [t.data["sessionId"] for t in _traces(records).values()] == ["conv-7", "conv-7"]


def test_a_chosen_trace_id_that_is_a_number_is_its_text(pipeline: Pipeline) -> None:
    with pipeline.tracer.start_as_current_span("turn", attributes={"maxim.trace.id": 42, "session.id": 7}):
        pass
    (trace_create,) = [r for r in pipeline.records() if r.entity == "trace" and r.action == "create"]
    assert (trace_create.id, trace_create.data["sessionId"]) == ("42", "7")


def test_a_name_and_tags_given_in_a_later_turn_update_the_session(pipeline: Pipeline) -> None:
    """A title given after the first turn, a tag on resolution: maxim-py sends them with each
    logger.session(...); here each change is an update of the session, once."""
    provider = pipeline.provider
    with otel_maxim.session("conv-7", tracer_provider=provider) as first, first.trace("turn-1"):
        pass
    for _ in range(2):  # the same name and tags again: nothing more to say
        named = otel_maxim.session(
            "conv-7", name="Refund for order 123", tags={"resolved": "yes"}, tracer_provider=provider
        )
        with named, named.trace("turn-2"):
            pass
    with (
        otel_maxim.session("conv-7", tags={"resolved": "no"}, tracer_provider=provider) as again,
        again.trace("turn-3"),
    ):
        pass
    otel_maxim.end_session("conv-7", tracer_provider=provider)
    sessions = [(r.action, r.data) for r in pipeline.records() if r.entity == "session"]
    assert [(action, {k: v for k, v in data.items() if k != "startTimestamp"}) for action, data in sessions[:1]] == [
        ("create", {"tags": {}})
    ]
    assert sessions[1:-1] == [
        ("update", {"name": "Refund for order 123"}),
        ("update", {"tags": {"resolved": "yes"}}),
        ("update", {"tags": {"resolved": "no"}}),
    ]
    assert sessions[-1][0] == "end"


def _long_chat(tracer: trace.Tracer) -> None:
    """An LLM span that is the whole trace, its long chat as OpenInference's flattened messages: more
    attributes than the SDK's limit (128), written after the span started, so the oldest are evicted."""
    with tracer.start_as_current_span("ChatOpenAI", attributes={"openinference.span.kind": "LLM"}) as span:
        for n in range(70):
            span.set_attribute(f"llm.input_messages.{n}.message.role", "user" if n % 2 == 0 else "assistant")
            span.set_attribute(f"llm.input_messages.{n}.message.content", f"message {n}")


def test_a_span_whose_attribute_limit_evicts_the_session_keeps_it(pipeline: Pipeline) -> None:
    with otel_maxim.session("conv-42", name="Long chat", tracer_provider=pipeline.provider):
        _long_chat(pipeline.tracer)
    otel_maxim.end_session("conv-42", tracer_provider=pipeline.provider)
    records = pipeline.records()
    (trace_create,) = [r for r in records if r.entity == "trace" and r.action == "create"]
    assert trace_create.data["sessionId"] == "conv-42"
    (created,) = [r for r in records if r.entity == "session" and r.action == "create"]
    assert created.data["name"] == "Long chat"


def test_the_session_put_back_is_the_one_the_span_started_in(memory_provider) -> None:  # type: ignore[no-untyped-def]
    """A span that ends in another session's context (or that had none) is not given that session."""
    provider, memory = memory_provider
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    tracer = provider.get_tracer("t")
    with otel_maxim.session("user-A"):
        started_in_a = tracer.start_span("llm")
    no_session = tracer.start_span("background-job")
    for span in (started_in_a, no_session):
        for n in range(200):
            span.set_attribute(f"llm.input_messages.{n}.message.content", "x")
    with otel_maxim.session("user-B"):
        started_in_a.end()
        no_session.end()
    ended = {span.name: dict(span.attributes or {}) for span in memory.get_finished_spans()}
    assert ended["llm"]["session.id"] == "user-A"
    assert "session.id" not in ended["background-job"]


def test_the_stamping_processor_alone_keeps_the_session_past_the_limit_too(memory_provider) -> None:  # type: ignore[no-untyped-def]
    provider, memory = memory_provider
    provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
    with otel_maxim.session("conv-42", tracer_provider=provider):
        _long_chat(provider.get_tracer("t"))
    (span,) = memory.get_finished_spans()
    assert span.attributes is not None and span.attributes["session.id"] == "conv-42"
    assert span.dropped_attributes > 0  # the limit did evict (the oldest messages now)


def test_leaving_the_block_does_not_end_the_session(pipeline: Pipeline) -> None:
    s = otel_maxim.session("web-1", tracer_provider=pipeline.provider)
    for turn in range(3):  # a web service enters the same session once per request
        with s, pipeline.tracer.start_as_current_span(f"request-{turn}"):
            pass
    records = pipeline.records()
    assert len(_traces(records)) == 3
    assert not [r for r in records if r.entity == "session" and r.action == "end"]


def test_baggage_reaches_every_span_and_an_explicit_attribute_wins(pipeline: Pipeline) -> None:
    with otel_maxim.session("outer"), pipeline.tracer.start_as_current_span("root") as root:
        with pipeline.tracer.start_as_current_span("child") as child:
            pass
        other = pipeline.tracer.start_span("own-trace", context=context.Context(), attributes={"session.id": "mine"})
        other.end()
    assert root.attributes is not None and root.attributes["session.id"] == "outer"
    assert child.attributes is not None and child.attributes["session.id"] == "outer"
    sessions = {r.id for r in pipeline.records() if r.entity == "session"}
    assert sessions == {"outer", "mine"}


def test_threads_need_carry_context_and_get_it(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer

    def work(name: str) -> None:
        with tracer.start_as_current_span(name):
            pass

    with otel_maxim.session("threaded"), ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(otel_maxim.carry_context(work), [f"carried-{i}" for i in range(8)]))
        pool.submit(work, "not-carried").result()  # documented: the executor alone carries nothing
        t = threading.Thread(target=otel_maxim.carry_context(work), args=("thread",))
        t.start()
        t.join()
    traces = _traces(pipeline.records())
    assert all(traces[f"carried-{i}"].data.get("sessionId") == "threaded" for i in range(8))
    assert traces["thread"].data.get("sessionId") == "threaded"
    assert "sessionId" not in traces["not-carried"].data


def test_carry_context_carries_into_generators_and_coroutines_step_by_step(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Wrapping a generator or coroutine function carried nothing: calling it only makes the generator or
    coroutine, whose body then ran in the consumer's context, and the session was lost without a word."""
    tracer = pipeline.tracer

    def stream(n: int) -> Iterator[str]:
        with tracer.start_as_current_span("generator"):
            got = yield "first"
            try:
                yield f"got {got}"
            except KeyError:
                yield "caught"
            for i in range(n):
                yield str(i)
        return "done"

    async def answer() -> str:
        with tracer.start_as_current_span("coroutine"):
            await asyncio.sleep(0)
            return "answered"

    async def tokens() -> AsyncIterator[str]:
        yield "t"

    with otel_maxim.session("carried"):
        carried_stream = otel_maxim.carry_context(stream)
        carried_answer = otel_maxim.carry_context(answer)
        with caplog.at_level(logging.WARNING, logger="otel_maxim"):
            assert otel_maxim.carry_context(tokens) is tokens
    assert "an async generator function is not wrapped" in caplog.text

    def consume() -> list[object]:
        steps = carried_stream(2)
        seen: list[object] = [next(steps), steps.send("hello"), steps.throw(KeyError("k")), *steps]
        return seen

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(consume).result() == ["first", "got hello", "caught", "0", "1"]
        assert pool.submit(lambda: asyncio.run(carried_answer())).result() == "answered"
        closing = carried_stream(5)
        assert pool.submit(lambda: (next(closing), closing.close())).result() == ("first", None)
    creates = [r.data for r in pipeline.records() if r.entity == "trace" and r.action == "create"]
    # The closed generator ended its span too: two traces of that name.
    assert sorted((d["name"], d.get("sessionId")) for d in creates) == [
        ("coroutine", "carried"),
        ("generator", "carried"),
        ("generator", "carried"),
    ]


def test_asyncio_tasks_keep_their_own_sessions(pipeline: Pipeline) -> None:
    tracer = pipeline.tracer

    async def conversation(n: int) -> None:
        async with otel_maxim.session(f"conv-{n}"):
            for turn in range(2):
                await asyncio.sleep(0)  # interleave the tasks
                with tracer.start_as_current_span(f"c{n}-t{turn}"):
                    await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(conversation(n) for n in range(5)))

    asyncio.run(main())
    traces = _traces(pipeline.records())
    for n in range(5):
        for turn in range(2):
            assert traces[f"c{n}-t{turn}"].data["sessionId"] == f"conv-{n}"


def test_one_session_entered_by_two_requests_at_once_leaves_neither_thread_in_it() -> None:
    """A service keeps one ``Session`` and enters it per request: the requests overlap in two threads,
    the first to start exits first, and each thread's context is its own again afterwards."""
    shared = otel_maxim.session("conv-A")
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    after: dict[str, object] = {}
    failures: list[BaseException] = []

    def request_a() -> None:
        with shared:
            a_in.set()
            b_in.wait(5)
        a_out.set()
        after["A"] = baggage.get_baggage("session.id")

    def request_b() -> None:
        a_in.wait(5)
        with shared:
            b_in.set()
            a_out.wait(5)
        after["B"] = baggage.get_baggage("session.id")

    def run(target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=run, args=(t,)) for t in (request_a, request_b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert after == {"A": None, "B": None}


def test_nested_and_interleaved_sessions_unwind_to_what_was_there() -> None:
    """Two asyncio tasks enter the same sessions; the first in leaves first; each unwinds its own."""
    outer, inner = otel_maxim.session("outer"), otel_maxim.session("inner")

    async def request(start: float, stay: float) -> list[object]:
        seen = []
        await asyncio.sleep(start)
        async with outer:
            async with inner:
                await asyncio.sleep(stay)
                seen.append(baggage.get_baggage("session.id"))
            seen.append(baggage.get_baggage("session.id"))
        seen.append(baggage.get_baggage("session.id"))
        return seen

    async def main() -> list[list[object]]:
        return list(await asyncio.gather(request(0.0, 0.02), request(0.01, 0.05)))

    assert asyncio.run(main()) == [["inner", "outer", None]] * 2
    assert baggage.get_baggage("session.id") is None


def test_an_incoming_w3c_baggage_header_joins_the_session(pipeline: Pipeline) -> None:
    # What a web framework's instrumentation does with an incoming request's headers.
    headers = {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "baggage": "session.id=user%3A42,session.name=Support%20chat,other=1",
    }
    ctx = propagate.extract(headers)
    token = context.attach(ctx)
    try:
        with pipeline.tracer.start_as_current_span("handle-request"):
            pass
    finally:
        context.detach(token)
    records = pipeline.records()
    session = records[0]
    assert session.entity == "session" and session.id == "mx-user_3A42"
    assert session.data["name"] == "Support chat"
    assert session.data["tags"] == {"original_id": "user:42"}
    trace_create = _traces(records)["handle-request"]
    assert trace_create.id == "0af7651916cd43dd8448eb211c80319c"
    assert trace_create.data["sessionId"] == "mx-user_3A42"


def test_outgoing_requests_carry_the_session_in_baggage() -> None:
    with otel_maxim.session("conv-7", name="n"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    assert "session.id=conv-7" in carrier["baggage"]
    assert baggage.get_baggage("session.id") is None  # detached after the block


@pytest.mark.parametrize("session_id", ["user:42", "a.b@c.com", "Grüße", "x" * 500])
def test_session_ids_that_need_mapping(session_id: str) -> None:
    sink = ListSink()
    provider = TracerProvider()
    provider.add_span_processor(otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    with otel_maxim.session(session_id, tracer_provider=provider) as s, s.trace("t"):
        pass
    s.end()
    provider.shutdown()
    records = sink.records()
    assert_parent_first(records)
    mapped = maxim_id(session_id)
    assert records[0].entity == "session" and records[0].id == mapped
    assert records[0].data["tags"]["original_id"] == session_id
    assert records[-1] == Record("session", records[0].id, "end", records[-1].data)


def test_the_end_marker_survives_a_plain_otel_pipeline(memory_provider) -> None:  # type: ignore[no-untyped-def]
    """Spans (marker included) recorded by an ordinary in-memory exporter, exported later."""
    provider, memory = memory_provider
    tracer = provider.get_tracer("plain")
    with otel_maxim.session("conv-9", tracer_provider=provider) as s:
        with s.trace("turn"), tracer.start_as_current_span("inner"):
            pass
    otel_maxim.end_session("conv-9", tracer_provider=provider)
    finished = list(memory.get_finished_spans())
    marker = finished[-1]
    assert marker.attributes is not None and marker.attributes["maxim.session.end"] is True
    assert marker.parent is None  # a trace of its own

    sink = ListSink()
    exporter = MaximSpanExporter(sink=sink)
    exporter.export(finished)
    exporter.shutdown()
    records = sink.records()
    assert_parent_first(records)
    assert [(r.entity, r.action) for r in records][-1] == ("session", "end")
    assert {str(r.data["name"]) for r in records if r.entity == "trace" and r.action == "create"} == {"turn"}


def test_end_session_with_bad_input_never_raises(pipeline: Pipeline) -> None:
    otel_maxim.end_session("", tracer_provider=pipeline.provider)  # logged, nothing ended
    otel_maxim.end_session(None, tracer_provider=pipeline.provider)  # type: ignore[arg-type]
    assert pipeline.records() == []
    with pytest.raises(ValueError, match="id"):
        otel_maxim.session("")  # a caller's mistake in code: raised at once


def test_a_bad_session_argument_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="tags must be a mapping"):
        otel_maxim.session("conv-9", tags=["vip"])  # type: ignore[arg-type]


def test_repeated_bad_end_session_calls_log_once_each(caplog: pytest.LogCaptureFixture) -> None:
    """A request handler calling end_session(request.session_id) with no id, or through a provider whose
    sampler raises, gets one line a minute, not one per request."""

    class Failing(Sampler):
        def should_sample(self, *args: object, **kwargs: object) -> SamplingResult:
            raise RuntimeError("sampler failed")

        def get_description(self) -> str:
            return "Failing"

    provider = TracerProvider(sampler=Failing(), shutdown_on_exit=False)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        for _ in range(50):
            otel_maxim.end_session(None)  # type: ignore[arg-type]
            otel_maxim.end_session("conv-9", tracer_provider=provider)
    provider.shutdown()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "end_session() needs a non-empty session id; got 'NoneType'; nothing ended."),
        ("ERROR", "Could not emit the end marker of a session."),
    ]


def test_session_trace_ignores_tags_and_attributes_that_are_not_mappings(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    conversation = otel_maxim.session("conv-9", tracer_provider=pipeline.provider)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        with conversation.trace("turn", tags=["vip"], attributes=["x"]) as span:  # type: ignore[arg-type]
            assert span.is_recording()
    assert "Session.trace(tags=...) needs a mapping, not list; ignored." in caplog.text
    assert "Session.trace(attributes=...) needs a mapping, not list; ignored." in caplog.text
    (trace,) = _traces(pipeline.records()).values()
    assert trace.data["sessionId"] == "conv-9" and trace.data["tags"] == {}


class _NoText:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_trace_tag_without_text_is_left_out_not_raised(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    """``str()`` of a tag's value raised out of ``with s.trace(...)``, into the application."""
    conversation = otel_maxim.session("conv-9", tracer_provider=pipeline.provider)
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        with conversation.trace("turn", tags={"plan": "pro", "odd": _NoText()}) as span:
            assert span.is_recording()
    assert "A tag of trace 'turn' was left out: its key or value has no text." in caplog.text
    (trace,) = _traces(pipeline.records()).values()
    assert trace.data["tags"] == {"plan": "pro"}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this system")
def test_a_child_forked_while_a_chosen_trace_id_is_being_noted_can_choose_ids() -> None:
    """The ids chosen with ``Session.trace(id=...)`` are noted under a lock: a child forked while another
    thread held it waited for it for ever at its first ``Session.trace(id=...)``."""
    provider = TracerProvider()
    with ids.open_trace_ids._lock:  # as a thread of the parent inside Session.trace at the fork
        pid = os.fork()
        if pid == 0:  # the child: one trace with a chosen id, then out
            try:
                with otel_maxim.session("s", tracer_provider=provider).trace("turn", id="chosen"):
                    pass
            finally:
                os._exit(0)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid, "the child hung on the lock it inherited held"


def test_a_tracer_provider_without_get_tracer_starts_no_span(caplog: pytest.LogCaptureFixture) -> None:
    """As end_session, which emits no marker through it: a warning, and a span that records nothing."""
    conversation = otel_maxim.session("conv-9", tracer_provider=object())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        with conversation.trace("turn") as span:
            assert not span.is_recording()
        conversation.end()
    assert [r.getMessage() for r in caplog.records] == [
        "Ignoring tracer_provider=object, which has no get_tracer(): no span is started for the session "
        "(Session.trace() gives a non-recording span, end_session() emits no end marker)."
    ]


def test_an_end_marker_the_sampler_drops_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A sampler that drops root spans drops the marker too: the session is not ended, and that is said."""
    sink = ListSink()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(otel_maxim.MaximSpanProcessor(MaximSpanExporter(sink=sink)))
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        otel_maxim.end_session("conv-9", tracer_provider=provider)
    provider.shutdown()
    assert sink.lines == []
    assert "The end marker of session conv-9 was not recorded, so the session is not ended" in caplog.text
    assert "'maxim.session.end'" in caplog.text


def test_a_session_entered_inside_another_takes_none_of_its_name_and_tags(pipeline: Pipeline) -> None:
    """Session B inside session A (or inside a request whose baggage names A) is B alone."""
    tracer = pipeline.tracer
    alice = otel_maxim.session("A", name="Alice's support chat", tags={"user": "alice"})
    with alice, otel_maxim.session("B"), tracer.start_as_current_span("turn-in-B"):
        assert baggage.get_all() == {"session.id": "B"}
    incoming = propagate.extract({"baggage": "session.id=A,session.name=Alice,maxim.session.tags.user=alice,other=1"})
    token = context.attach(incoming)
    try:
        with otel_maxim.session("C", name="Carol", tags={"plan": "pro"}):
            assert baggage.get_all() == {
                "other": "1",
                "session.id": "C",
                "session.name": "Carol",
                "maxim.session.tags.plan": "pro",
            }
    finally:
        context.detach(token)
    records = pipeline.records()
    (created,) = [r for r in records if r.entity == "session" and r.action == "create"]
    assert created.id == "B" and "name" not in created.data and created.data["tags"] == {}


@pytest.mark.parametrize(
    ("flags", "waits_for_the_trace"),
    [pytest.param("01", True, id="sampled"), pytest.param("00", False, id="not-sampled")],
)
def test_a_session_ended_inside_a_trace_waits_for_it_only_if_it_is_sampled(
    memory_provider, flags: str, waits_for_the_trace: bool
) -> None:  # type: ignore[no-untyped-def]
    """A trace that is not sampled never reaches the exporter: waiting for it would hold the end back."""
    provider, memory = memory_provider
    incoming = propagate.extract({"traceparent": f"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{flags}"})
    token = context.attach(incoming)
    try:
        otel_maxim.end_session("conv-9", tracer_provider=provider)
    finally:
        context.detach(token)
    (marker,) = memory.get_finished_spans()
    assert marker.attributes is not None
    after = marker.attributes.get("maxim.session.end.after_trace")
    assert after == ("0af7651916cd43dd8448eb211c80319c" if waits_for_the_trace else None)


def test_a_session_ended_inside_a_trace_of_another_provider_does_not_wait_for_it(memory_provider) -> None:  # type: ignore[no-untyped-def]
    """Maxim on a provider of its own, the framework's request span on another: that trace never reaches
    this exporter, so the end must not wait for it (it would wait the whole trace timeout)."""
    provider, memory = memory_provider
    elsewhere = TracerProvider()
    with elsewhere.get_tracer("web").start_as_current_span("POST /chat"):
        otel_maxim.end_session("conv-9", tracer_provider=provider)
    with provider.get_tracer("app").start_as_current_span("POST /chat"):  # the same provider: it waits
        otel_maxim.end_session("conv-10", tracer_provider=provider)
    markers = [span for span in memory.get_finished_spans() if span.name == "maxim.session.end"]
    after = {span.attributes["session.id"]: span.attributes.get("maxim.session.end.after_trace") for span in markers}  # type: ignore[index,union-attr]
    assert after["conv-9"] is None and after["conv-10"] is not None
    elsewhere.shutdown()


def test_a_session_carries_in_baggage_only_what_span_processors_take(pipeline: Pipeline) -> None:
    """A 1,000-character name and 20 tags: the baggage header carries 256 characters of the name and 16
    tags, the first, as the processors read them; the session's records get the same."""
    tags = {f"t{n}": "v" * 300 for n in range(20)}
    session = otel_maxim.session("conv-1", name="名" * 1000, tags=tags, tracer_provider=pipeline.provider)
    carrier: dict[str, str] = {}
    with session:
        propagate.inject(carrier)
        with pipeline.tracer.start_as_current_span("turn"):
            pass
    with session, session.trace("turn-2"):  # its root names the session the same way: no update
        pass
    header = carrier["baggage"]
    assert len(header) < 16_000 and "t15=" in header and "t16=" not in header
    entries = baggage.get_all(propagate.extract(carrier))
    assert entries["session.name"] == "名" * 256 and entries["maxim.session.tags.t0"] == "v" * 256
    (created,) = [r for r in pipeline.records() if r.entity == "session" and r.action == "create"]
    assert created.data["name"] == "名" * 256 and len(created.data["tags"]) == 16
    assert not [r for r in pipeline.records() if r.entity == "session" and r.action == "update"]


def test_what_a_session_cannot_carry_is_told_not_dropped_silently(caplog: pytest.LogCaptureFixture) -> None:
    """A name past 256 characters, tags past 16, tag keys past 256 characters and tag values past 256 were
    cut or left out with no word: one warning now says what, and why (the baggage limits)."""
    tags = {f"t{n:02}": "v" for n in range(20)}
    tags["k" * 300] = "long key"
    tags["t00"] = "v" * 300
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        otel_maxim.session("conv-tags", name="N" * 300, tags=tags)
        otel_maxim.session("conv-fine", name="N" * 256, tags={f"t{n}": "v" * 256 for n in range(16)})
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("Session 'conv-tags': name cut to 256 of its 300 characters; ")
    assert "tags left out for a key longer than 256 characters: 1 ('kkkkkkkkkkkkkkkkkkkk'...)" in warning
    assert "tags left out past the first 16: 4 ('t16', 't17', 't18', ...)" in warning
    assert "tag values cut to 256 characters: 1" in warning
    assert "Span processors read no more from baggage" in warning


def test_session_ids_as_baggage_carries_them(caplog: pytest.LogCaptureFixture) -> None:
    """What a Session keeps agrees with what the W3C propagator sends on (the processor's side:
    test_hostile.py, test_a_baggage_session_id_is_read_as_the_propagator_sends_it)."""
    assert otel_maxim.session("  pad\t").id == "pad"  # the propagator drops the whitespace around a value
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        otel_maxim.session("x" * 300)
    assert "is longer than 256 characters: span processors refuse it from baggage" in caplog.text


@pytest.mark.parametrize("where", ["session", "baggage"])
def test_a_refused_session_id_is_told_in_plain_words(where: str, caplog: pytest.LogCaptureFixture) -> None:
    """The warning read "Session id 'a\\nb'... is has control characters": the reason's verb twice, and
    "..." after an id that was shown whole."""
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        if where == "session":
            otel_maxim.session("a\nb")
        else:
            provider = TracerProvider()
            provider.add_span_processor(otel_maxim.SessionBaggageProcessor())
            token = context.attach(baggage.set_baggage("session.id", "a\nb"))
            try:
                provider.get_tracer("t").start_span("s").end()
            finally:
                context.detach(token)
    expected = (
        "Session id 'a\\nb' has control characters: span processors"
        if where == "session"
        else "Ignoring a session.id from baggage that has control characters (3 characters: 'a\\nb')."
    )
    assert expected in caplog.text
    assert " is has " not in caplog.text and "..." not in caplog.text
