"""LLM spans -> Maxim generations, tool calls and retrievals, from the conventions instrumentations emit.

Which entity a span becomes, in priority order (the first convention that speaks decides):

1. OTel GenAI ``gen_ai.operation.name``: ``chat``, ``text_completion``, ``generate_content``
   (and Semantic Kernel's earlier ``chat.completions``, ``text.completions``) -> generation;
   ``execute_tool`` -> tool call; ``vector_db_retrieve``/``retrieval`` -> retrieval;
   anything else (``embeddings``, ``invoke_agent``, ``create_agent``, ``execute_task``) -> span.
2. OpenInference ``openinference.span.kind``: ``LLM`` -> generation, ``TOOL`` -> tool call,
   ``RETRIEVER`` -> retrieval, others (``CHAIN``, ``AGENT``, ``EMBEDDING``, ...) -> span.
3. Vercel AI SDK ``ai.operationId``: ``ai.*.doGenerate``/``ai.*.doStream`` -> generation,
   ``ai.toolCall`` -> tool call, other ``ai.*`` -> span.
4. Traceloop/OpenLLMetry: ``llm.request.type`` or ``gen_ai.prompt.N.*``/``gen_ai.completion.N.*``
   -> generation; ``traceloop.span.kind = tool`` -> tool call.
5. Anything else -> span.

Pure functions of one span's attributes and events: no I/O, no state (a rate-limited log aside).
An attribute shape that no reader here foresaw costs the span its GenAI reading, not its
trace: :func:`describe` logs it and reads the span as a plain span (its convention
attributes become metadata).
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote, unquote_to_bytes

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status, StatusCode

from otel_maxim._log import RateLimitedLog
from otel_maxim.mapping._common import (
    Attributes,
    PerKeySet,
    as_text,
    attributes_of,
    events_of,
    first,
    json_text,
    parse_json,
    span_hex,
    text,
)

_limited = RateLimitedLog(logging.getLogger(__name__))

GENERATION = "generation"
TOOL_CALL = "tool_call"
RETRIEVAL = "retrieval"
SPAN = "span"

_GENAI_OPS = {
    "chat": GENERATION,
    "text_completion": GENERATION,
    "generate_content": GENERATION,
    "llm_request": GENERATION,  # Traceloop <= 0.54
    "chat.completions": GENERATION,  # Semantic Kernel before the conventions' names
    "text.completions": GENERATION,
    "execute_tool": TOOL_CALL,
    "vector_db_retrieve": RETRIEVAL,  # Traceloop
    "retrieval": RETRIEVAL,
}
_OPENINFERENCE_KINDS = {"LLM": GENERATION, "TOOL": TOOL_CALL, "RETRIEVER": RETRIEVAL}
_VERCEL_GENERATION = re.compile(r"ai\.\w+\.(doGenerate|doStream)")
_CLASS_REPR = re.compile(r"<class '([^']+)'>")

#: Maxim's providers; anything else is ``unknown``.
PROVIDERS = frozenset(
    {
        "openai",
        "azure",
        "anthropic",
        "huggingface",
        "together",
        "google",
        "groq",
        "bedrock",
        "cohere",
        "fireworks",
        "elevenlabs",
    }
)
_PROVIDER_ALIASES = {
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",  # azure-ai-inference tracing
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "aws.bedrock": "bedrock",
    "amazon-bedrock": "bedrock",  # Vercel AI SDK
    "aws": "bedrock",  # OpenInference llm.provider
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "google.generative-ai": "google",
    "together_ai": "together",
    "togetherai": "together",
    "hf": "huggingface",
    "fireworks_ai": "fireworks",
}

#: Where each convention keeps a generation's model (the response's first), its provider and its response id.
_MODEL_KEYS = ("gen_ai.response.model", "llm.model_name", "ai.response.model", "gen_ai.request.model", "ai.model.id")
_REQUEST_MODEL_KEYS = ("gen_ai.request.model", "ai.model.id")
_PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
_RESPONSE_ID_KEYS = ("gen_ai.response.id", "ai.response.id")

#: Model parameters: attribute -> Maxim's ``modelParameters`` key.
_PARAMETERS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.seed": "seed",
    "gen_ai.request.choice.count": "n",
    "ai.settings.temperature": "temperature",
    "ai.settings.maxTokens": "max_tokens",
    "ai.settings.maxOutputTokens": "max_tokens",
    "ai.settings.topP": "top_p",
    "ai.settings.topK": "top_k",
    "ai.settings.frequencyPenalty": "frequency_penalty",
    "ai.settings.presencePenalty": "presence_penalty",
    "ai.settings.stopSequences": "stop",
    "ai.settings.seed": "seed",
    # What maxim-py's OpenAI wrapper sends too (it sends the request's own arguments).
    "gen_ai.openai.request.seed": "seed",  # the conventions before 1.30
    "gen_ai.openai.request.response_format": "response_format",  # its type: "json_object", "json_schema", ...
    "gen_ai.request.reasoning_effort": "reasoning_effort",  # Traceloop
    "gen_ai.openai.request.service_tier": "service_tier",
    "openai.request.service_tier": "service_tier",
    "gen_ai.user": "user",  # Traceloop
}
#: Keys of OpenInference's ``llm.invocation_parameters`` that are not parameters.
_NOT_PARAMETERS = frozenset(
    {"model", "model_name", "messages", "tools", "functions", "stream", "stream_options", "_type"}
)

_USAGE_PROMPT = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    "gen_ai.response.prompt_tokens",  # Semantic Kernel before the usage attributes
)
_USAGE_COMPLETION = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
    "gen_ai.response.completion_tokens",
)
_USAGE_TOTAL = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total", "ai.usage.totalTokens")
#: Input tokens read from the provider's cache: OpenAI's ``prompt_tokens_details.cached_tokens``.
_USAGE_CACHED = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",  # Traceloop
    "llm.token_count.prompt_details.cache_read",  # OpenInference
    "ai.usage.cachedInputTokens",  # the Vercel AI SDK
)
#: Output tokens spent reasoning: OpenAI's ``completion_tokens_details.reasoning_tokens``.
_USAGE_REASONING = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",  # Traceloop
    "llm.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",  # OpenInference
    "ai.usage.reasoningTokens",  # the Vercel AI SDK
)

#: The older GenAI span events that carry messages, and the role each stands for.
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
#: The current conventions' event of one inference, whose attributes are the span's and its messages
#: (``gen_ai.input.messages``, ``gen_ai.output.messages``, ``gen_ai.system_instructions``).  It is meant
#: for the logs, but Strands Agents adds it to the span (twice: the input as the call starts, the output
#: as it ends) and keeps the messages off the span's attributes.
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"
#: The first GenAI span events (conventions 1.26 and 1.27, Semantic Kernel): the whole prompt and the
#: whole completion, each in one attribute, as a JSON list of OpenAI-format messages (or plain text).
_PROMPT_EVENT = ("gen_ai.content.prompt", "gen_ai.prompt")
_COMPLETION_EVENT = ("gen_ai.content.completion", "gen_ai.completion")
#: Where the flattened message conventions keep their messages (``<prefix>N.<field>``).
_FLAT_MESSAGE_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",  # OpenInference, a completions API's prompts and answers
    "llm.choices.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
)
#: Whether a span's keys hold flattened messages (a prefix test per key, once per key set).
_has_flat_messages = PerKeySet(lambda keys: any(key.startswith(_FLAT_MESSAGE_PREFIXES) for key in keys))


@dataclass(slots=True, eq=False)  # one per span, compared by identity (not field by field)
class Described:
    """What one span says, read once: where it sits, its entity and the parts each entity needs.

    The mapping reads a span only here; everything after works from its ``Described``.
    """

    kind: str
    #: The entity's name: the span's name, or a tool call's tool name.
    name: str
    span_id: int
    #: The parent's span id, ``None`` for a span without a parent; ``parent_remote`` when it is in another process.
    parent_id: int | None
    parent_remote: bool
    #: Start and end (never before the start), in nanoseconds since the epoch.
    start: int
    end: int
    span_name: str
    status: Status
    #: The span's events and attributes (see ``events_of`` and ``attributes_of``).
    events: Sequence[Event]
    attributes: Attributes
    #: A generation's model, provider, messages, parameters, choices and the rest: set by
    #: :func:`_describe_generation`; other spans keep these defaults, which nothing changes.
    model: str | None = None
    provider: str = "unknown"
    messages: Sequence[dict[str, Any]] = ()
    parameters: dict[str, str] | None = None
    choices: Sequence[dict[str, Any]] = ()
    usage: dict[str, Any] | None = None
    response_id: str | None = None
    #: When the provider made the answer (seconds since the epoch), if the span says.
    created: int | None = None
    error: dict[str, str] | None = None
    #: Tool call: description, arguments (JSON text), result; retrieval: query, documents.
    description: str | None = None
    arguments: str | None = None
    result: str | None = None
    query: str | None = None
    documents: list[str] | None = None
    #: Events consumed as messages (not repeated as ``add-event``).
    consumed_events: frozenset[int] = frozenset()
    #: A generation's input files (images and the like in its messages), in the order met:
    #: ``{"url": ...}`` or ``{"data": <base64>, "mime_type": ...}`` (see :func:`_add_file`).
    files: Sequence[dict[str, str]] = ()
    #: The files of its answer (an image a model made, say), the same way.
    output_files: Sequence[dict[str, str]] = ()


def classify(attributes: Attributes) -> str:
    """The Maxim entity a span with these attributes becomes (see the module docstring)."""
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        kind = _GENAI_OPS.get(operation)
        if kind is not None:
            return kind
        if "gen_ai.prompt.0.role" not in attributes and "gen_ai.completion.0.role" not in attributes:
            return SPAN
    oi_kind = attributes.get("openinference.span.kind")
    if isinstance(oi_kind, str) and oi_kind:
        return _OPENINFERENCE_KINDS.get(oi_kind.upper(), SPAN)
    operation_id = attributes.get("ai.operationId")
    if isinstance(operation_id, str) and operation_id:
        if _VERCEL_GENERATION.fullmatch(operation_id):
            return GENERATION
        return TOOL_CALL if operation_id == "ai.toolCall" else SPAN
    if attributes.get("llm.request.type") in ("chat", "completion"):
        return GENERATION
    if "gen_ai.prompt.0.role" in attributes or "gen_ai.completion.0.role" in attributes:
        return GENERATION
    if attributes.get("traceloop.span.kind") == "tool":
        return TOOL_CALL
    return SPAN


def describe(span: ReadableSpan) -> Described:
    """Read everything the mapping needs from ``span``, once."""
    attributes = attributes_of(span)
    kind = classify(attributes)
    described = _described(span, attributes, kind)
    if kind == SPAN:
        return described
    try:
        if kind == GENERATION:
            _describe_generation(attributes, described)
        elif kind == TOOL_CALL:
            _describe_tool_call(attributes, described)
        elif kind == RETRIEVAL:
            _describe_retrieval(attributes, described)
        described.error = _error_of(described)
    except Exception:  # a shape no reader foresaw (a bug of ours): the span's GenAI reading, not its trace
        _limited.error(
            "describe",
            "Could not read span %s (%r) as a %s; sending it as a plain span.",
            span_hex(described.span_id),
            described.span_name,
            kind,
            exc_info=True,
        )
        return _described(span, attributes, SPAN)
    return described


def _described(span: ReadableSpan, attributes: Attributes, kind: str) -> Described:
    """The span's place, times and what it holds; the entity's own parts are left at their defaults."""
    name = span.name
    parent = span.parent
    start = span.start_time or 0
    end = span.end_time or start
    return Described(
        kind,
        name,
        span.context.span_id,  # type: ignore[union-attr]
        None if parent is None else parent.span_id,
        parent is not None and parent.is_remote,
        start,
        end if end >= start else start,
        name,
        span.status,
        events_of(span),
        attributes,
    )


def normalize_provider(value: object) -> str:
    """A provider name as Maxim knows it: lower case, one of :data:`PROVIDERS`, else ``unknown``."""
    if not isinstance(value, str) or not value:
        return "unknown"
    name = value.strip().lower()
    name = _PROVIDER_ALIASES.get(name, name)
    if name not in PROVIDERS and "." in name:  # Vercel's "openai.chat", "anthropic.messages"
        name = _PROVIDER_ALIASES.get(name.split(".", 1)[0], name.split(".", 1)[0])
    return name if name in PROVIDERS else "unknown"


# --- generations ----------------------------------------------------------------------------


def _describe_generation(attributes: Attributes, out: Described) -> None:
    invocation = _json_object(attributes.get("llm.invocation_parameters"))
    body = _response_body(attributes)
    model = _body_model(body) or first(attributes, _MODEL_KEYS)
    if model is None and invocation is not None:
        model = invocation.get("model") or invocation.get("model_name")
    out.model = text(model) if model is not None else None
    out.provider = normalize_provider(first(attributes, _PROVIDER_KEYS))
    out.parameters = _parameters(attributes, invocation)
    # The model asked for, when the answer names another (an alias the provider resolved, "gpt-4o"
    # -> a dated one): a parameter, as maxim-py's OpenAI wrapper sends the request's "model".
    requested = first(attributes, _REQUEST_MODEL_KEYS) or (invocation or {}).get("model")
    if isinstance(requested, str) and requested and requested != out.model:
        out.parameters.setdefault("model", requested)

    consumed: set[int] = set()
    files: list[dict[str, str]] = []
    # OpenInference's and Traceloop's flattened messages are looked for (a scan of the attributes
    # each) only when a key has one of their prefixes: most generations have none of them.
    flat = _has_flat_messages(attributes)
    # The current conventions' messages on the span's details events (see _DETAILS_EVENT) are read as
    # its attributes are, after them; the system instructions come first whatever holds the messages.
    details = _operation_details(out.events, consumed) if out.events else {}
    instructions = attributes.get("gen_ai.system_instructions") or details.get("gen_ai.system_instructions")
    out.messages = _system_instructions(instructions) + (
        _parts_messages(attributes.get("gen_ai.input.messages"), files)
        or (_openinference_messages(attributes, "llm.input_messages.", files) if flat else [])
        or (_traceloop_messages(attributes, "gen_ai.prompt.", files) if flat else [])
        or _openinference_prompts(attributes, flat)
        or _vercel_messages(attributes, files)
        or _parts_messages(details.get("gen_ai.input.messages"), files)
        or _event_messages(out.events, consumed, files)
        or _prompt_event_messages(out.events, consumed, files)
    )
    out.files = files
    output_files: list[dict[str, str]] = []
    choices = (
        _parts_choices(attributes.get("gen_ai.output.messages"), output_files)
        or (_openinference_choices(attributes, output_files) if flat else [])
        or (_traceloop_choices(attributes, output_files) if flat else [])
        or _completion_choices(attributes, flat, body)
        or _vercel_choices(attributes)
        or _parts_choices(details.get("gen_ai.output.messages"), output_files)
        or _event_choices(out.events, consumed, output_files)
        or _completion_event_choices(out.events, consumed, output_files)
    )
    out.output_files = output_files
    _fill_finish_reasons(choices, attributes.get("gen_ai.response.finish_reasons"))
    if body is not None:
        _fill_finish_reasons(choices, _body_finish_reasons(body))
    out.choices = choices
    _consume_stream_chunks(out.events, consumed)
    out.consumed_events = frozenset(consumed)
    out.usage = _usage(attributes)
    response_id = first(attributes, _RESPONSE_ID_KEYS)
    if response_id is None and body is not None:
        response_id = _body_response_id(body)
    out.response_id = text(response_id) if response_id is not None else None
    created = body.get("created") if body is not None else None
    out.created = created if type(created) is int and created > 0 else None


# OpenInference has no attributes for a response's id, its creation time, or the finish reasons past
# the first choice, and it names the requested model for a streamed LangChain call: all of them are
# in ``output.value``, the response body (OpenAI's chat completion, or LangChain's ``LLMResult``).


def _response_body(attributes: Attributes) -> dict[str, Any] | None:
    """OpenInference's ``output.value`` when it is a JSON object (its ``output.mime_type`` says so)."""
    if attributes.get("output.mime_type") != "application/json":
        return None
    return _json_object(attributes.get("output.value"))


