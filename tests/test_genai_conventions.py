"""Hand-built spans for the conventions that no installed instrumentation emits.

Vercel AI SDK ``ai.*`` spans, the older ``gen_ai.*.message`` / ``gen_ai.choice`` span
events (plain attributes, and Azure AI Inference's ``gen_ai.event.content``), Strands Agents'
(content blocks in those events, or the ``gen_ai.client.inference.operation.details`` event), Traceloop
<= 0.54's flattened ``gen_ai.prompt.N.*`` / ``gen_ai.completion.N.*`` (attribute values
copied from what 0.54.0 emitted against the fake OpenAI server), OpenInference
retrievers; then provider names, model parameters, finish reasons, errors, tags and
the trace's input and output, through the real processor and exporter.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from unittest.mock import ANY

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags, Tracer

from otel_maxim.mapping import genai
from otel_maxim.records import Record
from tests.genai_helpers import Maxim, arguments, entities, maxim_pipeline, of, trace_creates, trace_output
from tests.record_checks import exported

Build = Callable[[Tracer], None]


def _run(build: Build, **options: Any) -> tuple[Maxim, list[Record]]:
    maxim = maxim_pipeline(**options)
    build(maxim.provider.get_tracer("hand-built"))
    return maxim, maxim.records()


def _span(tracer: Tracer, name: str, attributes: dict[str, Any]) -> Any:
    return tracer.start_as_current_span(name, attributes=attributes, record_exception=False)


# --- which entity a span becomes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"gen_ai.operation.name": "chat"}, genai.GENERATION),
        ({"gen_ai.operation.name": "text_completion"}, genai.GENERATION),
        ({"gen_ai.operation.name": "generate_content"}, genai.GENERATION),
        ({"gen_ai.operation.name": "execute_tool"}, genai.TOOL_CALL),
        ({"gen_ai.operation.name": "vector_db_retrieve"}, genai.RETRIEVAL),
        ({"gen_ai.operation.name": "embeddings"}, genai.SPAN),
        ({"gen_ai.operation.name": "invoke_agent"}, genai.SPAN),
        # The first convention that speaks decides: a GenAI agent span is a span whatever else it says.
        ({"gen_ai.operation.name": "invoke_agent", "openinference.span.kind": "LLM"}, genai.SPAN),
        ({"openinference.span.kind": "LLM"}, genai.GENERATION),
        ({"openinference.span.kind": "TOOL"}, genai.TOOL_CALL),
        ({"openinference.span.kind": "RETRIEVER"}, genai.RETRIEVAL),
        ({"openinference.span.kind": "CHAIN"}, genai.SPAN),
        ({"openinference.span.kind": "AGENT"}, genai.SPAN),
        ({"openinference.span.kind": "EMBEDDING"}, genai.SPAN),
        ({"ai.operationId": "ai.generateText.doGenerate"}, genai.GENERATION),
        ({"ai.operationId": "ai.streamText.doStream"}, genai.GENERATION),
        ({"ai.operationId": "ai.toolCall"}, genai.TOOL_CALL),
        ({"ai.operationId": "ai.generateText"}, genai.SPAN),
        ({"llm.request.type": "chat", "gen_ai.system": "openai"}, genai.GENERATION),
        ({"gen_ai.operation.name": "llm_request", "gen_ai.prompt.0.role": "user"}, genai.GENERATION),
        ({"gen_ai.prompt.0.role": "user"}, genai.GENERATION),
        ({"traceloop.span.kind": "tool"}, genai.TOOL_CALL),
        ({"traceloop.span.kind": "workflow"}, genai.SPAN),
        ({"http.request.method": "GET"}, genai.SPAN),
    ],
)
def test_classify(attributes: dict[str, Any], kind: str) -> None:
    assert genai.classify(attributes) == kind


# --- Vercel AI SDK ---------------------------------------------------------------------------------

VERCEL_SYSTEM = "You are a weather bot."
VERCEL_QUESTION = "Weather in Paris?"
VERCEL_ANSWER = "It is 18 degrees in Paris."
VERCEL_FIRST_PROMPT = [
    {"role": "system", "content": VERCEL_SYSTEM},
    {"role": "user", "content": [{"type": "text", "text": VERCEL_QUESTION}]},
]
VERCEL_SECOND_PROMPT = [
    *VERCEL_FIRST_PROMPT,
    {
        "role": "assistant",
        "content": [{"type": "tool-call", "toolCallId": "call_1", "toolName": "weather", "args": {"city": "Paris"}}],
    },
    {
        "role": "tool",
        "content": [{"type": "tool-result", "toolCallId": "call_1", "toolName": "weather", "result": {"celsius": 18}}],
    },
]


def _vercel_generate_text(tracer: Tracer) -> None:
    """``generateText`` with one tool round trip, as AI SDK 4 records it (the second step with only ``ai.*``)."""
    with _span(
        tracer,
        "ai.generateText",
        {
            "operation.name": "ai.generateText",
            "ai.operationId": "ai.generateText",
            "ai.model.id": "gpt-4o-mini",
            "ai.model.provider": "openai.chat",
            "ai.prompt": json.dumps({"system": VERCEL_SYSTEM, "prompt": VERCEL_QUESTION}),
            "ai.settings.maxRetries": 2,
        },
    ) as root:
        with _span(
            tracer,
            "ai.generateText.doGenerate",
            {
                "operation.name": "ai.generateText.doGenerate",
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.id": "gpt-4o-mini",
                "ai.model.provider": "openai.chat",
                "ai.prompt.format": "messages",
                "ai.prompt.messages": json.dumps(VERCEL_FIRST_PROMPT),
                "ai.prompt.tools": [json.dumps({"type": "function", "name": "weather", "parameters": {}})],
                "ai.prompt.toolChoice": json.dumps({"type": "auto"}),
                "ai.settings.temperature": 0.2,
                "ai.settings.maxTokens": 50,
                "ai.settings.maxRetries": 2,
                "gen_ai.system": "openai.chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 50,
                "ai.response.finishReason": "tool-calls",
                "ai.response.toolCalls": json.dumps(
                    [
                        {
                            "toolCallType": "function",
                            "toolCallId": "call_1",
                            "toolName": "weather",
                            "args": '{"city":"Paris"}',
                        }
                    ]
                ),
                "ai.response.id": "resp-1",
                "ai.response.model": "gpt-4o-mini-2024-07-18",
                "ai.usage.promptTokens": 20,
                "ai.usage.completionTokens": 5,
                "gen_ai.response.finish_reasons": ["tool-calls"],
                "gen_ai.response.id": "resp-1",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 20,
                "gen_ai.usage.output_tokens": 5,
            },
        ):
            pass
        with _span(
            tracer,
            "ai.toolCall",
            {
                "operation.name": "ai.toolCall",
                "ai.operationId": "ai.toolCall",
                "ai.toolCall.name": "weather",
                "ai.toolCall.id": "call_1",
                "ai.toolCall.args": '{"city":"Paris"}',
                "ai.toolCall.result": '{"celsius":18}',
            },
        ):
            pass
        with _span(
            tracer,
            "ai.generateText.doGenerate",
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.model.id": "gpt-4o-mini",
                "ai.model.provider": "openai.chat",
                "ai.prompt.messages": json.dumps(VERCEL_SECOND_PROMPT),
                "ai.settings.temperature": 0.2,
                "ai.settings.maxOutputTokens": 50,
                "ai.response.finishReason": "stop",
                "ai.response.text": VERCEL_ANSWER,
                "ai.response.id": "resp-2",
                "ai.response.model": "gpt-4o-mini-2024-07-18",
                "ai.usage.inputTokens": 40,
                "ai.usage.outputTokens": 10,
                "ai.usage.totalTokens": 50,
            },
        ):
            pass
        root.set_attribute("ai.response.text", VERCEL_ANSWER)
        root.set_attribute("ai.response.finishReason", "stop")


def test_vercel_ai_sdk_generation_tool_call_and_generation() -> None:
    _, records = _run(_vercel_generate_text)
    (trace_create,) = trace_creates(records)
    trace_ref = ("trace", trace_create.id)
    assert trace_create.data["name"] == "ai.generateText"
    assert trace_create.data["input"] == VERCEL_QUESTION  # the root has no input.value: the first user message
    assert trace_output(records, trace_create.id) == VERCEL_ANSWER

    asking, answering = entities(records, "generation")
    for generation in (asking, answering):
        assert generation.parent == trace_ref
        assert generation.announced["name"] == "ai.generateText.doGenerate"
        assert generation.announced["model"] == "gpt-4o-mini-2024-07-18"  # the response model
        assert generation.announced["provider"] == "openai"  # "openai.chat" normalised
        # The model asked for, beside the one that answered.
        assert generation.announced["modelParameters"] == {
            "temperature": "0.2",
            "max_tokens": "50",
            "model": "gpt-4o-mini",
        }
    system_and_user = [{"role": "system", "content": VERCEL_SYSTEM}, {"role": "user", "content": VERCEL_QUESTION}]
    assert asking.announced["messages"] == system_and_user
    assert asking.result["id"] == "resp-1"
    assert asking.result["model"] == "gpt-4o-mini-2024-07-18"
    assert asking.result["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",  # Vercel's "tool-calls"
        }
    ]
    assert asking.result["usage"] == {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}

    (tool_call,) = entities(records, "tool_call")
    assert tool_call.parent == trace_ref
    assert tool_call.announced["name"] == "weather"
    assert json.loads(tool_call.announced["args"]) == {"city": "Paris"}
    assert json.loads(tool_call.result) == {"celsius": 18}

    *_, assistant, tool_answer = answering.announced["messages"]
    assert answering.announced["messages"][:2] == system_and_user
    ((call),) = assistant["tool_calls"]
    assert assistant["role"] == "assistant" and (call["id"], call["function"]["name"]) == ("call_1", "weather")
    assert arguments(call) == {"city": "Paris"}
    assert tool_answer["role"] == "tool" and tool_answer["tool_call_id"] == "call_1"
    assert json.loads(tool_answer["content"]) == {"celsius": 18}
    assert answering.result["id"] == "resp-2"
    assert answering.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": VERCEL_ANSWER}, "finish_reason": "stop"}
    ]
    assert answering.result["usage"] == {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}


def test_vercel_ai_sdk_5_tool_call_output_and_prompt_forms() -> None:
    """AI SDK 5 names: tool results as ``output: {type, value}``, tool-call ``input``; ``ai.prompt`` alone."""

    def build(tracer: Tracer) -> None:
        with _span(
            tracer,
            "ai.streamText.doStream",
            {
                "ai.operationId": "ai.streamText.doStream",
                "ai.model.provider": "anthropic.messages",
                "ai.model.id": "claude-sonnet-4",
                "ai.prompt": json.dumps({"system": "Be brief.", "prompt": "Hi there"}),
                "ai.response.toolCalls": json.dumps(
                    [{"toolCallId": "t1", "toolName": "lookup", "input": {"order": 42}}]
                ),
                "ai.response.finishReason": "tool-calls",
            },
        ):
            pass
        with _span(
            tracer,
            "ai.streamText.doStream",
            {
                "ai.operationId": "ai.streamText.doStream",
                "ai.model.provider": "anthropic.messages",
                "ai.model.id": "claude-sonnet-4",
                "ai.prompt.messages": json.dumps(
                    [
                        {"role": "user", "content": [{"type": "text", "text": "Hi there"}]},
                        {
                            "role": "tool",
                            "content": [
                                {
                                    "type": "tool-result",
                                    "toolCallId": "t1",
                                    "toolName": "lookup",
                                    "output": {"type": "text", "value": "shipped"},
                                }
                            ],
                        },
                    ]
                ),
                "ai.response.text": "It shipped.",
            },
        ):
            pass
        with _span(
            tracer,
            "execute_tool lookup",
            {"ai.operationId": "ai.toolCall", "ai.toolCall.name": "lookup", "ai.toolCall.output": '"shipped"'},
        ):
            pass

    _, records = _run(build)
    first, second = entities(records, "generation")
    assert first.announced["provider"] == "anthropic" and first.announced["model"] == "claude-sonnet-4"
    assert first.announced["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    ((choice),) = first.result["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert [(c["id"], c["function"]["name"], arguments(c)) for c in choice["message"]["tool_calls"]] == [
        ("t1", "lookup", {"order": 42})
    ]
    assert second.announced["messages"][1] == {"role": "tool", "content": "shipped", "tool_call_id": "t1"}
    assert second.result["choices"][0]["message"] == {"role": "assistant", "content": "It shipped."}
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.announced["name"] == "lookup" and tool_call.result == '"shipped"'


# --- the older GenAI span events -------------------------------------------------------------------


def _older_events_chat(tracer: Tracer) -> None:
    """A chat span whose messages are span events (the GenAI conventions before ``gen_ai.input.messages``)."""
    with _span(
        tracer,
        "chat gpt-4o",
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 25,
            "gen_ai.usage.output_tokens": 3,
            "gen_ai.response.finish_reasons": ["tool_calls"],
        },
    ) as span:
        span.add_event("gen_ai.system.message", {"gen_ai.system": "openai", "content": "be nice"})
        span.add_event("gen_ai.user.message", {"gen_ai.system": "openai", "content": "Where is my order?"})
        earlier_call = {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        span.add_event("gen_ai.assistant.message", {"tool_calls": json.dumps([earlier_call])})
        span.add_event("gen_ai.tool.message", {"content": "which order?", "id": "call_0"})
        span.add_event("retry", {"attempt": 2})
        call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"order": 42}'}}
        span.add_event(
            "gen_ai.choice",
            {"index": 0, "finish_reason": "tool_calls", "message": json.dumps({"tool_calls": [call]})},
        )


def test_older_genai_message_and_choice_events() -> None:
    _, records = _run(_older_events_chat)
    (trace_create,) = trace_creates(records)
    (generation,) = entities(records, "generation")
    assert generation.parent == ("trace", trace_create.id)
    assert generation.announced["model"] == "gpt-4o-2024-08-06" and generation.announced["provider"] == "openai"
    assert generation.announced["messages"] == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Where is my order?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}],
        },
        {"role": "tool", "content": "which order?", "tool_call_id": "call_0"},
    ]
    assert generation.result["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"order": 42}'}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]
    assert generation.result["usage"] == {"prompt_tokens": 25, "completion_tokens": 3, "total_tokens": 28}
    # The message events are read into the generation; any other event stays an event, on the trace.
    events = [r for r in records if r.action == "add-event"]
    assert [(r.entity, r.id, r.data["name"]) for r in events] == [("trace", trace_create.id, "retry")]
    assert events[0].data["metadata"] == {"attempt": "2", "maxim.entity": f"generation:{generation.id}"}
    assert trace_create.data["input"] == "Where is my order?"


def test_azure_ai_inference_events_with_gen_ai_event_content() -> None:
    """azure-ai-inference puts each message as JSON in the event attribute ``gen_ai.event.content``."""

    def build(tracer: Tracer) -> None:
        with _span(
            tracer,
            "chat gpt-4o",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "az.ai.inference",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 25,
                "gen_ai.usage.output_tokens": 3,
            },
        ) as span:
            for role, content in (("system", "be nice"), ("user", "Where is my order?")):
                span.add_event(
                    f"gen_ai.{role}.message",
                    {
                        "gen_ai.system": "az.ai.inference",
                        "gen_ai.event.content": json.dumps({"role": role, "content": content}),
                    },
                )
            span.add_event(
                "gen_ai.choice",
                {
                    "gen_ai.system": "az.ai.inference",
                    "gen_ai.event.content": json.dumps(
                        {"finish_reason": "stop", "index": 0, "message": {"content": "It shipped."}}
                    ),
                },
            )

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["provider"] == "azure"
    assert generation.announced["messages"] == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Where is my order?"},
    ]
    assert generation.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "It shipped."}, "finish_reason": "stop"}
    ]
    assert not of(records, "trace", "add-event")


def test_azure_ai_inference_message_events_keep_content_parts_files_and_tool_call_ids() -> None:
    """``gen_ai.event.content`` holds the request's message as azure-ai-inference's ``as_dict()`` gives it:
    a user message's content may be parts (text, an image), a tool message names its call ``tool_call_id``."""
    call = {"id": "call_7", "type": "function", "function": {"name": "lookup", "arguments": '{"id": 7}'}}
    bodies = {
        "user": {
            "role": "user",
            "content": [
                {"type": "text", "text": "Is this order 7?"},
                {"type": "image_url", "image_url": {"url": DATA_URL, "detail": "low"}},
            ],
        },
        "assistant": {"role": "assistant", "tool_calls": [call]},
        "tool": {"role": "tool", "content": "shipped", "tool_call_id": "call_7"},
    }

    def build(tracer: Tracer) -> None:
        with _span(
            tracer, "chat gpt-4o", {"gen_ai.operation.name": "chat", "gen_ai.system": "az.ai.inference"}
        ) as span:
            for role, body in bodies.items():
                span.add_event(f"gen_ai.{role}.message", {"gen_ai.event.content": json.dumps(body)})

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [
        {"role": "user", "content": "Is this order 7?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "shipped", "tool_call_id": "call_7"},
    ]
    (upload,) = of(records, "generation", "upload-attachment")
    assert upload.data == {"id": f"{generation.id}-a0", **INLINE_PNG, "tags": {"attach-to": "input"}}


def test_system_instructions_come_before_messages_from_events() -> None:
    """``gen_ai.system_instructions`` beside message events: the instructions, then the events' messages."""
    instructions = json.dumps([{"type": "text", "content": "Be brief."}])
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.system_instructions": instructions}

    def build(tracer: Tracer) -> None:
        with _span(tracer, "chat", attributes) as span:
            span.add_event("gen_ai.user.message", {"content": "Capital of France?"})
            span.add_event("gen_ai.choice", {"index": 0, "message": '{"content": "Paris."}'})

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert not of(records, "trace", "add-event")
    (trace_create,) = trace_creates(records)
    assert trace_create.data["input"] == "Capital of France?"


# --- Strands Agents --------------------------------------------------------------------------------

STRANDS_SYSTEM_PROMPT = "You are Acme's HR bot."
STRANDS_QUESTION = "How many vacation days do I have?"
STRANDS_TOOL_OUTPUT = "12 days left"
STRANDS_ANSWER = "You have 12 vacation days left."
_STRANDS_TOOL_USE = [{"toolUse": {"toolUseId": "tooluse_1", "name": "vacation_days", "input": {}}}]
_STRANDS_TOOL_RESULT = [
    {"toolResult": {"toolUseId": "tooluse_1", "status": "success", "content": [{"text": STRANDS_TOOL_OUTPUT}]}}
]


def _strands_agent(tracer: Tracer) -> None:
    """One agent call with one tool round trip, as Strands Agents' tracer records it with the default
    conventions: a message's content blocks as JSON in the message events and in ``gen_ai.choice``'s
    ``message``, the system prompt on the agent span, the tools' results as the cycle's ``tool.result``."""
    strands = {"gen_ai.system": "strands-agents", "gen_ai.request.model": "claude-sonnet"}
    question = json.dumps([{"text": STRANDS_QUESTION}])
    tool_use = json.dumps(_STRANDS_TOOL_USE)
    agent_attributes = {"gen_ai.operation.name": "invoke_agent", **strands, "gen_ai.agent.name": "hr"}
    agent_attributes["gen_ai.agent.system_prompt"] = STRANDS_SYSTEM_PROMPT
    tool_attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "vacation_days"}
    with _span(tracer, "invoke_agent hr", agent_attributes) as agent:
        agent.add_event("gen_ai.user.message", {"content": question})
        with _span(tracer, "execute_event_loop_cycle", {"event_loop.cycle_id": "1"}) as cycle:
            cycle.add_event("gen_ai.user.message", {"content": question})
            with _span(tracer, "chat", {"gen_ai.operation.name": "chat", **strands}) as chat:
                chat.add_event("gen_ai.user.message", {"content": question})
                chat.add_event("gen_ai.choice", {"finish_reason": "tool_use", "message": tool_use})
            with _span(tracer, "execute_tool vacation_days", tool_attributes) as tool:
                tool.add_event("gen_ai.tool.message", {"role": "tool", "content": "{}", "id": "tooluse_1"})
                tool_output = json.dumps([{"text": STRANDS_TOOL_OUTPUT}])
                tool.add_event("gen_ai.choice", {"message": tool_output, "id": "tooluse_1"})
            cycle.add_event("gen_ai.choice", {"message": tool_use, "tool.result": json.dumps(_STRANDS_TOOL_RESULT)})
        with _span(tracer, "execute_event_loop_cycle", {"event_loop.cycle_id": "2"}):
            with _span(tracer, "chat", {"gen_ai.operation.name": "chat", **strands}) as chat:
                chat.add_event("gen_ai.user.message", {"content": question})
                chat.add_event("gen_ai.assistant.message", {"content": tool_use})
                chat.add_event("gen_ai.tool.message", {"content": json.dumps(_STRANDS_TOOL_RESULT)})
                answer = json.dumps([{"text": STRANDS_ANSWER}])
                chat.add_event("gen_ai.choice", {"finish_reason": "end_turn", "message": answer})
        agent.add_event("gen_ai.choice", {"message": STRANDS_ANSWER + "\n", "finish_reason": "end_turn"})


