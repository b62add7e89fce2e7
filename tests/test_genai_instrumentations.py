"""Real instrumentations, real clients, a local fake OpenAI server: what reaches Maxim.

Each test builds its own TracerProvider with a MaximSpanProcessor, instruments the
client library with that provider, talks to ``tests.fake_openai`` on 127.0.0.1 and
reads the records back.  The values asserted (models, ids, usage, answers) are the
fake server's constants, so every assertion can fail.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import langchain_openai.chat_models.base as langchain_openai_chat
import langchain_openai.llms.base as langchain_openai_llms
import openai
import pytest
import wrapt
from langchain_core.callbacks import BaseCallbackManager
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from openinference.instrumentation.langchain import LangChainInstrumentor as OpenInferenceLangChain
from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceOpenAI
from opentelemetry.instrumentation.langchain import LangchainInstrumentor as TraceloopLangChain
from opentelemetry.instrumentation.openai import OpenAIInstrumentor as TraceloopOpenAI
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic.warnings import PydanticDeprecatedSince20

import otel_maxim
from otel_maxim.records import Record
from tests.fake_openai import (
    ANSWER_PREFIX,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    FAIL_ERROR_MESSAGE,
    PROMPT_TOKENS,
    REASONING_TOKENS,
    RESPONSE_MODEL_SUFFIX,
    TOOL_RESULT_PREFIX,
    TOTAL_TOKENS,
    FakeOpenAIServer,
)
from tests.genai_helpers import (
    Maxim,
    arguments,
    assert_in_session,
    entities,
    maxim_pipeline,
    of,
    trace_creates,
    trace_output,
)

#: openinference-langchain 0.1.80 reads LangChain 1.x's ``message.text`` by calling it, which LangChain
#: deprecates with a warning.  Under ``filterwarnings = error`` that warning becomes an exception inside
#: the instrumentation, which then drops the span's output attributes; in an application it is only printed.
pytestmark = pytest.mark.filterwarnings(r"ignore:Calling \.text\(\) as a method is deprecated")

#: Traceloop's OpenAI 0.62.4 declares a pydantic model with a class-based ``Config``, which pydantic 2
#: deprecates with a warning when the module defining it (imported by ``instrument()``) is first imported;
#: under ``filterwarnings = error`` that import would fail.  Imported here, with that one warning ignored.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Support for class-based `config` is deprecated", PydanticDeprecatedSince20)
    importlib.import_module("opentelemetry.instrumentation.openai.v1")

OPENAI_V2 = "openai-v2"
OPENINFERENCE_OPENAI = "openinference-openai"
TRACELOOP_OPENAI = "traceloop-openai"
OPENINFERENCE_LANGCHAIN = "openinference-langchain"
TRACELOOP_LANGCHAIN = "traceloop-langchain"
#: The instrumentations of the openai client itself.
OPENAI_CLIENT = [OPENAI_V2, OPENINFERENCE_OPENAI, TRACELOOP_OPENAI]

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = MODEL + RESPONSE_MODEL_SUFFIX  # "gpt-4o-mini-fake-0001"
USAGE = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": TOTAL_TOKENS}
assert USAGE == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
CACHED = {"prompt_tokens_details": {"cached_tokens": CACHED_TOKENS}}
REASONING = {"completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS}}


def usage_of(instrumentation: str, *, streamed: bool = False) -> dict[str, object]:
    """The usage a generation holds: the fake's cached and reasoning tokens, where the instrumentation has them."""
    details = {
        OPENAI_V2: {},  # 2.4b0 (with opentelemetry-util-genai 1.1b0) records neither
        OPENINFERENCE_OPENAI: {**CACHED, **REASONING},
        # 0.62.4 reads the reasoning tokens from a response not streamed only: the usage chunk of a
        # stream carries them (the fake sends the same usage), its span does not.
        TRACELOOP_OPENAI: CACHED if streamed else {**CACHED, **REASONING},
        OPENINFERENCE_LANGCHAIN: {**CACHED, **REASONING},
        TRACELOOP_LANGCHAIN: CACHED,
    }[instrumentation]
    return {**USAGE, **details}


HTTP_500 = "Error code: 500 - " + FAIL_ERROR_MESSAGE
#: The event Traceloop's OpenAI instrumentation adds to a streamed call's span for each chunk it passes on.
TRACELOOP_CHUNK_EVENT = "gen_ai.content.completion.chunk"