def _langchain_generations(body: dict[str, Any]) -> list[Any]:
    """The generations of the first prompt in a LangChain ``LLMResult`` (``generations[0]``), else ``[]``."""
    generations = body.get("generations")
    if isinstance(generations, list) and generations and isinstance(generations[0], list):
        return generations[0]
    return []


def _body_response_id(body: dict[str, Any]) -> str | None:
    llm_output = body.get("llm_output")
    candidate = llm_output.get("id") if isinstance(llm_output, dict) else body.get("id")
    return candidate if isinstance(candidate, str) and candidate else None


def _body_model(body: dict[str, Any] | None) -> str | None:
    """The model that answered: OpenAI's ``model``, or LangChain's ``response_metadata.model_name``."""
    if body is None:
        return None
    candidate = body.get("model")
    for generation in _langchain_generations(body)[:1]:
        message = generation.get("message") if isinstance(generation, dict) else None
        kwargs = message.get("kwargs") if isinstance(message, dict) else None
        metadata = kwargs.get("response_metadata") if isinstance(kwargs, dict) else None
        if isinstance(metadata, dict):
            candidate = metadata.get("model_name")
    return candidate if isinstance(candidate, str) and candidate else None


def _body_finish_reasons(body: dict[str, Any]) -> list[object]:
    """Each choice's finish reason: OpenAI's ``choices[i].finish_reason``, LangChain's ``generation_info``."""
    choices = body.get("choices")
    if isinstance(choices, list):
        return [c.get("finish_reason") if isinstance(c, dict) else None for c in choices]
    infos = (g.get("generation_info") if isinstance(g, dict) else None for g in _langchain_generations(body))
    return [info.get("finish_reason") if isinstance(info, dict) else None for info in infos]