def test_strands_agents_answers_in_content_blocks_are_their_text() -> None:
    """Strands' ``gen_ai.choice`` holds no JSON object but the answer's content blocks (a text answer is
    ``[{"text": ...}]``; blocks that are more than text, a tool use, keep their JSON) or plain text."""
    _, records = _run(_strands_agent)
    asking, answering = entities(records, "generation")
    assert asking.announced["messages"] == [{"role": "user", "content": STRANDS_QUESTION}]
    assert asking.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": json.dumps(_STRANDS_TOOL_USE)},
            "finish_reason": "tool_use",
        }
    ]
    assert answering.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": STRANDS_ANSWER}, "finish_reason": "end_turn"}
    ]
    (trace_create,) = trace_creates(records)
    assert trace_create.data["input"] == STRANDS_QUESTION
    assert trace_output(records, trace_create.id) == STRANDS_ANSWER


@pytest.mark.parametrize("message", ["Paris.", json.dumps([{"text": "Paris."}])], ids=["text", "content-blocks"])
def test_a_choice_events_message_that_is_no_json_object_is_the_answer(message: str) -> None:
    def build(tracer: Tracer) -> None:
        with _span(tracer, "chat", {"gen_ai.operation.name": "chat"}) as span:
            span.add_event("gen_ai.choice", {"finish_reason": "end_turn", "message": message})

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "end_turn"}
    ]