SYSTEM = "You are a terse assistant."
QUESTION = "What is the capital of France?"
STREAM_QUESTION = "Name one long river."
TOOL_QUESTION = "What is the weather in Paris?"
FAIL_QUESTION = "Please FAIL this request."
TOPIC = "otters"
CHAIN_QUESTION = f"Tell me one fact about {TOPIC}."
WEATHER = "18 degrees celsius and sunny in test"  # what get_weather answers for the fake server's arguments
WEATHER_ARGS = {"city": "test", "unit": "celsius"}  # the fake server's arguments for the weather schema

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


Instrument = Callable[[str, TracerProvider], None]


@pytest.fixture
def instrument(monkeypatch: pytest.MonkeyPatch) -> Iterator[Instrument]:
    """``instrument(name, provider)``: instrument with the test's own provider; uninstrumented afterwards."""
    active: list[Any] = []

    def _instrument(name: str, provider: TracerProvider) -> None:
        instrumentor: Any
        if name == OPENAI_V2:
            monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "span_only")
            instrumentor = OpenAIV2()
        elif name == OPENINFERENCE_OPENAI:
            instrumentor = OpenInferenceOpenAI()
        elif name == TRACELOOP_OPENAI:
            monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
            instrumentor = TraceloopOpenAI()
        elif name == OPENINFERENCE_LANGCHAIN:
            instrumentor = OpenInferenceLangChain()
        elif name == TRACELOOP_LANGCHAIN:
            monkeypatch.setenv("TRACELOOP_TRACE_CONTENT", "true")
            instrumentor = TraceloopLangChain()
        else:
            raise AssertionError(name)
        instrumentor.instrument(tracer_provider=provider)
        active.append(instrumentor)

    yield _instrument
    for instrumentor in reversed(active):
        instrumentor.uninstrument()
        if isinstance(instrumentor, TraceloopLangChain):
            _finish_traceloop_uninstrument()
        elif isinstance(instrumentor, TraceloopOpenAI):
            _finish_traceloop_openai_uninstrument()


def _finish_traceloop_uninstrument() -> None:
    """Undo what Traceloop 0.62.4's ``uninstrument()`` leaves wrapped.

    It calls ``unwrap("langchain_core.callbacks", "BaseCallbackManager.__init__")``, which
    looks up an attribute named ``"BaseCallbackManager.__init__"`` on the module and
    finds nothing, so its callback handler (bound to the first provider it was given)
    stays installed and a later ``instrument(tracer_provider=...)`` is ignored.
    """
    for owner, name in (
        (BaseCallbackManager, "__init__"),
        (langchain_openai_llms.BaseOpenAI, "_generate"),
        (langchain_openai_llms.BaseOpenAI, "_agenerate"),
        (langchain_openai_llms.BaseOpenAI, "_stream"),
        (langchain_openai_llms.BaseOpenAI, "_astream"),
        (langchain_openai_chat.BaseChatOpenAI, "_generate"),
        (langchain_openai_chat.BaseChatOpenAI, "_agenerate"),
    ):
        unwrap(owner, name)
        assert not hasattr(owner.__dict__[name], "__wrapped__"), f"{owner.__name__}.{name} is still wrapped"


def _traceloop_openai_wrapper(value: object) -> bool:
    """Whether ``value`` is a method wrapped by Traceloop's OpenAI instrumentation (its wrappers live in
    ``opentelemetry.instrumentation.openai.*``; openai-v2's in ``opentelemetry.instrumentation.openai_v2``)."""
    if not isinstance(value, wrapt.FunctionWrapper):
        return False
    wrapper = getattr(value, "_self_wrapper", None)
    return str(getattr(wrapper, "__module__", "")).startswith("opentelemetry.instrumentation.openai.")


def _finish_traceloop_openai_uninstrument() -> None:
    """Undo what Traceloop's OpenAI 0.62.4 ``uninstrument()`` leaves wrapped: all of it.

    It calls ``unwrap("openai.resources.chat.completions", "Completions.create")`` and the like, which
    look up an attribute named ``"Completions.create"`` on the module and find nothing, so each of the
    24 methods it wrapped stays wrapped with the first provider it was given.  A later test's calls would
    still go through it: its span, on that provider (shut down, so never exported), would become the
    parent of the spans OpenInference makes below it, and a later ``instrument()`` would wrap the methods
    twice.  Every method of the openai client's resource classes still wrapped by it is unwrapped here.
    """
    resource_classes = {
        owner
        for module_name, module in list(sys.modules.items())
        if module_name == "openai.resources" or module_name.startswith("openai.resources.")
        for owner in vars(module).values()
        if isinstance(owner, type)
    }
    for owner in resource_classes:
        for name, value in list(vars(owner).items()):
            while _traceloop_openai_wrapper(value):
                setattr(owner, name, value.__wrapped__)  # type: ignore[attr-defined]
                value = vars(owner)[name]
    left = [f"{o.__name__}.{n}" for o in resource_classes for n, v in vars(o).items() if _traceloop_openai_wrapper(v)]
    assert not left, f"still wrapped by Traceloop: {left}"
    completions = openai.resources.chat.completions.Completions
    assert not isinstance(vars(completions)["create"], wrapt.FunctionWrapper), "Completions.create is still wrapped"


