"""The README stays true: its tables match the modules that define the names."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import otel_maxim
from otel_maxim import conventions
from otel_maxim.environment_variables import VARIABLES, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_environment_table_is_generated_from_the_module() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- env-table:start -->\n") + len("<!-- env-table:start -->\n")
    end = text.index("<!-- env-table:end -->")
    assert text[start:end].strip() == markdown_table(), (
        "README's environment table is stale: paste otel_maxim.environment_variables.markdown_table()"
    )
    assert len(VARIABLES) == len({v.name for v in VARIABLES})


def test_every_attribute_name_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    names = [
        value
        for key, value in vars(conventions).items()
        if key.isupper() and isinstance(value, str) and key not in {"SESSION_END_SPAN_NAME", "ORIGINAL_ID_TAG"}
    ]
    names += list(conventions.FOREIGN_SESSION_ID_KEYS)
    missing = [name for name in names if name.rstrip(".") not in text]
    assert not missing, f"attributes missing from the README: {missing}"


@pytest.mark.parametrize("name", ["MaximSpanProcessor", "SessionBaggageProcessor", "MaximSpanExporter"])
def test_the_api_section_gives_each_constructor_its_real_signature(name: str) -> None:
    """The README's ``otel_maxim.<name>(...)`` line names every parameter, in order, with its default."""
    text = README.read_text(encoding="utf-8")
    written = re.search(rf"^- `otel_maxim\.{name}\((.*?)\)`", text, re.MULTILINE)
    assert written is not None, f"README has no line for otel_maxim.{name}(...)"
    parameters = list(inspect.signature(getattr(otel_maxim, name)).parameters.values())
    real = []
    for index, parameter in enumerate(parameters):
        if parameter.kind is parameter.KEYWORD_ONLY and (
            index == 0 or parameters[index - 1].kind is not parameter.KEYWORD_ONLY
        ):
            real.append("*")
        real.append(
            parameter.name if parameter.default is parameter.empty else f"{parameter.name}={parameter.default!r}"
        )
    assert written.group(1) == ", ".join(real)