def _inference_details(events: list[dict[str, Any]]) -> Build:
    def build(tracer: Tracer) -> None:
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "strands-agents"}
        with _span(tracer, "chat", {**attributes, "gen_ai.usage.input_tokens": 9}) as span:
            for event in events:
                span.add_event("gen_ai.client.inference.operation.details", event)
            span.add_event("retry", {"attempt": 2})

    return build


_DETAILS_INPUT = {
    "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}]
    )
}
_DETAILS_OUTPUT = {
    "gen_ai.output.messages": json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], "finish_reason": "end_turn"}]
    )
}
_DETAILS_INSTRUCTIONS = {"gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}])}


@pytest.mark.parametrize(
    ("events", "system"),
    [
        pytest.param([_DETAILS_INPUT, _DETAILS_OUTPUT], [], id="strands"),  # as the call starts, and as it ends
        pytest.param(
            [{"gen_ai.operation.name": "chat", **_DETAILS_INSTRUCTIONS, **_DETAILS_INPUT, **_DETAILS_OUTPUT}],
            [{"role": "system", "content": "Be brief."}],
            id="the-conventions",  # one event, the span's attributes and all the messages
        ),
    ],
)
def test_inference_details_events_on_the_span_are_read_as_its_attributes(
    events: list[dict[str, Any]], system: list[dict[str, Any]]
) -> None:
    """The current conventions' ``gen_ai.client.inference.operation.details`` event, which Strands Agents
    (``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``) adds to the span, is read as the
    attributes it holds would be, and not sent again as an event."""
    _, records = _run(_inference_details(events))
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [*system, {"role": "user", "content": "Capital of France?"}]
    assert generation.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "end_turn"}
    ]
    assert [r.data["name"] for r in records if r.action == "add-event"] == ["retry"]


def _semantic_kernel_chat(tracer: Tracer) -> None:
    """Semantic Kernel's spans before the GenAI message attributes: the conventions' first events
    (``gen_ai.content.prompt``/``.completion``), each holding ``json.dumps([m.to_dict() ...])``."""
    call = {"id": "call_7", "type": "function", "function": {"name": "orders-lookup", "arguments": '{"id": 7}'}}
    history = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": "shipped", "tool_call_id": "call_7"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And when"}, {"type": "text", "text": "will it arrive?"}],
        },
    ]
    with (
        _span(tracer, "kernel", {}),
        _span(
            tracer,
            "chat.completions gpt-4o",
            {
                "gen_ai.operation.name": "chat.completions",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.request.temperature": 0.1,
                "gen_ai.response.id": "chatcmpl-sk",
                "gen_ai.response.prompt_tokens": 31,
                "gen_ai.response.completion_tokens": 6,
            },
        ) as span,
    ):
        span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps(history)})
        span.add_event("retry", {"attempt": 2})
        answer = [{"role": "assistant", "content": "Tomorrow."}]
        span.add_event("gen_ai.content.completion", {"gen_ai.completion": json.dumps(answer)})
        with _span(
            tracer, "text.completions gpt-3.5-turbo-instruct", {"gen_ai.operation.name": "text.completions"}
        ) as inner:
            inner.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "Say hi"})
            inner.add_event("gen_ai.content.completion", {"gen_ai.completion": "Hi there"})


def test_semantic_kernel_prompt_and_completion_events() -> None:
    _, records = _run(_semantic_kernel_chat)
    chat, text_completion = entities(records, "generation")
    assert chat.announced["model"] == "gpt-4o" and chat.announced["modelParameters"] == {"temperature": "0.1"}
    assert chat.announced["messages"] == [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Where is order 7?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": "orders-lookup", "arguments": '{"id": 7}'}}
            ],
        },
        {"role": "tool", "content": "shipped", "tool_call_id": "call_7"},
        {"role": "user", "content": "And when\nwill it arrive?"},
    ]
    assert chat.result["id"] == "chatcmpl-sk"
    assert chat.result["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Tomorrow."}}]
    assert chat.result["usage"] == {"prompt_tokens": 31, "completion_tokens": 6, "total_tokens": 37}
    # A text completion's prompt and answer are plain text.
    assert text_completion.announced["messages"] == [{"role": "user", "content": "Say hi"}]
    assert text_completion.result["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}}]
    # The two content events are read into the generations; any other event stays an event.
    assert [r.data["name"] for r in records if r.action == "add-event"] == ["retry"]


# --- Traceloop <= 0.54: gen_ai.prompt.N.* / gen_ai.completion.N.* --------------------------------

_TL054_COMMON = {
    "traceloop.workflow.name": "weather_agent",
    "traceloop.entity.path": "",
    "traceloop.association.properties.ls_provider": "openai",
    "traceloop.association.properties.ls_model_name": "gpt-4o-mini",
    "traceloop.association.properties.ls_temperature": 0.2,
    "gen_ai.system": "openai",
    "llm.request.type": "chat",
    "gen_ai.operation.name": "llm_request",
    "llm.request.functions.0.name": "get_weather",
    "llm.request.functions.0.description": "Get the current weather for a city.",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.max_tokens": 50,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.prompt.0.role": "system",
    "gen_ai.prompt.0.content": "Use tools when helpful.",
    "gen_ai.prompt.1.role": "user",
    "gen_ai.prompt.1.content": "What's the weather in Paris?",
    "gen_ai.response.model": "gpt-4o-mini-fake-0001",
    "gen_ai.usage.input_tokens": 11,
    "gen_ai.usage.output_tokens": 7,
    "llm.usage.total_tokens": 18,
    "gen_ai.usage.cache_read_input_tokens": 0,
}
_TL054_ARGS = '{"city": "test", "unit": "celsius"}'
_TL054_WEATHER = "18 degrees celsius and sunny in test"


def _traceloop_054_agent(tracer: Tracer) -> None:
    """The ``tool_agent`` case as Traceloop's opentelemetry-instrumentation-langchain 0.54.0 recorded it."""
    with _span(
        tracer,
        "weather_agent.workflow",
        {
            "traceloop.workflow.name": "weather_agent",
            "traceloop.span.kind": "workflow",
            "traceloop.entity.name": "weather_agent",
            "gen_ai.provider.name": "langchain",
            "gen_ai.operation.name": "invoke_agent",
            "traceloop.entity.input": json.dumps({"inputs": "What's the weather in Paris?", "tags": []}),
            "gen_ai.task.input": json.dumps({"inputs": "What's the weather in Paris?", "tags": []}),
        },
    ) as workflow:
        with _span(
            tracer,
            "ChatOpenAI.chat",
            {
                **_TL054_COMMON,
                "gen_ai.response.id": "chatcmpl-fake-4",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.tool_calls.0.id": "call_fake_4",
                "gen_ai.completion.0.tool_calls.0.name": "get_weather",
                "gen_ai.completion.0.tool_calls.0.arguments": _TL054_ARGS,
            },
        ):
            pass
        wrapped_args = json.dumps(
            {
                "input_str": "{'city': 'test', 'unit': 'celsius'}",
                "tags": [],
                "metadata": {},
                "inputs": {"city": "test", "unit": "celsius"},
                "kwargs": {"color": "green", "name": None, "tool_call_id": "call_fake_4"},
            }
        )
        wrapped_result = json.dumps(
            {
                "output": {
                    "lc": 1,
                    "type": "constructor",
                    "id": ["langchain", "schema", "messages", "ToolMessage"],
                    "kwargs": {
                        "content": _TL054_WEATHER,
                        "type": "tool",
                        "name": "get_weather",
                        "tool_call_id": "call_fake_4",
                        "status": "success",
                    },
                },
                "kwargs": {"tags": [], "color": "green", "name": "get_weather"},
            }
        )
        with _span(
            tracer,
            "execute_tool get_weather",
            {
                "traceloop.workflow.name": "weather_agent",
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "get_weather",
                "gen_ai.provider.name": "langchain",
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.type": "function",
                "gen_ai.tool.description": "Get the current weather for a city.",
                "traceloop.entity.input": wrapped_args,
                "gen_ai.tool.call.arguments": wrapped_args,
                "gen_ai.task.status": "success",
                "traceloop.entity.output": wrapped_result,
                "gen_ai.tool.call.result": wrapped_result,
            },
        ):
            pass
        with _span(
            tracer,
            "ChatOpenAI.chat",
            {
                **_TL054_COMMON,
                "gen_ai.prompt.2.role": "assistant",
                "gen_ai.prompt.2.tool_calls.0.id": "call_fake_4",
                "gen_ai.prompt.2.tool_calls.0.name": "get_weather",
                "gen_ai.prompt.2.tool_calls.0.arguments": _TL054_ARGS,
                "gen_ai.prompt.2.content": "",
                "gen_ai.prompt.3.role": "tool",
                "gen_ai.prompt.3.content": _TL054_WEATHER,
                "gen_ai.prompt.3.tool_call_id": "call_fake_4",
                "gen_ai.response.id": "chatcmpl-fake-5",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Tool result received: " + _TL054_WEATHER,
                "gen_ai.completion.0.finish_reason": "stop",
            },
        ):
            pass
        workflow.set_attribute(
            "traceloop.entity.output", json.dumps({"outputs": "Tool result received: " + _TL054_WEATHER})
        )


def test_traceloop_054_flattened_prompts_and_completions() -> None:
    _, records = _run(_traceloop_054_agent)
    (trace_create,) = trace_creates(records)
    assert trace_create.data["name"] == "weather_agent.workflow"
    assert trace_create.data["input"] == "What's the weather in Paris?"
    assert trace_output(records, trace_create.id) == "Tool result received: " + _TL054_WEATHER

    asking, answering = entities(records, "generation")
    system_and_user = [
        {"role": "system", "content": "Use tools when helpful."},
        {"role": "user", "content": "What's the weather in Paris?"},
    ]
    for generation in (asking, answering):
        assert generation.announced["name"] == "ChatOpenAI.chat"
        assert generation.announced["model"] == "gpt-4o-mini-fake-0001"
        assert generation.announced["provider"] == "openai"  # from gen_ai.system
        assert generation.announced["modelParameters"] == {
            "max_tokens": "50",
            "temperature": "0.2",
            "model": "gpt-4o-mini",
        }
        assert generation.result["usage"] == {
            "prompt_tokens": 11,
            "completion_tokens": 7,
            "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 0},  # gen_ai.usage.cache_read_input_tokens
        }
    assert asking.announced["messages"] == system_and_user
    assert asking.result["id"] == "chatcmpl-fake-4"
    assert asking.result["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_fake_4",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": _TL054_ARGS},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ]

    (tool_call,) = entities(records, "tool_call")
    assert tool_call.announced["name"] == "get_weather"
    assert tool_call.announced["description"] == "Get the current weather for a city."
    assert json.loads(tool_call.announced["args"]) == {"city": "test", "unit": "celsius"}  # Traceloop's envelope off
    assert tool_call.result == _TL054_WEATHER  # the ToolMessage's content, not its serialisation

    assert answering.announced["messages"] == [
        *system_and_user,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_fake_4", "type": "function", "function": {"name": "get_weather", "arguments": _TL054_ARGS}}
            ],
        },
        {"role": "tool", "content": _TL054_WEATHER, "tool_call_id": "call_fake_4"},
    ]
    assert answering.result["id"] == "chatcmpl-fake-5"
    assert answering.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Tool result received: " + _TL054_WEATHER},
            "finish_reason": "stop",
        }
    ]