def _parameters(attributes: Attributes, invocation: dict[str, Any] | None) -> dict[str, str]:
    """The model parameters, as maxim-py writes them: strings as they are, everything else JSON-encoded."""
    params: dict[str, str] = {}
    if invocation:
        for key, value in invocation.items():
            if key not in _NOT_PARAMETERS and value is not None:
                params[key] = value if isinstance(value, str) else json_text(value)
    for key, name in _parameter_keys(attributes):
        value = attributes[key]
        if value is not None:
            params[name] = value if isinstance(value, str) else json_text(value)
    return params


#: ``(key, name)`` of the :data:`_PARAMETERS` a span's keys hold, in that order.
_parameter_keys = PerKeySet(lambda keys: tuple((key, name) for key, name in _PARAMETERS.items() if key in keys))


def _system_instructions(raw: object) -> list[dict[str, Any]]:
    parts = _json_list(raw)
    if not parts:
        return []
    content = _parts_text(parts)
    return [{"role": "system", "content": content}] if content else []


def _parts_messages(raw: object, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    """OTel GenAI ``gen_ai.input.messages``: ``[{role, parts: [{type, ...}]}]`` -> chat messages.

    Tool results (``tool_call_response`` parts) are split off as :func:`_results_then` says;
    files (``uri`` and ``blob`` parts) go to ``files``.
    """
    messages: list[dict[str, Any]] = []
    for item in _json_list(raw) or ():
        if not isinstance(item, dict):
            continue
        messages += _results_then(*_message_from_parts(item, files))
    return messages


def _results_then(message: dict[str, Any], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A message that holds tool results -> a ``tool`` message per result (each with the id of the
    call it answers, as in a chat completion request), then what else it says (an Anthropic-style
    user message: results, then text) as a message of its own, if it says anything else."""
    if not results:
        return [message]
    if not message["content"] and "tool_calls" not in message:
        return results
    if message["role"] == "tool":
        message["role"] = "user"
    return [*results, message]


def _message_from_parts(
    item: dict[str, Any], files: list[dict[str, str]] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A GenAI message -> the chat message of its text and tool calls, and a ``tool`` message per tool result.

    Its ``uri`` and ``blob`` parts (images and other files) go to ``files``, if given.
    """
    role = str(item.get("role") or "user")
    if role == "unknown":
        role = "assistant"  # Traceloop's streamed answers
    parts = item.get("parts")
    if not isinstance(parts, list):  # OpenAI's shape ({role, content, tool_calls}), which some write here
        return {**_openai_message(item, files), "role": role}, []
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in parts:  # one pass: messages are the bulk of a generation's mapping
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            tool_calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            results.append(_tool_result(part.get("id"), part.get("response")))
        elif files is not None and (kind == "uri" or kind == "blob"):
            _add_file(files, part.get("uri") if kind == "uri" else None, part.get("mime_type"), part.get("content"))
        elif kind == "file" and (reference := _file_reference(part.get("file_id"))) is not None:
            texts.append(reference)  # a file the provider holds: nothing to attach, so its id is in the text
    message: dict[str, Any] = {"role": role, "content": "\n".join(texts)}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message, results


def _tool_result(call_id: object, content: object) -> dict[str, Any]:
    """A ``tool`` message: the result of the call ``call_id``.

    A result given as OpenAI's content parts (``[{type: "text", text}]``, as a tool message's content
    may be) is their text, as maxim-py reads such a message.
    """
    if isinstance(content, (list, tuple)) and content and _only_text_and_files(content):
        content = _text_parts(list(content))
    message: dict[str, Any] = {"role": "tool", "content": as_text(content)}
    if call_id is not None:
        message["tool_call_id"] = str(call_id)
    return message


def _parts_choices(raw: object, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    choices: list[dict[str, Any]] = []
    for item in _json_list(raw) or ():
        if not isinstance(item, dict):
            continue
        message, _ = _message_from_parts(item, files)  # a model's answer holds no tool results
        choices.append(_answer_choice(len(choices), message, item.get("finish_reason")))
    return choices


def _answer_choice(index: int, message: dict[str, Any], finish_reason: object) -> dict[str, Any]:
    """``message`` as choice ``index`` of a chat completion: the assistant's, with no content beside tool calls."""
    message["role"] = "assistant"
    if not message.get("content") and "tool_calls" in message:
        message["content"] = None  # as OpenAI (and maxim-py) write a tool-call answer
    choice: dict[str, Any] = {"index": index, "message": message}
    if finish_reason:
        choice["finish_reason"] = _finish_reason(finish_reason)
    return choice


class _FlatKeys(NamedTuple):
    """Where a flattened message convention keeps each field, below ``<prefix>N.``."""

    role: str
    content: str
    contents: str | None  # multi-part contents (``...contents.M.message_content.text``)
    tool_calls: str
    call_id: str
    call_name: str
    call_arguments: str
    tool_call_id: str
    prompt: str | None  # a completions API's prompt, with neither role nor content


_OPENINFERENCE_KEYS = _FlatKeys(
    "message.role",
    "message.content",
    "message.contents.",
    "message.tool_calls.",
    "tool_call.id",
    "tool_call.function.name",
    "tool_call.function.arguments",
    "message.tool_call_id",
    None,
)
#: Traceloop <= 0.54 writes a text completion's prompt (OpenAI's, Anthropic's, Bedrock's, watsonx's ...)
#: as ``gen_ai.prompt.0.user``: a user message, as maxim-py writes such a prompt.
_TRACELOOP_KEYS = _FlatKeys("role", "content", None, "tool_calls.", "id", "name", "arguments", "tool_call_id", "user")


def _flat_messages(
    attributes: Attributes, prefix: str, keys: _FlatKeys, files: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    """Flattened messages (``<prefix>N.<field>``, OpenInference's and Traceloop's form) -> chat messages.

    Images (OpenInference's ``message_content.image.image.url`` parts) go to ``files``, if given.
    """
    messages: list[dict[str, Any]] = []
    for _, fields in sorted(_indexed(attributes, prefix).items()):
        content = fields.get(keys.content)
        if content is None and keys.contents is not None:
            texts = []
            for _, part in sorted(_indexed(fields, keys.contents).items()):
                if isinstance(value := part.get("message_content.text"), str):
                    texts.append(value)
                elif files is not None and part.get("message_content.type") == "image":
                    _add_file(files, part.get("message_content.image.image.url"))
            content = "\n".join(texts) if texts else None
        elif isinstance(content, str) and content.startswith("[{"):
            content = _json_parts_text(content, files)
        elif content is None and keys.prompt is not None:
            content = fields.get(keys.prompt)
        role = str(fields.get(keys.role) or "user")
        message: dict[str, Any] = {
            "role": "assistant" if role == "unknown" else role,  # Traceloop's streamed answers
            "content": as_text(content) if content else "",
        }
        calls = [
            _tool_call(c.get(keys.call_id), c.get(keys.call_name), c.get(keys.call_arguments))
            for _, c in sorted(_indexed(fields, keys.tool_calls).items())
        ]
        if calls:
            message["tool_calls"] = calls
        if fields.get(keys.tool_call_id) is not None:
            message["tool_call_id"] = str(fields[keys.tool_call_id])
        if fields.get("finish_reason") is not None:
            message["finish_reason"] = fields["finish_reason"]
        messages.append(message)
    return messages


def _openinference_messages(
    attributes: Attributes, prefix: str, files: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    return _flat_messages(attributes, prefix, _OPENINFERENCE_KEYS, files)


def _openinference_choices(attributes: Attributes, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    messages = _openinference_messages(attributes, "llm.output_messages.", files)
    choices = []
    for index, message in enumerate(messages):
        message["role"] = "assistant"
        if not message.get("content") and "tool_calls" in message:
            message["content"] = None
        choices.append({"index": index, "message": message})
    return _with_openinference_finish_reason(choices, attributes)


def _with_openinference_finish_reason(choices: list[dict[str, Any]], attributes: Attributes) -> list[dict[str, Any]]:
    """``choices``, the first given OpenInference's ``llm.finish_reason`` (the only one it records as an
    attribute: the others are in the response body, see :func:`_body_finish_reasons`)."""
    reason = attributes.get("llm.finish_reason")
    if choices and isinstance(reason, str):
        choices[0]["finish_reason"] = _finish_reason(reason)
    return choices


def _openinference_prompts(attributes: Attributes, flat: bool) -> list[dict[str, Any]]:
    """A completions API's prompts (OpenInference's ``llm.prompts.N.prompt.text``, or LangChain's
    ``llm.prompts`` list), each as a user message, as maxim-py writes a text completion's prompt."""
    prompts: object = attributes.get("llm.prompts")
    if flat and prompts is None:
        prompts = [f.get("prompt.text") for _, f in sorted(_indexed(attributes, "llm.prompts.").items())]
    if not isinstance(prompts, (list, tuple)):
        return []
    return [{"role": "user", "content": as_text(prompt)} for prompt in prompts if prompt is not None]


def _completion_choices(attributes: Attributes, flat: bool, body: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A completions API's answers as chat choices: OpenInference's ``llm.choices.N.completion.text``, else
    the texts of LangChain's ``LLMResult`` (a plain LLM's, whose generations have no message)."""
    texts: list[object] = []
    if flat:
        texts = [f.get("completion.text") for _, f in sorted(_indexed(attributes, "llm.choices.").items())]
    if not texts and body is not None:
        generations = _langchain_generations(body)
        if generations and all(isinstance(g, dict) and "message" not in g for g in generations):
            texts = [g.get("text") for g in generations]
    choices = [
        {"index": index, "message": {"role": "assistant", "content": as_text(text)}}
        for index, text in enumerate(texts)
        if text is not None
    ]
    return _with_openinference_finish_reason(choices, attributes)


def _traceloop_messages(
    attributes: Attributes, prefix: str, files: list[dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    return _flat_messages(attributes, prefix, _TRACELOOP_KEYS, files)


def _traceloop_choices(attributes: Attributes, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    choices = []
    for index, message in enumerate(_traceloop_messages(attributes, "gen_ai.completion.", files)):
        reason = message.pop("finish_reason", None)
        message["role"] = "assistant"
        if not message.get("content") and "tool_calls" in message:
            message["content"] = None
        choice: dict[str, Any] = {"index": index, "message": message}
        if reason is not None:
            choice["finish_reason"] = _finish_reason(reason)
        choices.append(choice)
    return choices


def _vercel_messages(attributes: Attributes, files: list[dict[str, str]]) -> list[dict[str, Any]]:
    raw = _json_list(attributes.get("ai.prompt.messages"))
    if raw is None:
        prompt = _json_object(attributes.get("ai.prompt"))
        if prompt is None:
            return []
        raw = _json_list(prompt.get("messages")) or []
        if not raw and prompt.get("prompt"):
            raw = [{"role": "user", "content": prompt["prompt"]}]
        if prompt.get("system"):
            raw = [{"role": "system", "content": prompt["system"]}, *raw]
    messages = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):  # [{type: "text", text: ...}, {type: "tool-call", ...}]
            message: dict[str, Any] = {
                "role": str(item.get("role") or "user"),
                "content": _text_parts(content, files),
            }
            calls = [
                _tool_call(p.get("toolCallId"), p.get("toolName"), p.get("args", p.get("input")))
                for p in content
                if isinstance(p, dict) and p.get("type") == "tool-call"
            ]
            if calls:
                message["tool_calls"] = calls
            # {type: "tool-result", toolCallId, toolName, result (v4) | output: {type, value} (v5)}
            results = [
                _tool_result(p.get("toolCallId"), _vercel_tool_output(p))
                for p in content
                if isinstance(p, dict) and p.get("type") == "tool-result"
            ]
            messages += _results_then(message, results)
        else:
            messages.append({"role": str(item.get("role") or "user"), "content": as_text(content)})
    return messages


def _vercel_tool_output(part: dict[str, Any]) -> object:
    if "result" in part:
        return part["result"]
    output = part.get("output")
    if isinstance(output, dict) and "value" in output:
        return output["value"]
    return output


def _vercel_choices(attributes: Attributes) -> list[dict[str, Any]]:
    response_text = attributes.get("ai.response.text")
    calls_raw = _json_list(attributes.get("ai.response.toolCalls"))
    if response_text is None and not calls_raw:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": as_text(response_text) if response_text else None}
    calls = [
        _tool_call(c.get("toolCallId"), c.get("toolName"), c.get("args", c.get("input")))
        for c in calls_raw or ()
        if isinstance(c, dict)
    ]
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    choice: dict[str, Any] = {"index": 0, "message": message}
    reason = attributes.get("ai.response.finishReason")
    if isinstance(reason, str):
        choice["finish_reason"] = _finish_reason(reason)
    return [choice]


def _operation_details(events: Sequence[Event], consumed: set[int]) -> dict[str, Any]:
    """The attributes of the span's ``gen_ai.client.inference.operation.details`` events, merged; the events
    are consumed (what else they hold is the span's own attributes again)."""
    details: dict[str, Any] = {}
    for index, event in enumerate(events):
        if event.name == _DETAILS_EVENT:
            consumed.add(index)
            details.update(event.attributes or {})
    return details


def _event_messages(events: Sequence[Event], consumed: set[int], files: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The older GenAI convention: one span event per message (``gen_ai.user.message``, ...)."""
    messages: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        role = _MESSAGE_EVENTS.get(event.name)
        if role is None:
            continue
        consumed.add(index)
        attributes = _event_body(event)
        message: dict[str, Any] = {
            "role": str(attributes.get("role") or role),
            "content": _event_content(attributes.get("content"), files),
        }
        calls = _json_list(attributes.get("tool_calls"))
        if calls:
            message["tool_calls"] = [_openai_tool_call(c) for c in calls if isinstance(c, dict)]
        # The call a tool message answers: the event's "id", or "tool_call_id" in the OpenAI-format
        # message that Azure AI Inference puts in gen_ai.event.content.
        call_id = first(attributes, ("id", "tool_call_id"))
        if call_id is not None and role == "tool":
            message["tool_call_id"] = str(call_id)
        messages.append(message)
    return messages


def _event_content(content: object, files: list[dict[str, str]]) -> str:
    """A message event's content as text.

    Content parts are their text, their files going to ``files``, when text and files are all they
    hold: OpenAI's (Azure AI Inference's ``gen_ai.event.content`` holds the request's message as it
    was), or Bedrock's text blocks as JSON text (``[{"text": ...}]``, as Strands Agents writes a
    message's content).  Other parts (a tool use, say) say more than their text: their JSON is kept.
    """
    if isinstance(content, str) and not content.startswith("[{"):
        return content  # text, as most messages are: no need to parse it
    parts = _json_list(content)
    if parts and (_only_text_and_files(parts) or all(isinstance(p, dict) and p.keys() == {"text"} for p in parts)):
        return _text_parts(parts, files)
    return as_text(content)


def _event_body(event: Event) -> dict[str, Any]:
    """An event's attributes, with the JSON of ``gen_ai.event.content`` (Azure AI Inference's form) merged in."""
    attributes: dict[str, Any] = dict(event.attributes or {})
    content = _json_object(attributes.pop("gen_ai.event.content", None))
    if content is not None:
        attributes.update(content)
    return attributes


def _event_choices(events: Sequence[Event], consumed: set[int], files: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The older GenAI convention's ``gen_ai.choice`` events, one per choice.

    The answer is the event's ``message``: a JSON object (``{content, tool_calls}``), or, as Strands
    Agents writes it, the answer's content blocks as JSON (``[{"text": ...}]``) or its text.
    """
    choices: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        if event.name != _CHOICE_EVENT:
            continue
        consumed.add(index)
        attributes = _event_body(event)
        raw = attributes.get("message")
        body = _json_object(raw)
        if body is None:
            body = {} if raw is None else {"content": raw}
        message: dict[str, Any] = {
            "role": "assistant",
            "content": _event_content(body.get("content", attributes.get("content")), files),
        }
        calls = _json_list(body.get("tool_calls")) or _json_list(attributes.get("tool_calls"))
        if calls:
            message["tool_calls"] = [_openai_tool_call(c) for c in calls if isinstance(c, dict)]
            if not message["content"]:
                message["content"] = None  # as OpenAI (and maxim-py) write a tool-call answer
        number = _int(attributes.get("index"))
        choice: dict[str, Any] = {"index": len(choices) if number is None else number, "message": message}
        if attributes.get("finish_reason") is not None:
            choice["finish_reason"] = _finish_reason(attributes["finish_reason"])
        choices.append(choice)
    return choices


def _prompt_event_messages(
    events: Sequence[Event], consumed: set[int], files: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """The ``gen_ai.content.prompt`` event: a JSON list of OpenAI-format messages, or a text prompt."""
    raw = _content_event(events, _PROMPT_EVENT, consumed)
    if raw is None:
        return []
    messages = [_openai_message(item, files) for item in _json_list(raw) or () if isinstance(item, dict)]
    return messages or [{"role": "user", "content": as_text(raw)}]


def _completion_event_choices(
    events: Sequence[Event], consumed: set[int], files: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """The ``gen_ai.content.completion`` event: a JSON list of OpenAI-format messages, or a text answer."""
    raw = _content_event(events, _COMPLETION_EVENT, consumed)
    if raw is None:
        return []
    items = [item for item in _json_list(raw) or () if isinstance(item, dict)] or [{"content": as_text(raw)}]
    return [_answer_choice(i, _openai_message(item, files), item.get("finish_reason")) for i, item in enumerate(items)]


def _content_event(events: Sequence[Event], name_and_key: tuple[str, str], consumed: set[int]) -> object:
    """The attribute ``key`` of the first event called ``name`` (which is then consumed), else ``None``."""
    name, key = name_and_key
    for index, event in enumerate(events):
        if event.name == name and event.attributes and event.attributes.get(key) is not None:
            consumed.add(index)
            return event.attributes[key]
    return None


def _openai_message(item: dict[str, Any], files: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A message in OpenAI's chat format (content as text or as parts) -> a chat message."""
    content = item.get("content")
    if isinstance(content, list):  # [{type: "text", text: ...}, {type: "image_url", ...}, ...]
        content = _text_parts(content, files)
    message: dict[str, Any] = {"role": str(item.get("role") or "user"), "content": as_text(content)}
    calls = _json_list(item.get("tool_calls"))
    if calls:
        message["tool_calls"] = [_openai_tool_call(c) for c in calls if isinstance(c, dict)]
    if item.get("tool_call_id") is not None:
        message["tool_call_id"] = str(item["tool_call_id"])
    return message


def _fill_finish_reasons(choices: list[dict[str, Any]], reasons: object) -> None:
    """Give each choice that has none its finish reason from ``reasons`` (one per choice, in order)."""
    if not isinstance(reasons, (tuple, list)):  # the SDK keeps sequences as tuples
        return
    for choice, reason in zip(choices, reasons):
        if reason is not None and reason != "":
            choice.setdefault("finish_reason", _finish_reason(reason))


#: Traceloop's event for each chunk of a streamed answer.
_CHUNK_EVENT = "gen_ai.content.completion.chunk"


def _consume_stream_chunks(events: Sequence[Event], consumed: set[int]) -> None:
    """Traceloop marks every chunk of a streamed answer with an event, up to the span's event limit:
    the first stays (when the first token came), the others say nothing more and are consumed."""
    chunks = [index for index, event in enumerate(events) if event.name == _CHUNK_EVENT]
    consumed.update(chunks[1:])


def _finish_reason(value: object) -> str:
    reason = str(value)
    return "tool_calls" if reason in ("tool_call", "tool-calls") else reason


def _usage(attributes: Attributes) -> dict[str, Any] | None:
    """Token counts as OpenAI's ``usage`` has them, with the cached and reasoning tokens' details if known."""
    prompt = _int(first(attributes, _USAGE_PROMPT))
    completion = _int(first(attributes, _USAGE_COMPLETION))
    total = _int(first(attributes, _USAGE_TOTAL))
    if prompt is None and completion is None and total is None:
        return None
    prompt = prompt or 0
    completion = completion or 0
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total or prompt + completion,
    }
    cached = _int(first(attributes, _USAGE_CACHED))
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    reasoning = _int(first(attributes, _USAGE_REASONING))
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


def _tool_call(call_id: object, name: object, arguments: object) -> dict[str, Any]:
    """A tool call in OpenAI's chat-completion shape; arguments always JSON text.

    A call the instrumentation gives no id (Gemini's have none) gets a random one, as maxim-py
    gives it (``str(uuid4())``): OpenAI's shape has one on every call.
    """
    return {
        "id": str(uuid.uuid4()) if call_id is None or call_id == "" else str(call_id),
        "type": "function",
        "function": {"name": "" if name is None else str(name), "arguments": as_text(arguments)},
    }


def _openai_tool_call(raw: dict[str, Any]) -> dict[str, Any]:
    function = raw["function"] if isinstance(raw.get("function"), dict) else raw
    return _tool_call(raw.get("id"), function.get("name"), function.get("arguments"))


# --- tool calls and retrievals -------------------------------------------------------------------


def _describe_tool_call(attributes: Attributes, out: Described) -> None:
    name = first(attributes, _TOOL_NAME_KEYS)
    out.name = (text(name) if name is not None else None) or out.span_name
    description = first(attributes, _TOOL_DESCRIPTION_KEYS)
    out.description = text(description) if description is not None else None
    arguments = first(attributes, _TOOL_ARGUMENT_KEYS)
    out.arguments = as_text(_unwrap_tool_arguments(arguments)) if arguments is not None else None
    result = first(attributes, _TOOL_RESULT_KEYS)
    if result is None and any(attributes.get(key) == "" for key in _TOOL_RESULT_KEYS):
        result = ""  # the tool returned empty text: a result all the same, as maxim-py sends it
    out.result = as_text(_unwrap_tool_result(result)) if result is not None else None


_TOOL_NAME_KEYS = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name", "traceloop.entity.name")
_TOOL_DESCRIPTION_KEYS = ("gen_ai.tool.description", "tool.description")
_TOOL_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "ai.toolCall.args", "input.value", "traceloop.entity.input")
_TOOL_RESULT_KEYS = (
    "gen_ai.tool.call.result",
    "ai.toolCall.result",
    "ai.toolCall.output",
    "output.value",
    "traceloop.entity.output",
)


def _unwrap_tool_arguments(value: object) -> object:
    """Traceloop's LangChain envelope ``{"input_str", "inputs", "kwargs", ...}`` -> the tool's ``inputs``."""
    if isinstance(value, str) and '"inputs"' not in value:
        return value  # not the envelope: no need to parse it
    wrapped = _json_object(value)
    if wrapped is not None and "inputs" in wrapped and ("input_str" in wrapped or "kwargs" in wrapped):
        return wrapped["inputs"]
    return value


def _unwrap_tool_result(value: object) -> object:
    """A LangChain ``ToolMessage`` as instrumentations dump it -> its content.

    Traceloop: ``{"output": <lc-serialised ToolMessage or value>, "kwargs": {...}}``;
    OpenInference: ``{"type": "tool", "data": {"content": ..., "tool_call_id": ...}}``.
    """
    if isinstance(value, str) and '"kwargs"' not in value and '"data"' not in value:
        return value  # neither envelope: no need to parse it
    wrapped = _json_object(value)
    if wrapped is None:
        return value
    if "output" in wrapped and "kwargs" in wrapped and len(wrapped) == 2:
        inner = wrapped["output"]
        if isinstance(inner, dict) and inner.get("lc") == 1 and isinstance(inner.get("kwargs"), dict):
            return inner["kwargs"].get("content", inner)
        return inner
    data = wrapped.get("data")
    if wrapped.get("type") == "tool" and isinstance(data, dict) and "content" in data and "tool_call_id" in data:
        return data["content"]
    return value


_RETRIEVAL_QUERY_KEYS = ("gen_ai.retrieval.query.text", "gen_ai.retrieval.query", "input.value")


def _describe_retrieval(attributes: Attributes, out: Described) -> None:
    query = first(attributes, _RETRIEVAL_QUERY_KEYS)
    wrapped_in = _json_object(attributes.get("traceloop.entity.input"))
    if query is None and wrapped_in is not None and wrapped_in.get("query") is not None:
        query = str(wrapped_in["query"])
    out.query = as_text(query) if query is not None else None
    documents = [
        as_text(fields.get("document.content"))
        for _, fields in sorted(_indexed(attributes, "retrieval.documents.").items())
        if fields.get("document.content") is not None
    ]
    if not documents:
        documents = _genai_documents(attributes.get("gen_ai.retrieval.documents"))
    if not documents:
        wrapped_out = _json_object(attributes.get("traceloop.entity.output"))
        if wrapped_out is not None and isinstance(wrapped_out.get("documents"), list):
            documents = [
                as_text(d.get("page_content", d)) if isinstance(d, dict) else as_text(d)
                for d in wrapped_out["documents"]
            ]
    out.documents = documents or None


def _genai_documents(raw: object) -> list[str]:
    """The GenAI convention's ``gen_ai.retrieval.documents`` (``[{id, score, ...}]``, as JSON text or as
    a value) -> one text per document: its ``content`` if it has one, else the document as JSON."""
    documents = _json_list(raw)
    if not documents:
        return []
    return [
        as_text(d["content"]) if isinstance(d, dict) and d.get("content") is not None else as_text(d) for d in documents
    ]


def _error_of(described: Described) -> dict[str, str] | None:
    """``{message, code, type}`` when the span failed (an ERROR status or an ``exception`` event)."""
    # The last exception: the one that ended the call (those before it failed attempts that it retried).
    exception = next((e for e in reversed(described.events) if e.name == "exception"), None)
    if described.status.status_code is not StatusCode.ERROR and exception is None:
        return None
    attributes = described.attributes
    event_attributes = exception.attributes or {} if exception is not None else {}
    message = event_attributes.get("exception.message") or described.status.description or "error"
    error_type = event_attributes.get("exception.type") or attributes.get("error.type") or ""
    if isinstance(error_type, str) and (match := _CLASS_REPR.fullmatch(error_type)):
        error_type = match.group(1)  # openai-v2 2.4b0 writes str(type(exc)): "<class 'openai.InternalServerError'>"
    code = attributes.get("http.response.status_code") or attributes.get("error.code") or ""
    return {"message": as_text(message), "code": as_text(code), "type": as_text(error_type)}


# --- small readers -------------------------------------------------------------------------------


def _indexed(attributes: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """Flattened lists: ``<prefix>0.message.role = x`` -> ``{0: {"message.role": x}}``."""
    out: dict[int, dict[str, Any]] = {}
    n = len(prefix)
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        index, dot, rest = key[n:].partition(".")
        if dot and index.isascii() and index.isdigit():  # "²".isdigit() too, but int() refuses it
            out.setdefault(int(index), {})[rest] = value
    return out


def _is(part: object, kind: str) -> bool:
    return isinstance(part, dict) and part.get("type") == kind


def _text_parts(content: list[Any], files: list[dict[str, str]] | None = None) -> str:
    """The text of content parts as OpenAI and the Vercel AI SDK write them: ``[{type: "text", text}, ...]``.

    Their images and files go to ``files``, if given (see :func:`_content_file`); a file known only
    by the provider's id stays in the text as ``[file:<id>]``.
    """
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        elif isinstance(kind := part.get("type"), str) and kind in _FILE_CONTENT_TYPES:
            reference = _content_file(part, files if files is not None else [])
            if reference is not None:
                texts.append(reference)
    return "\n".join(texts)


def _json_parts_text(content: str, files: list[dict[str, str]] | None) -> str:
    """Content that is OpenAI's content parts as JSON (Traceloop writes a list content so): their text.

    Text that only looks like such a list, or a list with parts other than text and files, is kept
    as it is.
    """
    parts = _json_list(content)
    if not parts or not _only_text_and_files(parts):
        return content  # other parts (Anthropic's tool_use and tool_result, say) say more than their text
    return _text_parts(parts, files)


def _only_text_and_files(parts: Sequence[object]) -> bool:
    """Whether ``parts`` are all OpenAI-style text and file content parts (their text says all they hold)."""
    return all(
        isinstance(p, dict) and isinstance(kind := p.get("type"), str) and kind in _TEXT_OR_FILE_TYPES for p in parts
    )


# --- files in messages: images and the like, sent to Maxim as attachments -------------------------

#: Content part types that hold or point at a file: OpenAI's chat (``image_url``, ``file``) and
#: responses (``input_image``, ``input_file``) APIs, the Vercel AI SDK's and Anthropic's (``image``, ``file``).
_FILE_CONTENT_TYPES = frozenset({"image_url", "input_image", "image", "file", "input_file"})
#: Content parts that are all there is to a message once their text is read and their files taken.
_TEXT_OR_FILE_TYPES = _FILE_CONTENT_TYPES | {"text", "input_text"}
#: ``data:[<mime type>][;parameters][;base64],``: a file inline in a URL (RFC 2397).
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(?:;[^;,]*?)*?(;base64)?,", re.ASCII | re.IGNORECASE)


def _content_file(part: dict[str, Any], files: list[dict[str, str]]) -> str | None:
    """Add the file of one content part, whichever API's shape it has, to ``files``.

    A file that the part names only by the provider's id (OpenAI's and Anthropic's files APIs) has
    nothing to attach: what is returned then is ``[file:<name>]`` for the message's text, as
    maxim-py writes such a file (its filename, else its id).
    """
    kind = part["type"]
    if kind == "image_url" or kind == "input_image":  # {image_url: {url}} (chat), {image_url: "..."} (responses)
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not url:
            return _file_reference(part.get("file_id"))
        _add_file(files, url)
    elif kind == "image":
        source = part.get("source")
        if isinstance(source, dict):  # Anthropic: {type: base64, media_type, data}, {type: url, url}, {type: file}
            if source.get("type") == "file":  # its files API: {type: file, file_id}
                return _file_reference(source.get("file_id"))
            _add_file(files, source.get("url"), source.get("media_type"), source.get("data"))
        else:  # Vercel: {image: url or base64, mimeType | mediaType}
            _add_file(files, None, part.get("mimeType", part.get("mediaType")), part.get("image"))
    else:  # file / input_file: OpenAI {file: {file_data | file_id}}, {file_data | file_url | file_id}; Vercel {data}
        inner = part.get("file")
        fields = inner if isinstance(inner, dict) else part
        data = fields.get("file_data", fields.get("data"))
        url = fields.get("file_url")
        if not data and not url:
            return _file_reference(fields.get("filename") or fields.get("file_id"))
        _add_file(files, url, part.get("mediaType", part.get("mimeType")), data)
    return None


def _file_reference(name: object) -> str | None:
    """How a message's text shows a file it names but does not hold: ``[file:<name>]``."""
    return f"[file:{name}]" if isinstance(name, str) and name else None


def _looks_like_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "gs://", "s3://")) or _is_data_url(value)


def _is_data_url(value: str) -> bool:
    return value[:5].lower() == "data:"  # a URL's scheme is case-insensitive


def _add_file(files: list[dict[str, str]], url: object, mime_type: object = None, data: object = None) -> None:
    """Add the file at ``url``, or of base64 ``data``, to ``files``.

    Each file is ``{"url"[, "mime_type"]}`` or ``{"data", "mime_type"}``.  ``data`` that is a URL
    (APIs put either in one field) is the file's URL.  A ``data:`` URL (RFC 2397) is its file
    inline: its base64 text and its media type.  A file with neither (a provider's file id, which
    the callers write in the message's text instead, or a reference cut by the instrumentation)
    adds nothing, and so does a ``data:`` URL that holds
    nothing or is not one (with a warning that shows none of it: it is content).  The base64 text
    is not decoded here: the sink decodes it when it uploads the file, off the exporting thread;
    only a ``data:`` URL's percent-encoded text (rare: small SVGs and text) is encoded as base64
    here.  A file of unknown type is ``application/octet-stream``, which the sink narrows down
    from the file's first bytes (a PNG, a JPEG, ...), except percent-encoded text, ``text/plain``.
    """
    mime = mime_type if isinstance(mime_type, str) and mime_type else None
    if isinstance(data, str) and _looks_like_url(data):
        url, data = data, None
    if isinstance(url, str) and url:
        if not _is_data_url(url):
            files.append({"url": url} if mime is None else {"url": url, "mime_type": mime})
            return
        inline = _DATA_URL.match(url)
        if inline is None or inline.end() == len(url):
            _limited.warning(
                "empty-data-url" if inline is not None else "bad-data-url",
                "Leaving out of a generation's attachments a data: URL of %d characters that %s.",
                len(url),
                "holds no data" if inline is not None else "is not one (data:[<type>][;base64],<data>)",
            )
            return
        data = url[inline.end() :]
        mime = inline.group(1).lower() if inline.group(1) else mime
        if inline.group(2):  # base64, which a URL may percent-encode too ("+" as %2B)
            data = unquote(data) if "%" in data else data
        else:
            data = base64.b64encode(unquote_to_bytes(data)).decode("ascii")
            mime = mime or "text/plain"  # RFC 2397's default
    if isinstance(data, str) and data:
        files.append({"data": data, "mime_type": mime or "application/octet-stream"})


def _parts_text(parts: Iterable[Any]) -> str:
    texts = [str(p.get("content", "")) for p in parts if _is(p, "text")]
    return "\n".join(texts)


def _int(value: object) -> int | None:
    """A count (tokens, an index): an int, or a whole float or decimal text, that fits in 64 bits and is not
    negative (an instrumentation's bug, a subtraction that went below zero, is no count)."""
    if isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    return number if number is not None and 0 <= number < 2**63 else None


def _json_list(value: object) -> list[Any] | None:
    """A JSON array: as text, or as a structured attribute value (a tuple, as the SDK holds a sequence)."""
    if isinstance(value, str):
        value = parse_json(value)
    elif isinstance(value, tuple):
        value = _as_parsed(value)
    return value if isinstance(value, list) else None


def _json_object(value: object) -> dict[str, Any] | None:
    """A JSON object: as text, or as a structured attribute value (a mapping)."""
    if isinstance(value, str):
        value = parse_json(value)
    elif isinstance(value, Mapping):
        value = _as_parsed(value)
    return value if isinstance(value, dict) else None


def _as_parsed(value: object) -> Any:
    """A structured attribute value (SDK 1.4x keeps mappings and sequences, ``AnyValue``) as its JSON
    text would parse: tuples as lists, mappings as dicts; ``None`` if it nests too deeply to read,
    as :func:`parse_json` reads such text.  GenAI instrumentations may record messages either way."""
    try:
        return _plain(value)
    except RecursionError:
        return None


def _plain(value: object) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, bytes):  # a blob's content, say: base64, as JSON text and OTLP carry it
        return base64.b64encode(value).decode("ascii")
    return value


#: The attributes read into a generation, tool call or retrieval above: on those entities they are
#: not repeated as metadata.  Every other attribute (an instrumentation's own that nothing here
#: reads, such as ``gen_ai.output.type`` or ``llm.is_streaming``) is metadata under its own name,
#: and content (messages, inputs, outputs) is never metadata.
READ_KEYS = frozenset(
    {
        *_MODEL_KEYS,
        *_PROVIDER_KEYS,
        *_RESPONSE_ID_KEYS,
        *_PARAMETERS,
        *_USAGE_PROMPT,
        *_USAGE_COMPLETION,
        *_USAGE_TOTAL,
        *_USAGE_CACHED,
        *_USAGE_REASONING,
        *_TOOL_NAME_KEYS,
        *_TOOL_DESCRIPTION_KEYS,
        *_TOOL_ARGUMENT_KEYS,
        *_TOOL_RESULT_KEYS,
        *_RETRIEVAL_QUERY_KEYS,
        # classify()
        *("gen_ai.operation.name", "openinference.span.kind", "ai.operationId", "llm.request.type"),
        "traceloop.span.kind",
        # _describe_generation(), _fill_finish_reasons(), _openinference_choices(), _vercel_choices(), _error_of()
        *("llm.invocation_parameters", "gen_ai.response.finish_reasons", "llm.finish_reason"),
        *("ai.response.finishReason", "error.type"),
    }
)