def _client(server: FakeOpenAIServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0)


def _chat_model(server: FakeOpenAIServer) -> ChatOpenAI:
    return ChatOpenAI(
        model=MODEL, base_url=server.base_url, api_key="test-key", temperature=0.2, max_tokens=50, max_retries=0
    )


def _chain(server: FakeOpenAIServer) -> Any:
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM), ("human", "Tell me one fact about {topic}.")])
    return prompt | _chat_model(server) | StrOutputParser()


@tool
def get_weather(city: str, unit: str = "celsius") -> str:
    """Get the current weather for a city."""
    return f"18 degrees {unit} and sunny in {city}"


@tool
def broken_weather(city: str, unit: str) -> str:
    """A weather tool whose service is down."""
    raise ValueError("the weather service is down")


# --- the openai client ------------------------------------------------------------------------


def _openai_calls(client: openai.OpenAI) -> None:
    """Plain (system + user, temperature, max_tokens), streaming with usage, a tool call, and an HTTP 500."""
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}],
        temperature=0.2,
        max_tokens=50,
    )
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": STREAM_QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert streamed == ANSWER_PREFIX + STREAM_QUESTION
    client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": TOOL_QUESTION}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": FAIL_QUESTION}])


@pytest.mark.parametrize("instrumentation", OPENAI_CLIENT)
def test_openai_client_calls_become_generations_in_the_session(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    with _client(server) as client, otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            _openai_calls(client)
        s.end()
    records = maxim.records()

    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)
    trace_id = trace_create.id
    assert trace_create.data["name"] == "turn"
    assert trace_create.data["input"] == QUESTION  # the first user message: the root carries no input
    assert trace_output(records, trace_id) == ANSWER_PREFIX + STREAM_QUESTION  # the last answer with content
    assert not of(records, "trace", "add-error"), "a failed LLM call is the generation's error, not the trace's"

    plain, streamed, tool_call, failed = entities(records, "generation")
    name = {OPENAI_V2: "chat gpt-4o-mini", OPENINFERENCE_OPENAI: "ChatCompletion", TRACELOOP_OPENAI: "openai.chat"}[
        instrumentation
    ]
    for generation in (plain, streamed, tool_call, failed):
        assert generation.parent == ("trace", trace_id)
        assert generation.announced["name"] == name
        assert generation.announced["provider"] == "openai"
        assert generation.of("end"), "every generation ends"

    # Plain: response model, messages, parameters encoded like maxim-py, the chat-completion result.
    assert plain.announced["model"] == RESPONSE_MODEL
    assert plain.announced["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": QUESTION},
    ]
    # The model asked for is a parameter when the answer names another, as maxim-py's wrapper sends it.
    assert plain.announced["modelParameters"] == {"temperature": "0.2", "max_tokens": "50", "model": MODEL}
    result = plain.result
    assert result["id"] == "chatcmpl-fake-1"
    assert result["object"] == "chat.completion"
    assert result["model"] == RESPONSE_MODEL
    assert result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": ANSWER_PREFIX + QUESTION}, "finish_reason": "stop"}
    ]
    assert result["usage"] == usage_of(instrumentation)

    # Streaming: the accumulated answer, its finish reason, and the usage of the include_usage chunk.
    assert streamed.announced["messages"] == [{"role": "user", "content": STREAM_QUESTION}]
    assert streamed.announced["modelParameters"] == {"model": MODEL}  # stream and stream_options are not parameters
    assert streamed.result["id"] == "chatcmpl-fake-2"
    assert streamed.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER_PREFIX + STREAM_QUESTION},
            "finish_reason": "stop",
        }
    ]
    assert streamed.result["usage"] == usage_of(instrumentation, streamed=True)
    # The trace's only events are about the stream, on the generation's container.
    events = [(r.data["name"], r.data["metadata"]) for r in of(records, "trace", "add-event")]
    on_streamed = {"maxim.entity": f"generation:{streamed.id}"}
    if instrumentation == OPENINFERENCE_OPENAI:  # its time-to-first-token event
        assert events == [("First Token Stream Event", on_streamed)]
    elif instrumentation == TRACELOOP_OPENAI:  # an event per chunk: the first is kept
        assert events == [(TRACELOOP_CHUNK_EVENT, on_streamed)]
    else:
        assert events == []

    # Tool call: content null, the call with its name and JSON arguments, finish reason tool_calls.
    assert tool_call.announced["messages"] == [{"role": "user", "content": TOOL_QUESTION}]
    ((choice),) = tool_call.result["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "call_fake_3" and call["function"]["name"] == "get_weather"
    assert arguments(call) == WEATHER_ARGS
    assert tool_call.result["usage"] == usage_of(instrumentation)

    # The HTTP 500: a result carrying the error, the request model (there was no response).
    assert failed.announced["model"] == MODEL
    assert failed.announced["messages"] == [{"role": "user", "content": FAIL_QUESTION}]
    assert set(failed.result) == {"error", "id"}
    assert failed.result["error"] == {"message": HTTP_500, "code": "", "type": "openai.InternalServerError"}


def _timestamp(value: str) -> int:
    """A record's ISO timestamp -> nanoseconds since the epoch (microsecond precision)."""
    moment = datetime.fromisoformat(value)
    assert moment.tzinfo is not None
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


def test_traceloop_streamed_call_keeps_one_chunk_event_and_the_same_result(
    server: FakeOpenAIServer, instrument: Instrument
) -> None:
    """Traceloop's OpenAI instrumentation adds an event to a streamed call's span for every chunk; the
    generation gets one ``add-event``, the first chunk's (when the answer started to come), and the
    same result as the same call not streamed, but for what Traceloop leaves out of streams."""
    maxim = maxim_pipeline()
    spans = InMemorySpanExporter()  # what the instrumentation itself recorded, beside the records
    maxim.provider.add_span_processor(SimpleSpanProcessor(spans))
    instrument(TRACELOOP_OPENAI, maxim.provider)
    messages: Any = [{"role": "user", "content": STREAM_QUESTION}]
    received: list[int] = []  # when the client got each chunk: after the instrumentation's event for it
    with _client(server) as client, otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            client.chat.completions.create(model=MODEL, messages=messages)
            stream = client.chat.completions.create(
                model=MODEL, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            for _ in stream:
                received.append(time.time_ns())
        s.end()
    records = maxim.records()
    assert_in_session(records, "conv-1")

    # Traceloop marked each chunk (role, text pieces, finish, usage) with an event; the call not streamed has none.
    plain_span, streamed_span = [span for span in spans.get_finished_spans() if span.name == "openai.chat"]
    assert [event.name for event in plain_span.events] == []
    assert [event.name for event in streamed_span.events] == [TRACELOOP_CHUNK_EVENT] * len(received)
    assert len(received) > 3

    plain, streamed = entities(records, "generation")
    (event,) = of(records, "trace", "add-event")  # one, however many chunks
    assert event.id == trace_creates(records)[0].id
    assert event.data["id"] == f"{streamed.id}-e0"
    assert event.data["name"] == TRACELOOP_CHUNK_EVENT
    assert event.data["metadata"] == {"maxim.entity": f"generation:{streamed.id}"}
    # The first chunk's event: at or before the client had the first chunk, before it had the second.
    assert _timestamp(streamed.announced["startTimestamp"]) <= _timestamp(event.data["timestamp"]) <= received[0]
    assert streamed_span.events[0].timestamp // 1000 * 1000 == _timestamp(event.data["timestamp"])

    # The same generation either way: request, answer, finish reason, model.
    assert streamed.announced["messages"] == plain.announced["messages"] == messages
    assert streamed.announced["modelParameters"] == plain.announced["modelParameters"] == {"model": MODEL}
    assert streamed.announced["model"] == plain.announced["model"] == RESPONSE_MODEL
    assert (plain.result["id"], streamed.result["id"]) == ("chatcmpl-fake-1", "chatcmpl-fake-2")
    assert streamed.result["object"] == plain.result["object"] == "chat.completion"
    assert streamed.result["model"] == plain.result["model"] == RESPONSE_MODEL
    assert streamed.result["choices"] == plain.result["choices"]
    assert plain.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ANSWER_PREFIX + STREAM_QUESTION},
            "finish_reason": "stop",
        }
    ]
    # The usage too, but for the reasoning tokens, which Traceloop 0.62.4 reads from a response not streamed
    # only (the usage chunk carries them; its span has no gen_ai.usage.reasoning_tokens).
    assert plain.result["usage"] == usage_of(TRACELOOP_OPENAI) == {**USAGE, **CACHED, **REASONING}
    assert streamed.result["usage"] == usage_of(TRACELOOP_OPENAI, streamed=True) == {**USAGE, **CACHED}
    assert "gen_ai.usage.reasoning_tokens" in (plain_span.attributes or {})
    assert "gen_ai.usage.reasoning_tokens" not in (streamed_span.attributes or {})
    # (Nor does it keep a stream's system_fingerprint: only the call not streamed has one, in its metadata.)
    assert trace_output(records, trace_creates(records)[0].id) == ANSWER_PREFIX + STREAM_QUESTION