def test_traceloop_054_streamed_answer_with_unknown_role() -> None:
    def build(tracer: Tracer) -> None:
        with _span(
            tracer,
            "ChatOpenAI.chat",
            {
                "gen_ai.system": "openai",
                "llm.request.type": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "Stream please",
                "gen_ai.completion.0.role": "unknown",
                "gen_ai.completion.0.content": "Fake answer to: Stream please",
                "gen_ai.completion.0.finish_reason": "stop",
            },
        ):
            pass

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["model"] == "gpt-4o-mini"
    assert generation.result["id"] == generation.id  # no response id: the generation's own
    assert generation.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Fake answer to: Stream please"},
            "finish_reason": "stop",
        }
    ]
    assert "usage" not in generation.result


def test_traceloop_054_text_completion_prompt_is_a_user_message() -> None:
    """A completions API's prompt, as Traceloop <= 0.54 records it (OpenAI's, Anthropic's, Bedrock's, ...):
    ``gen_ai.prompt.0.user``, with neither role nor content."""
    attributes = {
        "llm.request.type": "completion",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-3.5-turbo-instruct",
        "gen_ai.prompt.0.user": "Translate to Spanish: good morning",
        "gen_ai.completion.0.content": "Buenos dias",
        "gen_ai.completion.0.finish_reason": "stop",
    }
    _, records = _run(lambda tracer: tracer.start_span("openai.completion", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [{"role": "user", "content": "Translate to Spanish: good morning"}]
    assert generation.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Buenos dias"}, "finish_reason": "stop"}
    ]
    (trace_create,) = trace_creates(records)
    assert trace_create.data["input"] == "Translate to Spanish: good morning"


# --- Traceloop >= 0.55 finish reason "tool_call" ---------------------------------------------------


def test_finish_reason_tool_call_becomes_tool_calls() -> None:
    def build(tracer: Tracer) -> None:
        with _span(
            tracer,
            "ChatOpenAI.chat",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Oslo"}}
                            ],
                            "finish_reason": "tool_call",
                        }
                    ]
                ),
                "gen_ai.response.finish_reasons": ["tool_call"],
            },
        ):
            pass

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    ((choice),) = generation.result["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert [(c["id"], arguments(c)) for c in choice["message"]["tool_calls"]] == [("c1", {"city": "Oslo"})]


def test_a_tool_call_without_an_id_gets_one_as_maxim_py_gives_it() -> None:
    """Gemini's function calls have no id; maxim-py gives each ``str(uuid4())`` (OpenAI's shape has one)."""
    calls = [
        {"type": "tool_call", "name": "get_weather", "arguments": {"city": "Oslo"}},
        {"type": "tool_call", "id": "", "name": "get_time", "arguments": {"city": "Oslo"}},
        {"type": "tool_call", "id": "c3", "name": "get_date", "arguments": {}},
    ]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": calls, "finish_reason": "stop"}]),
    }
    _, records = _run(lambda tracer: tracer.start_span("chat gemini", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    ids = [call["id"] for call in generation.result["choices"][0]["message"]["tool_calls"]]
    assert ids[2] == "c3"
    assert [str(uuid.UUID(made)) for made in ids[:2]] == ids[:2] and ids[0] != ids[1]  # two new uuid4s


# --- OpenInference retrievers ----------------------------------------------------------------------


RETRIEVED = [f"document number {n}" for n in range(12)]  # indices 10 and 11 sort after 9, not after 1


def _retriever_under_agent(tracer: Tracer) -> None:
    """An OpenInference RETRIEVER span (query in input.value, documents flattened) under an agent span."""
    attributes: dict[str, Any] = {
        "openinference.span.kind": "RETRIEVER",
        "input.value": "capital of France",
        "metadata": json.dumps({"ls_retriever_name": "static"}),
    }
    for n, content in reversed(list(enumerate(RETRIEVED))):
        attributes[f"retrieval.documents.{n}.document.content"] = content
        attributes[f"retrieval.documents.{n}.document.metadata"] = json.dumps({"n": n})
    with _span(tracer, "turn", {}), _span(tracer, "agent", {"openinference.span.kind": "AGENT"}):
        with _span(tracer, "StaticRetriever", attributes):
            pass


def test_openinference_retriever_documents_in_index_order() -> None:
    _, records = _run(_retriever_under_agent)
    (agent,) = of(records, "trace", "add-span")
    (retrieval,) = entities(records, "retrieval")
    assert retrieval.parent == ("span", agent.data["id"])
    assert retrieval.announced["name"] == "StaticRetriever"
    assert [(r.action, dict(r.data)) for r in retrieval.records if r.action == "update"] == [
        ("update", {"metadata": {"ls_retriever_name": "static"}}),
        ("update", {"input": "capital of France"}),
        ("update", {"docs": RETRIEVED}),
    ]
    assert retrieval.records[-1].action == "end"


@pytest.mark.parametrize("structured", [False, True], ids=["json-text", "structured"])
def test_genai_retrieval_query_and_documents(structured: bool) -> None:
    """The GenAI convention's retrieval: ``gen_ai.retrieval.query.text`` and ``gen_ai.retrieval.documents``
    (``[{id, score}]``, JSON text or structured); a document's ``content``, if it has one, is its text."""
    documents = [{"id": "doc_123", "score": 0.95}, {"id": "doc_456", "score": 0.87, "content": "Paris is the capital."}]
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "retrieval",
        "gen_ai.retrieval.query.text": "capital of France",
        "gen_ai.retrieval.documents": documents if structured else json.dumps(documents),
    }
    for capture in (True, False):
        _, records = _run(
            lambda tracer: tracer.start_span("retrieval", attributes=attributes).end(), capture_content=capture
        )
        (retrieval,) = entities(records, "retrieval")
        updates = [dict(r.data) for r in retrieval.records if r.action == "update"]
        if capture:
            docs = ['{"id": "doc_123", "score": 0.95}', "Paris is the capital."]
            assert updates == [{"input": "capital of France"}, {"docs": docs}]
        else:  # content: neither is sent, not even as metadata
            assert not [line for line in map(str, records) if "capital" in line or "doc_123" in line]


def test_genai_retrieval_attributes_are_content_on_any_span() -> None:
    attributes = {"gen_ai.retrieval.query.text": "secret query", "gen_ai.retrieval.documents": '[{"id": "secret"}]'}
    _, records = _run(lambda tracer: tracer.start_span("lookup", attributes=attributes).end(), capture_content=False)
    assert not [r for r in records if "secret" in str(r.data)]


# --- providers, parameters, errors, tags ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "provider"),
    [
        ("openai", "openai"),
        ("OpenAI", "openai"),
        ("openai.chat", "openai"),  # Vercel AI SDK
        ("openai.responses", "openai"),
        ("anthropic.messages", "anthropic"),
        ("Anthropic", "anthropic"),
        ("azure.ai.openai", "azure"),
        ("az.ai.openai", "azure"),
        ("az.ai.inference", "azure"),
        ("azure-openai.chat", "azure"),
        ("aws.bedrock", "bedrock"),
        ("amazon-bedrock", "bedrock"),
        ("aws", "bedrock"),  # OpenInference llm.provider
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("google.generative-ai", "google"),
        ("google.vertex.chat", "google"),
        ("vertexai", "google"),
        ("groq.chat", "groq"),
        ("together_ai", "together"),
        ("cohere", "cohere"),
        ("fireworks", "fireworks"),
        ("huggingface", "huggingface"),
        ("mistral_ai", "unknown"),
        ("langchain", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (3, "unknown"),
    ],
)
def test_provider_normalisation(value: object, provider: str) -> None:
    assert genai.normalize_provider(value) == provider


@pytest.mark.parametrize(
    ("attributes", "provider"),
    [
        ({"gen_ai.provider.name": "anthropic", "gen_ai.system": "openai"}, "anthropic"),
        ({"gen_ai.system": "gcp.vertex_ai", "llm.provider": "openai"}, "google"),
        ({"llm.provider": "azure", "llm.system": "openai"}, "azure"),
        ({"llm.system": "openai"}, "openai"),
        ({"ai.model.provider": "groq.chat"}, "groq"),
        ({"gen_ai.provider.name": "mistral_ai"}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_provider_attribute_priority(attributes: dict[str, Any], provider: str) -> None:
    def build(tracer: Tracer) -> None:
        with _span(tracer, "llm", {"openinference.span.kind": "LLM", **attributes}):
            pass

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["provider"] == provider


@pytest.mark.usefixtures("standard_json")
def test_model_parameters_encoded_like_maxim_py() -> None:
    """The parameters of maxim-py's captured generation, as maxim-py wrote them (strings as they are, else JSON)."""
    maxim_py = {
        "temperature": "0.2",
        "max_tokens": "100",
        "stop": '["\\n"]',
        "tool_choice": "auto",
        "response_format": '{"type": "json_object"}',
    }

    def build(tracer: Tracer) -> None:
        invocation = {
            "model": "gpt-4o",
            "temperature": 0.2,
            "max_tokens": 100,
            "stop": ["\n"],
            "tool_choice": "auto",
            "response_format": {"type": "json_object"},
            "top_p": None,  # maxim-py drops None
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with _span(
            tracer,
            "openinference",
            {"openinference.span.kind": "LLM", "llm.invocation_parameters": json.dumps(invocation)},
        ):
            pass
        with _span(
            tracer,
            "gen_ai",
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 100,
                "gen_ai.request.stop_sequences": ["\n"],
                "gen_ai.request.seed": 7,
                "gen_ai.request.top_p": 1.0,
                "gen_ai.openai.request.response_format": "json_object",  # openai-v2 before the latest conventions
            },
        ):
            pass

    maxim, records = _run(build)
    from_invocation, from_gen_ai = entities(records, "generation")
    assert list(from_invocation.announced["modelParameters"].items()) == list(maxim_py.items())  # order kept
    assert from_gen_ai.announced["modelParameters"] == {
        "temperature": "0.2",
        "max_tokens": "100",
        "top_p": "1.0",
        "stop": '["\\n"]',
        "seed": "7",
        "response_format": "json_object",
    }
    # Byte for byte as maxim-py's line: "modelParameters": {"temperature": "0.2", "max_tokens": "100", ...
    (line,) = [line for line in maxim.lines() if "add-generation" in line and '"name": "openinference"' in line]
    assert (
        '"modelParameters": {"temperature": "0.2", "max_tokens": "100", "stop": "[\\"\\\\n\\"]", '
        '"tool_choice": "auto", "response_format": "{\\"type\\": \\"json_object\\"}"}' in line
    )


@pytest.mark.parametrize("key", ["gen_ai.tool.call.result", "output.value", "ai.toolCall.result"])
def test_a_tool_that_returned_empty_text_has_that_result(key: str) -> None:
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "clear", key: ""}
    _, records = _run(lambda tracer: tracer.start_span("execute_tool clear", attributes=attributes).end())
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.one("result") == {"result": ""}  # maxim-py: tool_call.result("")


def test_an_empty_tool_result_does_not_hide_one_under_another_name() -> None:
    attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.result": "", "output.value": "42"}
    _, records = _run(lambda tracer: tracer.start_span("execute_tool answer", attributes=attributes).end())
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.one("result") == {"result": "42"}


def test_errors_of_generations_tool_calls_and_spans() -> None:
    def build(tracer: Tracer) -> None:
        with _span(tracer, "turn", {}), _span(tracer, "agent", {}) as agent:
            with _span(
                tracer,
                "chat gpt-4o",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "error.type": "RateLimitError",
                    "http.response.status_code": 429,
                },
            ) as generation:
                generation.set_status(Status(StatusCode.ERROR, "rate limited"))
            with _span(tracer, "execute_tool lookup", {"gen_ai.operation.name": "execute_tool"}) as tool:
                tool.set_attribute("gen_ai.tool.name", "lookup")
                tool.record_exception(LookupError("order 42 not found"))
                tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
            agent.set_status(Status(StatusCode.ERROR, "the agent gave up"))

    _, records = _run(build)
    (agent,) = of(records, "trace", "add-span")
    (generation,) = entities(records, "generation")
    assert generation.parent == ("span", agent.data["id"])
    assert generation.result["error"] == {"message": "rate limited", "code": "429", "type": "RateLimitError"}
    assert "choices" not in generation.result
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.announced["name"] == "lookup"
    assert tool_call.one("error")["error"] == {"message": "order 42 not found", "code": "", "type": "LookupError"}
    assert not tool_call.of("result")
    # Only the plain span's failure is an add-error: the generation and tool call carry theirs.
    errors = [r for r in records if r.action == "add-error"]
    assert [(r.entity, r.id, r.data["message"]) for r in errors] == [("span", agent.data["id"], "the agent gave up")]


def test_a_status_description_that_the_exception_does_not_say_is_the_metadata_of_a_failed_generation() -> None:
    """A generation's or tool call's error is ``{message, code, type}`` (maxim-py's): an exception's message
    is the message, and a status description that says something else is the entity's metadata
    ``otel.status_description``, as it is the error's metadata on a plain span; one that says the same,
    or is the message itself, is not repeated."""

    def build(tracer: Tracer) -> None:
        with _span(tracer, "turn", {}):
            with _span(tracer, "chat gpt-4o", {"gen_ai.operation.name": "chat"}) as generation:
                generation.record_exception(TimeoutError("read timed out"))
                generation.set_status(Status(StatusCode.ERROR, "gave up after 3 retries"))
            with _span(tracer, "execute_tool lookup", {"gen_ai.operation.name": "execute_tool"}) as tool:
                tool.record_exception(LookupError("order 42 not found"))
                tool.set_status(Status(StatusCode.ERROR, "order 42 not found"))
            with _span(tracer, "chat gpt-4o", {"gen_ai.operation.name": "chat"}) as unexplained:
                unexplained.set_status(Status(StatusCode.ERROR, "rate limited"))

    _, records = _run(build)
    explained, unexplained = entities(records, "generation")
    assert explained.result["error"]["message"] == "read timed out"
    assert explained.one("update") == {"metadata": {"otel.status_description": "gave up after 3 retries"}}
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.one("error")["error"]["message"] == "order 42 not found"
    assert not tool_call.of("update")
    assert unexplained.result["error"]["message"] == "rate limited"
    assert not unexplained.of("update")


def test_a_generations_or_tool_calls_error_is_its_last_exception() -> None:
    """Attempts that failed and were retried within the call, then the failure that ended it: the error is
    the last exception, the one the status describes (as on a plain span, whose last error has the status)."""

    def build(tracer: Tracer) -> None:
        for name, operation in (("chat gpt-4o", "chat"), ("execute_tool lookup", "execute_tool")):
            with _span(tracer, name, {"gen_ai.operation.name": operation}) as span:
                span.record_exception(TimeoutError("attempt 1 timed out"))
                span.record_exception(PermissionError("invalid API key"))
                span.set_status(Status(StatusCode.ERROR, "PermissionError: invalid API key"))

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.result["error"] == {"message": "invalid API key", "code": "", "type": "PermissionError"}
    (tool_call,) = entities(records, "tool_call")
    assert tool_call.one("error")["error"] == {"message": "invalid API key", "code": "", "type": "PermissionError"}


def test_a_failed_retrievals_status_description_is_sent_once_in_its_error() -> None:
    """A retrieval's failure is an add-error on its container, which keeps the status description: the
    retrieval itself is not given it as metadata too (that is for generations and tool calls)."""
    attributes = {"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.query.text": "q"}

    def build(tracer: Tracer) -> None:
        with _span(tracer, "turn", {}), _span(tracer, "search", attributes) as search:
            search.record_exception(TimeoutError("vector db timed out"))
            search.set_status(Status(StatusCode.ERROR, "search failed after 3 retries"))

    _, records = _run(build)
    (retrieval,) = entities(records, "retrieval")
    assert not [u for u in retrieval.of("update") if "metadata" in u]
    (error,) = [r for r in records if r.action == "add-error"]
    assert error.data["message"] == "vector db timed out"
    assert error.data["metadata"]["otel.status_description"] == "search failed after 3 retries"


def test_openinference_and_maxim_tags_and_metadata() -> None:
    def build(tracer: Tracer) -> None:
        with _span(
            tracer,
            "llm",
            {
                "openinference.span.kind": "LLM",
                "llm.system": "openai",
                "tag.tags": ["vip", "beta"],
                "metadata": json.dumps({"user_id": "u-1", "plan": {"tier": 2}}),
                "maxim.tags.team": "search",
                "maxim.metadata.release": "r7",
            },
        ):
            pass

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["tags"] == {"team": "search", "vip": "true", "beta": "true"}
    assert generation.one("update") == {"metadata": {"release": "r7", "user_id": "u-1", "plan": '{"tier": 2}'}}


def test_what_a_generation_does_not_read_is_metadata_and_what_it_reads_is_not() -> None:
    """An instrumentation's own attributes that the mapping does not read (the answer's requested
    format, Traceloop's streaming flag, a system fingerprint) are metadata, not dropped; Traceloop's
    association properties and the Vercel AI SDK's telemetry metadata are the application's metadata
    entries; recorded request headers (credentials), the tools offered (as maxim-py, not sent) and
    what the generation reads into itself (its error type, its parameters) are not metadata."""
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.reasoning_effort": "low",
        "gen_ai.openai.request.seed": 7,
        "gen_ai.openai.request.service_tier": "flex",
        "gen_ai.user": "u-1",
        "gen_ai.output.type": "json",
        "llm.is_streaming": False,
        "gen_ai.openai.response.system_fingerprint": "fp_1",
        "gen_ai.tool.definitions": '[{"type": "function", "name": "weather"}]',
        "llm.tools.0.tool.json_schema": '{"type": "function", "name": "weather"}',
        "llm.request.functions.0.name": "weather",
        "traceloop.association.properties.user_id": "u-42",
        "ai.telemetry.metadata.plan": "pro",
        "llm.headers": "{'Authorization': 'Bearer sk-secret'}",
        "gen_ai.headers": "{'X-Api-Key': 'sk-secret'}",
        "ai.request.headers.authorization": "Bearer sk-secret",
        "error.type": "RateLimitError",
    }
    _, records = _run(lambda tracer: tracer.start_span("chat", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.announced["model"] == "gpt-4o-2024-08-06"
    assert generation.announced["modelParameters"] == {
        "temperature": "0.5",
        "seed": "7",
        "reasoning_effort": "low",
        "service_tier": "flex",
        "user": "u-1",
        "model": "gpt-4o",  # asked for; another answered
    }
    assert generation.one("update") == {
        "metadata": {
            "user_id": "u-42",
            "plan": "pro",
            "gen_ai.output.type": "json",
            "llm.is_streaming": "false",
            "gen_ai.openai.response.system_fingerprint": "fp_1",
        }
    }
    assert not any("sk-secret" in json.dumps(r.data) for r in records)


@pytest.mark.parametrize("kind", ["generation", "plain span"])
def test_content_under_keys_the_mapping_does_not_read_is_never_metadata(kind: str) -> None:
    """What an instrumentation's own keys hold of prompts and answers (OpenInference's completions API,
    images, documents, a reranker's; the Vercel AI SDK's older ai.result.* and reasoning) stays out of
    every record with capture_content=False, though unread keys are metadata."""
    secret = "SECRET-about-my-diagnosis"
    content = {
        "llm.prompts": json.dumps([secret]),
        "llm.prompts.0.prompt.text": secret,
        "llm.choices.0.completion.text": secret,
        "llm.function_call": json.dumps({"name": "f", "arguments": secret}),
        "input.images.0.image.url": "data:image/png;base64," + secret,
        "output.documents.0.document.content": secret,
        "reranker.query": secret,
        "reranker.input_documents.0.document.content": secret,
        "ai.result.text": secret,
        "ai.response.reasoning": secret,
        "ai.values": (secret,),
    }
    attributes: dict[str, Any] = {**content, "llm.is_streaming": False}
    if kind == "generation":
        attributes["openinference.span.kind"] = "LLM"
    _, records = _run(lambda tracer: tracer.start_span("call", attributes=attributes).end(), capture_content=False)
    assert not [r for r in records if secret in json.dumps(r.data)]
    (update,) = [r for r in records if r.action == "update" and "metadata" in r.data]
    assert update.data["metadata"] == {"llm.is_streaming": "false"}  # what the span holds besides content


def test_a_streamed_answer_keeps_one_chunk_event_and_openinference_reads_the_response_body() -> None:
    """Traceloop's event per streamed chunk: only the first stays (when the first token came).
    OpenInference keeps what it has no attribute for in ``output.value``: every choice's finish
    reason, the response's creation time, and (LangChain, streamed) the model that answered."""
    body = {
        "id": "chatcmpl-9",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "a"}},
            {"index": 1, "finish_reason": "length", "message": {"role": "assistant", "content": "b"}},
        ],
    }
    lc_result = {
        "generations": [
            [
                {
                    "text": "c",
                    "generation_info": {"finish_reason": "stop"},
                    "message": {"kwargs": {"response_metadata": {"model_name": "gpt-4o-mini-2024-07-18"}}},
                }
            ]
        ],
        "llm_output": None,
    }

    def build(tracer: Tracer) -> None:
        streamed = tracer.start_span("openai.chat", attributes={"llm.request.type": "chat", "gen_ai.system": "openai"})
        for _ in range(5):
            streamed.add_event("gen_ai.content.completion.chunk")
        streamed.end()
        openinference = {"openinference.span.kind": "LLM", "output.mime_type": "application/json"}
        tracer.start_span(
            "ChatCompletion",
            attributes={
                **openinference,
                "llm.model_name": "gpt-4o-mini-2024-07-18",
                "llm.finish_reason": "stop",
                "output.value": json.dumps(body),
                **{f"llm.output_messages.{i}.message.role": "assistant" for i in (0, 1)},
                **{f"llm.output_messages.{i}.message.content": text for i, text in enumerate("ab")},
            },
        ).end()
        tracer.start_span(
            "ChatOpenAI",
            attributes={
                **openinference,
                "llm.model_name": "gpt-4o-mini",  # what it names for a streamed call: the model asked for
                "output.value": json.dumps(lc_result),
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "c",
            },
        ).end()

    _, records = _run(build)
    streamed, completion, langchain = entities(records, "generation")
    chunks = [r for r in records if r.action == "add-event"]
    assert [r.data["name"] for r in chunks] == ["gen_ai.content.completion.chunk"]
    assert [(c["index"], c.get("finish_reason")) for c in completion.result["choices"]] == [(0, "stop"), (1, "length")]
    assert (completion.result["id"], completion.result["created"]) == ("chatcmpl-9", 1_700_000_000)
    assert langchain.announced["model"] == langchain.result["model"] == "gpt-4o-mini-2024-07-18"
    assert langchain.result["choices"][0]["finish_reason"] == "stop"
    assert not streamed.of("result")  # it had no answer to read


