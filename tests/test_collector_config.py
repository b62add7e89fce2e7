"""Every file in collector-config/ is a structurally valid Collector configuration of real components."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))

#: The upstream distribution these files are written for, and the component types it contains that the
#: files use, each with the Go module that provides it (from the distribution's manifest.yaml; the type
#: names from each component's metadata).  Since core v0.144.0 the OTLP exporters are ``otlp_grpc`` and
#: ``otlp_http`` (``otlp`` / ``otlphttp`` remain as deprecated aliases), and by contrib v0.154.0 the
#: load-balancing exporter is ``load_balancing`` (``loadbalancing`` deprecated); ``routing_key: attributes``
#: with ``routing_attributes`` routes traces on span attributes there.
DISTRIBUTION = "otelcol-contrib"
VERSION = "v0.154.0"
UPSTREAM_COMPONENTS: dict[str, dict[str, str]] = {
    "receivers": {
        "otlp": "go.opentelemetry.io/collector/receiver/otlpreceiver",
    },
    "processors": {
        "batch": "go.opentelemetry.io/collector/processor/batchprocessor",
        "memory_limiter": "go.opentelemetry.io/collector/processor/memorylimiterprocessor",
        "filter": "github.com/open-telemetry/opentelemetry-collector-contrib/processor/filterprocessor",
    },
    "exporters": {
        "otlp_grpc": "go.opentelemetry.io/collector/exporter/otlpexporter",
        "otlp_http": "go.opentelemetry.io/collector/exporter/otlphttpexporter",
        "load_balancing": "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/loadbalancingexporter",
        "debug": "go.opentelemetry.io/collector/exporter/debugexporter",
    },
    "extensions": {
        "health_check": "github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckextension",
    },
    "connectors": {},
}
PIPELINE_KINDS = ("receivers", "processors", "exporters")
SIGNALS = ("traces", "metrics", "logs")
_COMPONENT_ID = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.\-]+)?")
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def test_the_expected_files_are_there() -> None:
    names = {path.name for path in CONFIGS}
    assert {"gateway-to-bridge.yaml", "direct-to-maxim-otlp.yaml", "agent.yaml", "bridge-sidecar.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_pipeline_component_is_defined_and_every_definition_used(path: Path) -> None:
    config = _load(path)
    service = config["service"]
    pipelines = service["pipelines"]
    assert pipelines, "no pipeline"
    used: dict[str, set[str]] = {kind: set() for kind in (*PIPELINE_KINDS, "extensions")}
    for name, pipeline in pipelines.items():
        assert _type(name) in SIGNALS, f"pipeline {name!r} is not traces, metrics or logs"
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"pipeline {name} needs receivers and exporters"
        for kind in PIPELINE_KINDS:
            for component in pipeline.get(kind) or []:
                assert component in (config.get(kind) or {}), f"{name}: {kind[:-1]} {component!r} is not defined"
                used[kind].add(component)
    for extension in service.get("extensions") or []:
        assert extension in (config.get("extensions") or {}), f"extension {extension!r} is not defined"
        used["extensions"].add(extension)
    for kind in used:
        unused = set(config.get(kind) or {}) - used[kind]
        assert not unused, f"{kind} defined but never used: {sorted(unused)}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_component_type_exists_in_the_upstream_distribution(path: Path) -> None:
    config = _load(path)
    for kind, known in UPSTREAM_COMPONENTS.items():
        for component_id in config.get(kind) or {}:
            assert _COMPONENT_ID.fullmatch(component_id), f"{component_id!r} is not a component id"
            assert _type(component_id) in known, (
                f"{kind[:-1]} type {_type(component_id)!r} is not in {DISTRIBUTION} {VERSION}"
            )
    unknown = set(config) - {*UPSTREAM_COMPONENTS, "service"}
    assert not unknown, f"unknown top-level sections: {sorted(unknown)}"


def test_the_gateway_routes_sessions_to_bridge_replicas() -> None:
    exporter = _load(CONFIG_DIR / "gateway-to-bridge.yaml")["exporters"]["load_balancing"]
    assert exporter["routing_key"] == "attributes"
    assert exporter["routing_attributes"] == ["session.id"]
    assert "endpoint" not in exporter["protocol"]["otlp"], "the resolver sets each backend's endpoint"
    resolvers = exporter["resolver"]
    assert len(resolvers) == 1 and set(resolvers) <= {"static", "dns", "k8s", "aws_cloud_map"}
    assert resolvers["dns"]["hostname"] == "${env:BRIDGE_HEADLESS_SERVICE}"
    # The backends are the bridge sidecars' OTLP/gRPC receivers, which forward to the bridge on localhost.
    sidecar = _load(CONFIG_DIR / "bridge-sidecar.yaml")
    assert resolvers["dns"]["port"] == sidecar["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    forward = sidecar["exporters"]["otlp_http/bridge"]
    assert forward["traces_endpoint"].startswith("http://127.0.0.1:") and forward["traces_endpoint"].endswith(
        "/v1/traces"
    )
    assert forward["headers"]["Authorization"] == "Bearer ${env:MAXIM_BRIDGE_TOKEN}"
    assert forward["retry_on_failure"]["enabled"], "a 503 from the bridge must be retried, not dropped"


def test_direct_to_maxim_uses_the_full_otlp_url_and_headers_from_the_environment() -> None:
    config = _load(CONFIG_DIR / "direct-to-maxim-otlp.yaml")
    exporter = config["exporters"]["otlp_http/maxim"]
    assert exporter["traces_endpoint"] == "https://api.getmaxim.ai/v1/otel"
    assert "endpoint" not in exporter
    assert exporter["headers"] == {
        "x-maxim-api-key": "${env:MAXIM_API_KEY}",
        "x-maxim-repo-id": "${env:MAXIM_LOG_REPO_ID}",
    }
    conditions = config["processors"]["filter/session-end-markers"]["traces"]["span"]
    assert conditions == ['attributes["maxim.session.end"] == true']


def test_the_agent_forwards_to_the_gateway() -> None:
    exporters = _load(CONFIG_DIR / "agent.yaml")["exporters"]
    assert exporters["otlp_grpc/gateway"]["endpoint"] == "${env:GATEWAY_ENDPOINT}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_environment_variable_is_documented(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    readme = (CONFIG_DIR / "README.md").read_text(encoding="utf-8")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for name in {match.group(1) for match in _ENV.finditer(text)}:
        assert name in header, f"{path.name} does not say what {name} is"
        assert name in readme, f"collector-config/README.md does not mention {name}"
    assert path.name in readme
