"""A readable tree of Maxim records (session -> traces -> spans), for people, not for Maxim."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_maxim.records import Record, parse

__all__ = ["render_tree"]


@dataclass(eq=False)  # nodes are told apart by identity: comparing their fields would walk whole subtrees
class _Node:
    entity: str
    id: str
    name: str = ""
    details: list[str] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    ended: bool = False


def render_tree(lines: Iterable[str]) -> str:
    """Render record lines as an indented tree; lines that are not records are counted, not shown."""
    nodes: dict[tuple[str, str], _Node] = {}
    roots: list[_Node] = []
    loose: list[_Node] = []
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = parse(line)
        except ValueError:
            bad += 1
            continue
        _apply(record, nodes, roots, loose)
    out: list[str] = []
    _draw(roots + loose, out)
    if bad:
        out.append(f"({bad} lines were not records)")
    return "\n".join(out)


_CHILD_ENTITY = {
    "add-span": "span",
    "add-generation": "generation",
    "add-tool-call": "tool_call",
    "add-retrieval": "retrieval",
}


def _apply(record: Record, nodes: dict[tuple[str, str], _Node], roots: list[_Node], loose: list[_Node]) -> None:
    # A node is placed once, when it is first named: a session among the roots, anything else under
    # the node that named it (or among the loose ones if that is unknown).  A later record for the same
    # id (the same trace id in two runs appended to one file) only updates it.  A parent therefore
    # always exists before its child, so the nodes form a tree even when the records name a cycle.
    key = (record.entity, record.id)
    data = record.data
    if record.action == "create":
        node = nodes.get(key)
        if node is None:
            node = nodes[key] = _Node(record.entity, record.id)
            if record.entity == "session":
                roots.append(node)
            else:
                parent = nodes.get(("session", str(data.get("sessionId", ""))))
                (parent.children if parent is not None else loose).append(node)
        if "name" in data:
            node.name = str(data["name"])
    elif record.action in _CHILD_ENTITY:
        child_key = (_CHILD_ENTITY[record.action], str(data.get("id", "")))
        child = nodes.get(child_key)
        if child is None:
            parent_node = nodes.get(key)  # looked up before the child exists: a node is never its own parent
            child = nodes[child_key] = _Node(*child_key)
            (parent_node.children if parent_node is not None else loose).append(child)
        if "name" in data:
            child.name = str(data["name"])
        model = f"model={_escaped(data['model'])}" if child.entity == "generation" and data.get("model") else ""
        if model and model not in child.details:
            child.details.append(model)
    elif record.action in ("add-error", "error"):
        target = nodes.get(key)
        if target is not None:
            target.details.append(f"error: {_error_message(data)}")
    elif record.action == "result":
        target = nodes.get(key)
        result = data.get("result")
        if target is not None and isinstance(result, Mapping) and result.get("error"):
            target.details.append(f"error: {_error_message(result)}")  # a failed model call
    elif record.action == "end":
        target = nodes.get(key)
        if target is not None:
            target.ended = True
    elif record.action == "update":
        target = nodes.get(key)
        if target is not None:
            if "name" in data:  # a session named in a later turn
                target.name = str(data["name"])
            if "output" in data and record.entity == "trace":
                target.details.append(f"output={str(data['output'])[:60]!r}")


def _error_message(data: Mapping[str, Any]) -> str:
    error = data.get("error")
    message = data.get("message") or (error.get("message", "") if isinstance(error, dict) else error or "")
    return _escaped(message)


def _escaped(value: object) -> str:
    """``value`` as text with newlines and control characters escaped as ``repr`` does, without its quotes.

    Error messages and model names come from the application and its providers: printed raw, a
    newline would start a line that looks like part of the tree, and an escape code would reach the
    terminal.
    """
    return repr(str(value))[1:-1]


def _draw(roots: list[_Node], out: list[str]) -> None:
    # With a stack, not recursion: a chain of spans may be nested deeper than Python's recursion limit.
    stack = [(node, "") for node in reversed(roots)]
    while stack:
        node, indent = stack.pop()
        label = f"{node.entity} {node.name!r}" if node.name else node.entity
        extra = " ".join(node.details)
        status = "" if node.ended else "  (not ended)"
        out.append(f"{indent}{label}  [{_escaped(node.id)}]{'  ' + extra if extra else ''}{status}")
        stack.extend((child, indent + "  ") for child in reversed(node.children))