def test_openinference_completions_api_calls_have_their_prompts_and_answers() -> None:
    """A completions API call (``client.completions.create``; a LangChain LLM that is not a chat model):
    OpenInference writes ``llm.prompts`` and ``llm.choices``, not messages (values as
    openinference-instrumentation-openai 0.1.66 and -langchain 0.1.80 wrote them)."""
    completion = {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.model_name": "gpt-3.5-turbo-instruct",
        "llm.prompts.0.prompt.text": "Say hi",
        "llm.choices.0.completion.text": "hi",
        "llm.finish_reason": "stop",
        "llm.token_count.prompt": 5,
        "llm.token_count.completion": 5,
        "llm.token_count.total": 10,
        "output.mime_type": "application/json",
        "output.value": json.dumps({"id": "cmpl-1", "created": 1_700_000_000, "choices": [{"text": "hi", "index": 0}]}),
    }
    plain_llm = {
        "openinference.span.kind": "LLM",
        "llm.prompts": ("Say bye",),
        "output.mime_type": "application/json",
        "output.value": json.dumps({"generations": [[{"text": "bye", "generation_info": None}]], "llm_output": None}),
    }

    def build(tracer: Tracer) -> None:
        with _span(tracer, "turn", {}):
            tracer.start_span("Completion", attributes=completion).end()
            tracer.start_span("FakeListLLM", attributes=plain_llm).end()

    _, records = _run(build)
    asked, plain = entities(records, "generation")
    assert asked.announced["messages"] == [{"role": "user", "content": "Say hi"}]
    assert asked.result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ]
    assert (asked.result["id"], asked.result["created"]) == ("cmpl-1", 1_700_000_000)
    assert plain.announced["messages"] == [{"role": "user", "content": "Say bye"}]
    assert plain.result["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "bye"}}]


def test_a_tool_result_given_as_content_parts_is_their_text() -> None:
    """A tool message whose content is OpenAI's content parts, as openai-v2 and Traceloop write it in
    ``gen_ai.input.messages``: the result is the text, as maxim-py reads such a message."""
    asked = [
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": [{"type": "text", "text": "18 degrees"}]}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c2", "response": [1, 2]}]},
    ]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(asked)}
    _, records = _run(lambda tracer: tracer.start_span("chat", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [
        {"role": "tool", "content": "18 degrees", "tool_call_id": "c1"},
        {"role": "tool", "content": "[1, 2]", "tool_call_id": "c2"},  # not content parts: the JSON as it is
    ]


def test_genai_messages_in_openais_shape_keep_their_tool_calls_and_ids() -> None:
    """Messages without ``parts`` (OpenAI's shape, as some write ``gen_ai.*.messages``): their tool
    calls and the ids of their results are kept, and a missing content is not the text "null"."""
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
    asked = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]
    answer = [{"role": "assistant", "finish_reason": "tool_calls", "tool_calls": [{**call, "id": "c2"}]}]
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps(asked),
        "gen_ai.output.messages": json.dumps(answer),
    }
    _, records = _run(lambda tracer: tracer.start_span("chat", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},  # as a parts message with calls only
        {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
    ]
    assert generation.result["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "tool_calls": [{**call, "id": "c2"}]},
            "finish_reason": "tool_calls",
        }
    ]