# --- LangChain ----------------------------------------------------------------------------------

LANGCHAIN = [OPENINFERENCE_LANGCHAIN, TRACELOOP_LANGCHAIN]


def _span_named(records: list[Record], name: str) -> Record:
    (announced,) = [r for r in records if r.action == "add-span" and r.data["name"] == name]
    return announced


@pytest.mark.parametrize("instrumentation", LANGCHAIN)
def test_langchain_chain_becomes_spans_and_a_generation(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            answer = _chain(server).invoke({"topic": TOPIC})
        s.end()
    assert answer == ANSWER_PREFIX + CHAIN_QUESTION
    records = maxim.records()

    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)
    assert trace_create.data["input"] == CHAIN_QUESTION
    assert trace_output(records, trace_create.id) == answer

    if instrumentation == OPENINFERENCE_LANGCHAIN:
        names = ("RunnableSequence", "ChatPromptTemplate", "StrOutputParser")
        generation_name, parameters = "ChatOpenAI", {"temperature": "0.2", "max_completion_tokens": "50"}
    else:
        names = ("RunnableSequence.workflow", "execute_task ChatPromptTemplate", "execute_task StrOutputParser")
        generation_name, parameters = "ChatOpenAI.chat", {"temperature": "0.2", "max_tokens": "50"}
    parameters["model"] = MODEL  # asked for; the answer names another
    sequence, prompt, parser = (_span_named(records, name) for name in names)
    # The chain's root sits on the session's trace; its steps and the generation sit in it.
    assert (sequence.entity, sequence.id) == ("trace", trace_create.id) and "spanId" not in sequence.data
    for step in (prompt, parser):
        assert (step.entity, step.id) == ("span", sequence.data["id"]) and step.data["spanId"] == sequence.data["id"]

    (generation,) = entities(records, "generation")
    assert generation.parent == ("span", sequence.data["id"])
    assert generation.announced["spanId"] == sequence.data["id"]
    assert generation.announced["name"] == generation_name
    assert generation.announced["model"] == RESPONSE_MODEL
    assert generation.announced["provider"] == "openai"
    assert generation.announced["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": CHAIN_QUESTION},
    ]
    assert generation.announced["modelParameters"] == parameters
    assert generation.result["id"] == "chatcmpl-fake-1"
    assert generation.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
    ]
    assert generation.result["usage"] == usage_of(instrumentation)


