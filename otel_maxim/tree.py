"""A readable tree of Maxim records (session -> traces -> spans), for people, not for Maxim."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from otel_maxim.records import Record, parse

__all__ = ["render_tree"]


@dataclass
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
    sessions: list[_Node] = []
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
        _apply(record, nodes, sessions, loose)
    out: list[str] = []
    for node in sessions + loose:
        _draw(node, out, "")
    if bad:
        out.append(f"({bad} lines were not records)")
    return "\n".join(out)


_CHILD_ENTITY = {
    "add-span": "span",
    "add-generation": "generation",
    "add-tool-call": "tool_call",
    "add-retrieval": "retrieval",
}


def _apply(record: Record, nodes: dict[tuple[str, str], _Node], sessions: list[_Node], loose: list[_Node]) -> None:
    key = (record.entity, record.id)
    data = record.data
    if record.action == "create":
        node = nodes.setdefault(key, _Node(record.entity, record.id))
        node.name = str(data.get("name", ""))
        if record.entity == "session":
            if node not in sessions:
                sessions.append(node)
        else:
            parent = nodes.get(("session", str(data.get("sessionId", ""))))
            (parent.children if parent is not None else loose).append(node)
    elif record.action in _CHILD_ENTITY:
        child = _Node(_CHILD_ENTITY[record.action], str(data.get("id", "")), str(data.get("name", "")))
        if child.entity == "generation" and data.get("model"):
            child.details.append(f"model={data['model']}")
        nodes[(child.entity, child.id)] = child
        parent_node = nodes.get(key)
        (parent_node.children if parent_node is not None else loose).append(child)
    elif record.action in ("add-error", "error"):
        target = nodes.get(key)
        if target is not None:
            error = data.get("error")
            message = data.get("message") or (error.get("message", "") if isinstance(error, dict) else error or "")
            target.details.append(f"error: {message}")
    elif record.action == "end":
        target = nodes.get(key)
        if target is not None:
            target.ended = True
    elif record.action == "update":
        target = nodes.get(key)
        if target is not None and "output" in data and record.entity == "trace":
            target.details.append(f"output={str(data['output'])[:60]!r}")


def _draw(node: _Node, out: list[str], indent: str) -> None:
    label = f"{node.entity} {node.name!r}" if node.name else node.entity
    extra = " ".join(node.details)
    status = "" if node.ended else "  (not ended)"
    out.append(f"{indent}{label}  [{node.id}]{'  ' + extra if extra else ''}{status}")
    for child in node.children:
        _draw(child, out, indent + "  ")