@pytest.mark.parametrize("kind", ["plain span", "generation"])
def test_attributes_with_openinferences_names_but_not_its_shapes_are_plain_metadata(kind: str) -> None:
    """An application's own ``metadata`` text and a ``tag.tags`` string are not OpenInference's
    JSON object and list: they stay metadata under their names, as any other attribute."""
    attributes: dict[str, Any] = {"metadata": "v2-rollout", "tag.tags": "beta", "other": "kept"}
    if kind == "generation":
        attributes["gen_ai.operation.name"] = "chat"
    _, records = _run(lambda tracer: tracer.start_span("work", attributes=attributes).end())
    (update,) = [r for r in records if r.action == "update" and "metadata" in r.data]
    assert update.data["metadata"] == {"metadata": "v2-rollout", "tag.tags": "beta", "other": "kept"}
    assert all(not r.data.get("tags") for r in records)


@pytest.mark.parametrize(
    ("attributes", "details"),
    [
        pytest.param(
            {"gen_ai.usage.cache_read.input_tokens": 64, "gen_ai.usage.reasoning.output_tokens": 5},
            {"prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 5}},
            id="genai",
        ),
        pytest.param(
            {"llm.token_count.prompt_details.cache_read": 64, "llm.token_count.completion_details.reasoning": 5},
            {"prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 5}},
            id="openinference",
        ),
        pytest.param({"ai.usage.cachedInputTokens": 64}, {"prompt_tokens_details": {"cached_tokens": 64}}, id="vercel"),
        pytest.param(
            {"gen_ai.usage.reasoning_tokens": "5"}, {"completion_tokens_details": {"reasoning_tokens": 5}}, id="text"
        ),
        pytest.param({"gen_ai.usage.cache_read.input_tokens": "many"}, {}, id="not-a-count"),
        pytest.param({"gen_ai.usage.reasoning.output_tokens": -5}, {}, id="negative"),
    ],
)
def test_cached_and_reasoning_tokens_are_the_usages_details_as_openai_writes_them(
    attributes: dict[str, Any], details: dict[str, Any]
) -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 20,
        **attributes,
    }
    _, records = _run(lambda tracer: tracer.start_span("chat", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.result["usage"] == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, **details}


def test_a_negative_token_count_is_no_count() -> None:
    """An instrumentation's bug (a subtraction below zero): the count is left out, not sent, nor summed."""
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -3, "gen_ai.usage.output_tokens": 10}
    _, records = _run(lambda tracer: tracer.start_span("chat", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.result["usage"] == {"prompt_tokens": 0, "completion_tokens": 10, "total_tokens": 10}


# --- the trace's input and output ------------------------------------------------------------------


def _generation_under(tracer: Tracer, root_attributes: dict[str, Any]) -> None:
    with _span(tracer, "turn", root_attributes):
        with _span(
            tracer,
            "llm",
            {
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "be nice",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "first question",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "first answer",
            },
        ):
            pass
        with _span(
            tracer,
            "llm",
            {
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "second question",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "second answer",
            },
        ):
            pass


@pytest.mark.parametrize(
    ("root_attributes", "expected"),
    [
        ({}, ("first question", "second answer")),
        ({"input.value": "oi in", "output.value": "oi out"}, ("oi in", "oi out")),
        ({"maxim.input": "maxim in", "maxim.output": "maxim out"}, ("maxim in", "maxim out")),
        ({"maxim.input": "maxim in", "input.value": "oi in", "output.value": "oi out"}, ("maxim in", "oi out")),
        ({"input.value": "oi in"}, ("oi in", "second answer")),
    ],
)
def test_trace_input_and_output(root_attributes: dict[str, Any], expected: tuple[str, str]) -> None:
    _, records = _run(lambda tracer: _generation_under(tracer, root_attributes))
    (trace_create,) = trace_creates(records)
    assert (trace_create.data["input"], trace_output(records, trace_create.id)) == expected
    assert not [r for r in records if r.entity == "trace" and r.action == "update" and "input" in r.data]


def test_a_traces_output_is_the_first_choice_of_its_last_answer_as_maxim_py_takes_it() -> None:
    """n=2 (two choices): maxim-py sets the trace's output from ``choices[0]``; a tool-call choice has no text."""
    choices = [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "look", "arguments": {}}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "first choice"}]},
        {"role": "assistant", "parts": [{"type": "text", "content": "second choice"}]},
    ]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.output.messages": json.dumps(choices)}

    def build(tracer: Tracer) -> None:
        with _span(tracer, "turn", {}):
            tracer.start_span("chat", attributes=attributes).end()

    _, records = _run(build)
    (trace_create,) = trace_creates(records)
    assert trace_output(records, trace_create.id) == "first choice"