@pytest.mark.parametrize("instrumentation", LANGCHAIN)
def test_where_a_span_started_inside_a_langchain_run_lands(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    """OpenInference never attaches its spans to the context: a span started inside a run is the trace's child.

    Traceloop does attach them: the same span lands under the step that ran it.  Either way it
    stays in the session's trace, because the whole chain runs inside ``s.trace``.
    """
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    tracer = maxim.provider.get_tracer("app")

    def audit(text: str) -> str:
        with tracer.start_as_current_span("audit-answer"):
            return text

    chain = _chain(server) | RunnableLambda(audit, name="audit")
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            chain.invoke({"topic": TOPIC})
        s.end()
    records = maxim.records()

    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)
    user_span = _span_named(records, "audit-answer")
    if instrumentation == OPENINFERENCE_LANGCHAIN:
        assert (user_span.entity, user_span.id) == ("trace", trace_create.id)
        assert "spanId" not in user_span.data
    else:
        step = _span_named(records, "execute_task audit")
        assert (user_span.entity, user_span.id) == ("span", step.data["id"])
        assert user_span.data["spanId"] == step.data["id"]


@pytest.mark.parametrize("instrumentation", LANGCHAIN)
def test_langchain_tool_calling_gives_a_tool_call_with_args_and_result(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    model = _chat_model(server).bind_tools([get_weather])
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("weather"):
            history: list[BaseMessage] = [HumanMessage(TOOL_QUESTION)]
            request = model.invoke(history)
            assert request.tool_calls == [  # type: ignore[attr-defined]
                {"name": "get_weather", "args": WEATHER_ARGS, "id": "call_fake_1", "type": "tool_call"}
            ]
            tool_message = get_weather.invoke(request.tool_calls[0])  # type: ignore[attr-defined]
            final = model.invoke([*history, request, tool_message])
        s.end()
    assert final.content == TOOL_RESULT_PREFIX + WEATHER
    records = maxim.records()

    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)
    trace_ref = ("trace", trace_create.id)
    assert trace_create.data["input"] == TOOL_QUESTION
    assert trace_output(records, trace_create.id) == TOOL_RESULT_PREFIX + WEATHER

    asking, answering = entities(records, "generation")
    ((choice),) = asking.result["choices"]
    assert choice["finish_reason"] == "tool_calls"  # Traceloop 0.62 says "tool_call": normalised
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("call_fake_1", "get_weather")
    assert arguments(call) == WEATHER_ARGS
    assert asking.result["usage"] == usage_of(instrumentation)

    (tool_call,) = entities(records, "tool_call")
    assert tool_call.parent == trace_ref
    assert tool_call.announced["name"] == "get_weather"
    assert tool_call.announced["description"] == "Get the current weather for a city."
    assert json.loads(tool_call.announced["args"]) == WEATHER_ARGS
    assert tool_call.result == WEATHER
    assert not tool_call.of("error")
    assert tool_call.of("end")

    user, assistant, tool_answer = answering.announced["messages"]
    assert user == {"role": "user", "content": TOOL_QUESTION}
    assert assistant["role"] == "assistant"
    ((history_call),) = assistant["tool_calls"]
    assert (history_call["id"], history_call["function"]["name"]) == ("call_fake_1", "get_weather")
    assert arguments(history_call) == WEATHER_ARGS
    assert tool_answer == {"role": "tool", "content": WEATHER, "tool_call_id": "call_fake_1"}
    assert answering.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": TOOL_RESULT_PREFIX + WEATHER}, "finish_reason": "stop"}
    ]