# --- content switched off --------------------------------------------------------------------------


def _content_in_events(tracer: Tracer) -> None:
    """Content in span events that are not read as messages: on an agent span, and beside
    ``gen_ai.input.messages``/``gen_ai.output.messages`` (which win over any message event)."""
    with _span(tracer, "invoke_agent support", {"gen_ai.operation.name": "invoke_agent"}) as agent:
        agent.add_event("gen_ai.user.message", {"content": "agent secret", "gen_ai.system": "openai"})
        agent.add_event("gen_ai.choice", {"index": 0, "message": '{"content": "choice secret"}'})
        agent.add_event("gen_ai.tool.message", {"gen_ai.event.content": '{"content": "azure secret"}'})
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "question"}]}])
        answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "answer secret"}]}])
        chat_attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": messages}
        with _span(tracer, "chat", {**chat_attributes, "gen_ai.output.messages": answer}) as chat:
            chat.add_event(
                "gen_ai.assistant.message", {"tool_calls": '[{"id": "c", "function": {"name": "tool secret"}}]'}
            )
            chat.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "prompt secret"})
            chat.add_event("gen_ai.content.completion", {"gen_ai.completion": "completion secret"})
            chat.add_event("audit", {"input.value": "input secret", "message": "an application's own message"})


SCENARIOS: dict[str, tuple[Build, tuple[str, ...]]] = {
    "vercel": (_vercel_generate_text, (VERCEL_SYSTEM, VERCEL_QUESTION, VERCEL_ANSWER, "Paris", "celsius")),
    "traceloop-0.54": (_traceloop_054_agent, ("Use tools when helpful.", "weather in Paris", "sunny")),
    "events": (_older_events_chat, ("be nice", "Where is my order?", "which order?")),
    "semantic-kernel": (
        _semantic_kernel_chat,
        ("be nice", "order 7", "shipped", "arrive", "Tomorrow", "Say hi", "Hi there"),
    ),
    "retriever": (_retriever_under_agent, ("capital of France", "document number")),
    "content-in-events": (
        _content_in_events,
        ("secret", "question"),
    ),
    "strands": (_strands_agent, (STRANDS_SYSTEM_PROMPT, STRANDS_QUESTION, STRANDS_TOOL_OUTPUT, STRANDS_ANSWER)),
    "roots": (
        lambda tracer: _generation_under(tracer, {"maxim.input": "maxim in", "output.value": "oi out"}),
        ("be nice", "question", "answer", "maxim in", "oi out"),
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_capture_content_off_for_hand_built_conventions(scenario: str) -> None:
    build, secrets = SCENARIOS[scenario]
    maxim, records = _run(build, capture_content=False)
    lines = maxim.lines()
    for secret in secrets:
        leaks = [line for line in lines if secret in line]
        assert not leaks, f"{secret!r} leaked into {len(leaks)} records, first: {leaks[0][:300]}"
    assert all(g.announced["messages"] == [] for g in entities(records, "generation"))
    for tool_call in entities(records, "tool_call"):
        assert "args" not in tool_call.announced and not tool_call.of("result")
    for retrieval in entities(records, "retrieval"):
        assert not [u for u in retrieval.of("update") if "input" in u or "docs" in u]
    (trace_create,) = trace_creates(records)
    assert "input" not in trace_create.data and trace_output(records, trace_create.id) is None
    if scenario == "content-in-events":  # the events themselves stay, with what is not content
        events = [r.data for r in records if r.action == "add-event"]
        assert [e["name"] for e in events] == [
            "gen_ai.user.message",
            "gen_ai.choice",
            "gen_ai.tool.message",
            "gen_ai.assistant.message",
            "gen_ai.content.prompt",
            "gen_ai.content.completion",
            "audit",
        ]
        assert events[0]["metadata"] == {"gen_ai.system": "openai"}
        assert events[1]["metadata"] == {"index": "0"}
        assert events[-1]["metadata"] == {"message": "an application's own message", "maxim.entity": ANY}


# --- tool results ----------------------------------------------------------------------------------

_PARALLEL_RESULTS_EXPECTED = [
    {"role": "tool", "content": "12C", "tool_call_id": "call_paris"},
    {"role": "tool", "content": "20C", "tool_call_id": "call_rome"},
    {"role": "tool", "content": "ok", "tool_call_id": "call_x"},
    {"role": "user", "content": "and now summarise please"},
]


@pytest.mark.parametrize("convention", ["genai-parts", "vercel"])
def test_each_tool_result_is_a_tool_message_with_its_own_call_id(convention: str) -> None:
    """Parallel tool calls answered in one message, and a user message of results then text
    (Anthropic's shape): one tool message per result, then the text, nothing glued or lost."""
    if convention == "genai-parts":
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "tool",
                        "parts": [
                            {"type": "tool_call_response", "id": "call_paris", "response": "12C"},
                            {"type": "tool_call_response", "id": "call_rome", "response": "20C"},
                        ],
                    },
                    {
                        "role": "user",
                        "parts": [
                            {"type": "tool_call_response", "id": "call_x", "response": "ok"},
                            {"type": "text", "content": "and now summarise please"},
                        ],
                    },
                ]
            ),
        }
    else:
        attributes = {
            "ai.operationId": "ai.generateText.doGenerate",
            "ai.prompt.messages": json.dumps(
                [
                    {
                        "role": "tool",
                        "content": [
                            {"type": "tool-result", "toolCallId": "call_paris", "result": "12C"},
                            {
                                "type": "tool-result",
                                "toolCallId": "call_rome",
                                "output": {"type": "text", "value": "20C"},
                            },
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool-result", "toolCallId": "call_x", "result": "ok"},
                            {"type": "text", "text": "and now summarise please"},
                        ],
                    },
                ]
            ),
        }

    def build(tracer: Tracer) -> None:
        with _span(tracer, "llm", attributes):
            pass

    _, records = _run(build)
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == _PARALLEL_RESULTS_EXPECTED


# --- files in messages: images and the like become attachments ------------------------------------

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgAAIAAAUAAeIhvDMAAAAASUVORK5CYII="
URL = "https://example.com/cat.png"
DATA_URL = f"data:image/png;base64,{PNG_B64}"
BY_URL = {"type": "url", "url": URL}
INLINE_PNG = {"type": "file_data", "data": PNG_B64, "mime_type": "image/png"}


def _openai_content(parts: list[dict[str, Any]]) -> str:
    return json.dumps([{"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]}])


@pytest.mark.parametrize(
    ("attributes", "files", "content"),
    [
        pytest.param(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.input.messages": json.dumps(
                    [
                        {
                            "role": "user",
                            "parts": [
                                {"type": "text", "content": "What is this?"},
                                {"type": "uri", "modality": "image", "uri": URL},
                                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64},
                                {"type": "uri", "modality": "image", "uri": DATA_URL},
                                {"type": "file", "modality": "image", "file_id": "file-abc"},  # nothing to fetch
                            ],
                        }
                    ]
                ),
            },
            [BY_URL, INLINE_PNG, INLINE_PNG],
            "What is this?\n[file:file-abc]",  # a file only the provider holds: named in the text
            id="genai-parts",
        ),
        pytest.param(  # OpenInference: the contents of a message, flattened
            {
                "openinference.span.kind": "LLM",
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.contents.0.message_content.type": "text",
                "llm.input_messages.0.message.contents.0.message_content.text": "What is this?",
                "llm.input_messages.0.message.contents.1.message_content.type": "image",
                "llm.input_messages.0.message.contents.1.message_content.image.image.url": URL,
                "llm.input_messages.0.message.contents.2.message_content.type": "image",
                "llm.input_messages.0.message.contents.2.message_content.image.image.url": DATA_URL,
            },
            [BY_URL, INLINE_PNG],
            "What is this?",
            id="openinference",
        ),
        pytest.param(  # Traceloop: OpenAI's content parts as JSON text
            {
                "llm.request.type": "chat",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": json.dumps(
                    [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": URL, "detail": "low"}},
                        {"type": "input_image", "image_url": DATA_URL},
                    ]
                ),
            },
            [BY_URL, INLINE_PNG],
            "What is this?",
            id="traceloop-openai-parts",
        ),
        pytest.param(  # the Vercel AI SDK: an image by URL and inline, a PDF inline
            {
                "ai.operationId": "ai.generateText.doGenerate",
                "ai.prompt.messages": _openai_content(
                    [
                        {"type": "image", "image": URL},
                        {"type": "image", "image": PNG_B64, "mimeType": "image/png"},
                        {"type": "file", "data": "JVBERi0xLjQK", "mediaType": "application/pdf"},
                    ]
                ),
            },
            [BY_URL, INLINE_PNG, {"type": "file_data", "data": "JVBERi0xLjQK", "mime_type": "application/pdf"}],
            "What is this?",
            id="vercel",
        ),
        pytest.param(  # OpenAI's messages in the gen_ai.content.prompt event: Anthropic's and OpenAI's file shapes
            {
                "gen_ai.system": "anthropic",
                "llm.request.type": "chat",
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": json.dumps(
                    [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
                        {"type": "image", "source": {"type": "url", "url": URL}},
                        {"type": "file", "file": {"file_data": DATA_URL, "filename": "cat.png"}},
                        {"type": "file", "file": {"file_id": "file-abc"}},  # nothing to fetch
                    ]
                ),
            },
            [INLINE_PNG, BY_URL, INLINE_PNG],
            "What is this?\n[file:file-abc]",
            id="anthropic-and-openai-files",
        ),
    ],
)
def test_files_in_a_generations_messages_become_attachments_and_leave_its_text(
    attributes: dict[str, Any], files: list[dict[str, str]], content: str
) -> None:
    maxim, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    uploads = of(records, "generation", "upload-attachment")
    assert [r.id for r in uploads] == [generation.id] * len(files)
    expected = [{"id": f"{generation.id}-a{n}", **file, "tags": {"attach-to": "input"}} for n, file in enumerate(files)]
    assert [r.data for r in uploads] == expected
    (announce,) = [r for r in records if r.action == "add-generation"]
    assert announce.data["messages"][0]["content"] == content  # the text alone, no base64 in it
    # Each upload comes right after the generation is announced, before anything else about it.
    at = records.index(announce)
    assert records[at + 1 : at + 1 + len(files)] == uploads


@pytest.mark.parametrize(
    ("url", "file"),
    [
        pytest.param(DATA_URL, INLINE_PNG, id="base64"),
        pytest.param(f"data:image/png;name=cat.png;base64,{PNG_B64}", INLINE_PNG, id="base64-with-parameters"),
        pytest.param(  # percent-encoded text, as RFC 2397 writes a data URL without ";base64": sent as base64
            "data:image/svg+xml;charset=utf-8,%3Csvg%20xmlns%3D%22http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%22%2F%3E",
            {
                "type": "file_data",
                "data": base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg"/>').decode(),
                "mime_type": "image/svg+xml",
            },
            id="percent-encoded",
        ),
        pytest.param(  # no type: text/plain, as RFC 2397 has it
            "data:,caf%C3%A9",
            {"type": "file_data", "data": base64.b64encode("café".encode()).decode(), "mime_type": "text/plain"},
            id="no-type",
        ),
        pytest.param(  # base64 of no named type: left for the sink to tell from the file's first bytes
            f"data:;base64,{PNG_B64}",
            {"type": "file_data", "data": PNG_B64, "mime_type": "application/octet-stream"},
            id="base64-no-type",
        ),
        pytest.param(f"DATA:Image/PNG;BASE64,{PNG_B64}", INLINE_PNG, id="any-case"),  # RFC 2397 is case-insensitive
        pytest.param(  # base64 whose "=" (as "+" and "/") the URL percent-encodes
            "data:image/png;base64," + PNG_B64.replace("=", "%3D"), INLINE_PNG, id="base64-escaped"
        ),
        pytest.param("data:;base64,", None, id="empty"),
        pytest.param("data:image/png;base64", None, id="no-comma"),
        pytest.param("data:Jane Doe's scan", None, id="not-a-data-url"),
    ],
)
def test_every_form_of_data_url_is_a_file_or_left_out_with_a_warning(
    url: str, file: dict[str, str] | None, caplog: pytest.LogCaptureFixture
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, _image(url)]}]
    attributes = {"ai.operationId": "ai.generateText.doGenerate", "ai.prompt.messages": json.dumps(messages)}
    with caplog.at_level(logging.WARNING, logger="otel_maxim"):
        _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    uploads = [r.data for r in of(records, "generation", "upload-attachment")]
    if file is None:
        assert uploads == []
        assert "Leaving out of a generation's attachments a data: URL" in caplog.text
        assert url[5:] not in caplog.text  # what it holds is content: not for the log
    else:
        assert uploads == [{"id": f"{generation.id}-a0", **file, "tags": {"attach-to": "input"}}]
        assert "Leaving out" not in caplog.text
    assert generation.announced["messages"] == [{"role": "user", "content": "What is this?"}]


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize(
    ("attributes", "files"),
    [
        pytest.param(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.output.messages": json.dumps(
                    [
                        {
                            "role": "assistant",
                            "parts": [
                                {"type": "text", "content": "Here is your cat."},
                                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": PNG_B64},
                                {"type": "uri", "modality": "image", "uri": URL},
                            ],
                            "finish_reason": "stop",
                        }
                    ]
                ),
            },
            [INLINE_PNG, BY_URL],
            id="genai-parts",
        ),
        pytest.param(
            {
                "openinference.span.kind": "LLM",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.contents.0.message_content.type": "text",
                "llm.output_messages.0.message.contents.0.message_content.text": "Here is your cat.",
                "llm.output_messages.0.message.contents.1.message_content.type": "image",
                "llm.output_messages.0.message.contents.1.message_content.image.image.url": DATA_URL,
            },
            [INLINE_PNG],
            id="openinference",
        ),
        pytest.param(
            {
                "llm.request.type": "chat",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": json.dumps(
                    [{"type": "text", "text": "Here is your cat."}, {"type": "image_url", "image_url": {"url": URL}}]
                ),
            },
            [BY_URL],
            id="traceloop-openai-parts",
        ),
    ],
)
def test_files_in_a_generations_answer_become_output_attachments(
    attributes: dict[str, Any], files: list[dict[str, str]]
) -> None:
    maxim, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    uploads = of(records, "generation", "upload-attachment")
    tags = {"attach-to": "output"}
    expected = [{"id": f"{generation.id}-o{n}", **file, "tags": tags} for n, file in enumerate(files)]
    assert [r.data for r in uploads] == expected
    (result,) = of(records, "generation", "result")
    assert result.data["result"]["choices"][0]["message"]["content"] == "Here is your cat."  # no file in the text
    # After the result, before the end.
    at = records.index(result)
    assert records[at + 1 : at + 1 + len(files)] == uploads
    assert records[at + 1 + len(files)].action == "end"


@pytest.mark.parametrize(
    ("part", "reference"),
    [
        pytest.param({"type": "file", "file": {"file_id": "file-abc"}}, "[file:file-abc]", id="chat-file"),
        pytest.param(  # maxim-py names such a file by its filename first
            {"type": "file", "file": {"file_id": "file-abc", "filename": "report.pdf"}},
            "[file:report.pdf]",
            id="chat-file-named",
        ),
        pytest.param({"type": "input_file", "file_id": "file-abc"}, "[file:file-abc]", id="responses-file"),
        pytest.param({"type": "input_image", "file_id": "file-img"}, "[file:file-img]", id="responses-image"),
        pytest.param(  # Anthropic's files API
            {"type": "image", "source": {"type": "file", "file_id": "file_011"}},
            "[file:file_011]",
            id="anthropic-image",
        ),
        pytest.param({"type": "input_image"}, None, id="nothing-to-name"),  # no id, no URL: nothing at all
    ],
)
def test_a_file_known_only_by_the_providers_id_is_named_in_the_text(
    part: dict[str, Any], reference: str | None
) -> None:
    attributes = {"llm.request.type": "chat", "gen_ai.prompt.0.role": "user"}
    attributes["gen_ai.prompt.0.content"] = json.dumps([{"type": "text", "text": "Summarize this."}, part])
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    text = "Summarize this." if reference is None else f"Summarize this.\n{reference}"
    assert generation.announced["messages"] == [{"role": "user", "content": text}]
    assert not of(records, "generation", "upload-attachment")  # nothing to upload


def test_a_file_in_a_models_answer_known_only_by_its_id_is_named_in_the_text() -> None:
    output = [
        {"role": "assistant", "parts": [{"type": "text", "content": "Done:"}, {"type": "file", "file_id": "file-out"}]}
    ]
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.output.messages": json.dumps(output)}
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (result,) = of(records, "generation", "result")
    assert result.data["result"]["choices"][0]["message"]["content"] == "Done:\n[file:file-out]"


def test_messages_held_as_tuples_and_dicts_are_read_as_their_json_text_whatever_the_sdk() -> None:
    """SDK 1.4x holds a structured attribute as tuples and dicts (a blob's content as bytes): made here by
    hand, so that SDK 1.27, which drops such values, reads them too."""
    context = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))
    text = {"type": "text", "content": "What is this?"}
    blob = {"type": "blob", "modality": "image", "mime_type": "image/png", "content": base64.b64decode(PNG_B64)}
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": ({"role": "user", "parts": (text, blob)},)}
    span = ReadableSpan("chat", context=context, attributes=attributes, start_time=1, end_time=2)
    records = exported([span]).records()
    (announce,) = [r for r in records if r.action == "add-generation"]
    assert announce.data["messages"] == [{"role": "user", "content": "What is this?"}]
    (upload,) = [r for r in records if r.action == "upload-attachment"]
    assert (upload.data["data"], upload.data["mime_type"]) == (PNG_B64, "image/png")  # the bytes, as base64


def test_files_are_content_and_so_not_sent_without_it() -> None:
    attributes = {"llm.request.type": "chat", "gen_ai.prompt.0.role": "user"}
    attributes["gen_ai.prompt.0.content"] = json.dumps([{"type": "image_url", "image_url": {"url": URL}}])
    attributes["gen_ai.completion.0.role"] = "assistant"
    attributes["gen_ai.completion.0.content"] = json.dumps([{"type": "image_url", "image_url": {"url": URL}}])
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end(), capture_content=False)
    assert entities(records, "generation")
    assert not of(records, "generation", "upload-attachment")


@pytest.mark.parametrize(
    "content",
    ['[{"note": "a list of objects, but not content parts"}]', "[{not json", '[{"type": "text"}] and more'],
)
def test_text_that_only_looks_like_content_parts_is_kept_as_it_is(content: str) -> None:
    attributes = {"llm.request.type": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": content}
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (announce,) = [r for r in records if r.action == "add-generation"]
    assert announce.data["messages"] == [{"role": "user", "content": content}]


def test_content_parts_other_than_text_and_files_keep_their_json() -> None:
    """Traceloop's Anthropic instrumentation writes tool_use and tool_result blocks as JSON text: their
    text alone would be empty, so the message keeps the JSON, as before files were read."""
    tool_result = json.dumps([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "72F and sunny"}])
    attributes = {"llm.request.type": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": tool_result}
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (announce,) = [r for r in records if r.action == "add-generation"]
    assert announce.data["messages"] == [{"role": "user", "content": tool_result}]


def test_a_content_part_with_an_odd_type_costs_nothing_of_the_generation() -> None:
    messages = [{"role": "user", "content": [{"type": ["image_url"], "text": "hi"}, {"type": {"a": 1}}]}]
    attributes = {"ai.operationId": "ai.generateText.doGenerate", "ai.prompt.messages": json.dumps(messages)}
    _, records = _run(lambda tracer: tracer.start_span("llm", attributes=attributes).end())
    (generation,) = entities(records, "generation")
    assert generation.announced["messages"] == [{"role": "user", "content": "hi"}]
    assert not of(records, "generation", "upload-attachment")