@pytest.mark.parametrize("instrumentation", LANGCHAIN)
def test_langchain_failures_are_errors(server: FakeOpenAIServer, instrument: Instrument, instrumentation: str) -> None:
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("failing"):
            with pytest.raises(ValueError, match="the weather service is down"):
                broken_weather.invoke({"city": "Oslo", "unit": "celsius"})
            with pytest.raises(openai.InternalServerError):  # langchain-openai's OpenAIAPIError subclasses it
                _chain(server).invoke({"topic": "FAIL"})
        s.end()
    records = maxim.records()
    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)

    (tool_call,) = entities(records, "tool_call")
    assert tool_call.parent == ("trace", trace_create.id)
    assert tool_call.announced["name"] == "broken_weather"
    assert json.loads(tool_call.announced["args"]) == {"city": "Oslo", "unit": "celsius"}
    error = {"message": "the weather service is down", "code": "", "type": "ValueError"}
    assert tool_call.one("error")["error"] == error
    assert not tool_call.of("result")

    (generation,) = entities(records, "generation")
    assert generation.announced["model"] == MODEL  # no response: the request model
    assert generation.announced["messages"][-1] == {"role": "user", "content": "Tell me one fact about FAIL."}
    assert generation.result["error"] == {
        "message": HTTP_500,
        "code": "",
        "type": "langchain_openai.chat_models.base.OpenAIAPIError",
    }
    assert "choices" not in generation.result

    # The chain's root span failed too: an add-error on it (generations and tool calls carry their own).
    root = "RunnableSequence" if instrumentation == OPENINFERENCE_LANGCHAIN else "RunnableSequence.workflow"
    sequence = _span_named(records, root)
    errors = [r for r in records if r.action == "add-error"]
    assert [(r.entity, r.id) for r in errors] == [("span", sequence.data["id"])]
    assert errors[0].data["message"] == HTTP_500
    assert errors[0].data["errorType"] == "langchain_openai.chat_models.base.OpenAIAPIError"
    assert "Traceback" in errors[0].data["metadata"]["stacktrace"]


class StaticRetriever(BaseRetriever):
    """Two fixed documents, whatever the query."""

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [
            Document(page_content="Paris is the capital of France.", metadata={"source": "doc1.txt"}),
            Document(page_content="Berlin is the capital of Germany.", metadata={"source": "doc2.txt"}),
        ]


@pytest.mark.parametrize("instrumentation", LANGCHAIN)
def test_langchain_retriever_becomes_a_retrieval(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("rag"):
            StaticRetriever().invoke(QUESTION)
        s.end()
    records = maxim.records()
    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)

    (retrieval,) = entities(records, "retrieval")
    assert retrieval.parent == ("trace", trace_create.id)
    assert retrieval.announced["name"] in ("StaticRetriever", "vector_db_retrieve StaticRetriever")
    assert [r.action for r in retrieval.records if r.action != "update" or "metadata" not in r.data] == [
        "update",
        "update",
        "end",
    ]
    assert retrieval.of("update")[-2:] == [
        {"input": QUESTION},
        {"docs": ["Paris is the capital of France.", "Berlin is the capital of Germany."]},
    ]


# --- trace input and output from the root -------------------------------------------------------


def test_trace_input_and_output_from_an_openinference_root(server: FakeOpenAIServer, instrument: Instrument) -> None:
    """With no application span, the chain's root is the trace's root: its input.value / output.value win."""
    maxim = maxim_pipeline()
    instrument(OPENINFERENCE_LANGCHAIN, maxim.provider)
    shout = RunnableLambda(lambda text: text.upper(), name="shout")  # the chain's output is not the model's answer
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        shouted = (_chain(server) | shout).invoke({"topic": TOPIC})
        s.end()
    assert shouted == (ANSWER_PREFIX + CHAIN_QUESTION).upper()
    records = maxim.records()
    assert_in_session(records, "conv-1")
    (trace_create,) = trace_creates(records)
    assert trace_create.data["name"] == "RunnableSequence"
    assert trace_create.data["input"] == TOPIC  # the root's input.value, not the first user message
    assert trace_output(records, trace_create.id) == shouted  # the root's output.value, not the last answer
    (generation,) = entities(records, "generation")
    assert generation.parent == ("trace", trace_create.id)  # the root itself became the trace
    assert generation.result["choices"][0]["message"]["content"] == ANSWER_PREFIX + CHAIN_QUESTION


def test_trace_input_and_output_from_maxim_attributes(server: FakeOpenAIServer, instrument: Instrument) -> None:
    maxim = maxim_pipeline()
    instrument(OPENAI_V2, maxim.provider)
    with _client(server) as client, otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn", attributes={"maxim.input": "the user's own words"}) as root:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
            root.set_attribute("maxim.output", "the answer shown to the user")
        s.end()
    records = maxim.records()
    (trace_create,) = trace_creates(records)
    assert trace_create.data["input"] == "the user's own words"
    assert trace_output(records, trace_create.id) == "the answer shown to the user"
    (generation,) = entities(records, "generation")
    assert generation.result["choices"][0]["message"]["content"] == ANSWER_PREFIX + QUESTION


# --- content controls ----------------------------------------------------------------------------

#: Strings of prompts, answers and tool results that no record may hold when content is switched off.
CONTENT = (SYSTEM, QUESTION, STREAM_QUESTION, TOOL_QUESTION, TOPIC, ANSWER_PREFIX, TOOL_RESULT_PREFIX, "sunny")


def _content_scenario(instrumentation: str, server: FakeOpenAIServer) -> None:
    if instrumentation in OPENAI_CLIENT:
        with _client(server) as client:
            _openai_calls(client)
        return
    _chain(server).invoke({"topic": TOPIC})
    model = _chat_model(server).bind_tools([get_weather])
    request = model.invoke([HumanMessage(TOOL_QUESTION)])
    tool_message = get_weather.invoke(request.tool_calls[0])  # type: ignore[attr-defined]
    model.invoke([HumanMessage(TOOL_QUESTION), request, tool_message])


@pytest.mark.parametrize("instrumentation", [*OPENAI_CLIENT, *LANGCHAIN])
def test_capture_content_off_keeps_content_out_of_every_record(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    maxim = maxim_pipeline(capture_content=False)
    instrument(instrumentation, maxim.provider)
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            _content_scenario(instrumentation, server)
        s.end()
    lines = maxim.lines()
    records = maxim.records()
    assert_in_session(records, "conv-1")

    for secret in CONTENT:
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{secret!r} leaked into {len(leaks)} records, first: {leaks[0][:300]}"
    (trace_create,) = trace_creates(records)
    assert "input" not in trace_create.data and trace_output(records, trace_create.id) is None
    assert not [r for r in records if r.action == "update" and "input" in r.data]

    generations = entities(records, "generation")
    assert generations
    streamed = generations[1] if instrumentation in OPENAI_CLIENT else None  # _openai_calls' second call
    for generation in generations:
        assert generation.announced["messages"] == []
        for choice in generation.result.get("choices", []):
            assert choice["message"]["content"] is None
            assert all(call["function"]["arguments"] == "" for call in choice["message"].get("tool_calls", []))
        expected = usage_of(instrumentation, streamed=generation is streamed)
        assert generation.result.get("usage", expected) == expected  # what is not content stays
    called = [c for g in generations for ch in g.result.get("choices", []) for c in ch["message"].get("tool_calls", [])]
    assert [c["function"]["name"] for c in called] == ["get_weather"]
    for tool_call in entities(records, "tool_call"):
        assert "args" not in tool_call.announced and not tool_call.of("result")


def test_capture_content_switched_off_by_the_environment(
    server: FakeOpenAIServer, instrument: Instrument, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAXIM_CAPTURE_CONTENT", "false")
    maxim = maxim_pipeline()
    instrument(OPENAI_V2, maxim.provider)
    with _client(server) as client, otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": QUESTION}])
        s.end()
    lines = maxim.lines()
    assert lines and not [line for line in lines if QUESTION in line]
    (generation,) = entities(maxim.records(), "generation")
    assert generation.announced["model"] == RESPONSE_MODEL and generation.result["usage"] == usage_of(OPENAI_V2)


def _redact_paris(record: Record) -> Record | None:
    """Replace the secret in every string of the record; drop metadata updates altogether."""
    if record.action == "update" and "metadata" in record.data:
        return None

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub("Paris", "[city]", value)
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return record._replace(data=scrub(dict(record.data)))


@pytest.mark.parametrize("sink", ["list", "file"])
def test_redact_runs_on_every_record_whatever_the_sink(
    server: FakeOpenAIServer, instrument: Instrument, tmp_path: Path, sink: str
) -> None:
    maxim: Maxim = maxim_pipeline(path=tmp_path / "out.log" if sink == "file" else None, redact=_redact_paris)
    instrument(OPENAI_V2, maxim.provider)
    with _client(server) as client, otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("Paris turn"):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": TOOL_QUESTION}])
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": TOOL_QUESTION}], tools=[WEATHER_TOOL]
            )
        s.end()
    lines = maxim.lines()
    assert lines and not [line for line in lines if "Paris" in line]
    records = maxim.records()
    assert_in_session(records, "conv-1")
    assert not [r for r in records if r.action == "update" and "metadata" in r.data]
    redacted = TOOL_QUESTION.replace("Paris", "[city]")
    (trace_create,) = trace_creates(records)
    assert trace_create.data["name"] == "[city] turn" and trace_create.data["input"] == redacted
    plain, tool_call = entities(records, "generation")
    assert plain.announced["messages"] == [{"role": "user", "content": redacted}]
    assert plain.result["choices"][0]["message"]["content"] == ANSWER_PREFIX + redacted
    assert trace_output(records, trace_create.id) == ANSWER_PREFIX + redacted
    assert arguments(tool_call.result["choices"][0]["message"]["tool_calls"][0]) == WEATHER_ARGS


# --- images in messages -----------------------------------------------------------------------------

IMAGE_URL = "https://example.com/otter.png"
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAeIhvDMAAAAASUVORK5CYII="
VISION_QUESTION = "What animal is in these pictures?"
VISION_CONTENT = [
    {"type": "text", "text": VISION_QUESTION},
    {"type": "image_url", "image_url": {"url": IMAGE_URL}},
    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
]


@pytest.mark.parametrize("instrumentation", [OPENINFERENCE_OPENAI, TRACELOOP_OPENAI, *LANGCHAIN])
def test_images_sent_to_a_vision_model_become_the_generations_attachments(
    server: FakeOpenAIServer, instrument: Instrument, instrumentation: str
) -> None:
    """A user message with an image by URL and one inline: both leave the messages' text and become
    ``upload-attachment`` records of the generation, which the sink resolves as maxim-py does.

    (openai-v2 2.4b0 leaves images out of the spans it makes, so there is nothing to attach.  Traceloop's
    OpenAI 0.62.4 records no input at all for a request with an inline image: it awaits its default
    ``upload_base64_image``, a lambda returning ``""``, and swallows the TypeError; so it is sent the
    image by URL only, which it records as a ``uri`` part.)"""
    maxim = maxim_pipeline()
    instrument(instrumentation, maxim.provider)
    content = VISION_CONTENT[:2] if instrumentation == TRACELOOP_OPENAI else VISION_CONTENT
    with otel_maxim.session("conv-1", tracer_provider=maxim.provider) as s:
        with s.trace("turn"):
            if instrumentation in (OPENINFERENCE_OPENAI, TRACELOOP_OPENAI):
                with _client(server) as client:
                    client.chat.completions.create(
                        model=MODEL,
                        messages=[{"role": "user", "content": content}],
                    )
            else:
                _chat_model(server).invoke([HumanMessage(content=VISION_CONTENT)])
        s.end()
    records = maxim.records()
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [{"role": "user", "content": VISION_QUESTION}]
    uploads = of(records, "generation", "upload-attachment")
    by_url = {"id": f"{generation.id}-a0", "type": "url", "url": IMAGE_URL, "tags": {"attach-to": "input"}}
    inline = {
        "id": f"{generation.id}-a1",
        "type": "file_data",
        "data": PNG_B64,
        "mime_type": "image/png",
        "tags": {"attach-to": "input"},
    }
    assert [r.data for r in uploads] == ([by_url] if instrumentation == TRACELOOP_OPENAI else [by_url, inline])
    assert all(r.id == generation.id for r in uploads)
