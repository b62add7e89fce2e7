"""Zero-code setup: Maxim sessions under ``opentelemetry-instrument`` with ``OTEL_TRACES_EXPORTER=maxim``.

``opentelemetry-instrument python app.py`` starts the program through
opentelemetry-instrumentation's ``auto_instrumentation.initialize()``, which runs, in order:

1. one *distro* (entry point group ``opentelemetry_distro``): the first installed, unless
   ``OTEL_PYTHON_DISTRO`` names one;
2. one *configurator* (``opentelemetry_configurator``): the first installed, unless
   ``OTEL_PYTHON_CONFIGURATOR`` names one.  It builds the SDK's providers from the ``OTEL_*``
   variables; opentelemetry-distro ships the usual one.  Without a configurator nothing reads
   ``OTEL_TRACES_EXPORTER`` and no ``TracerProvider`` is built;
3. every ``opentelemetry_pre_instrument`` hook, then the instrumentors, then every
   ``opentelemetry_post_instrument`` hook.

Steps 1 and 2 each pick one entry point, in installation order when several are installed.
A distro or configurator of ours would race opentelemetry-distro's, and which one won would
depend on the installation.  So we register neither.  We register one
``opentelemetry_pre_instrument`` hook, :func:`pre_instrument`, which every start-up runs after
the configurator and before the instrumentors.  When ``OTEL_TRACES_EXPORTER`` names ``maxim``,
the hook:

- builds the SDK from the environment if no configurator did (opentelemetry-distro is not
  installed), with the SDK's own configurator class.  That is the class opentelemetry-distro
  registers, so the environment means the same with or without the distro;
- adds a :class:`~otel_maxim.SessionBaggageProcessor` to the global ``TracerProvider``, so
  that ``session.id`` in the baggage (for example an incoming request's ``baggage`` header,
  which the web framework's instrumentation extracts) reaches every span, and from there
  Maxim's sessions.  The order of processors does not matter: a span is stamped when it
  starts, and exporters only see it after it ends.

``MAXIM_SESSION_BAGGAGE=true`` adds the stamping whatever the exporter, for example OTLP to a
Collector and ``otel-maxim bridge``; ``false`` turns it off.  The hook never raises: an
exception in a pre-instrument hook would stop every instrumentor from loading.

One case needs code before step 1.  opentelemetry-distro's distro defaults *every* signal to
OTLP over gRPC (``OTEL_METRICS_EXPORTER=otlp``, ``OTEL_LOGS_EXPORTER=otlp``,
``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``, each only if unset).  If the exporter that default names is
not installed (``pip install opentelemetry-distro`` does not bring it), the configurator fails
in step 2, before any tracing is set up and before our hook runs, whatever the traces exporter.
The ``opentelemetry-instrument`` launcher loads every ``opentelemetry_environment_variables``
entry point before it starts the program; ours, :mod:`otel_maxim._launcher`, applies
:func:`launcher_defaults` to the environment the program inherits: when ``OTEL_TRACES_EXPORTER``
names ``maxim``, opentelemetry-distro may run, and ``OTEL_METRICS_EXPORTER`` or
``OTEL_LOGS_EXPORTER`` is unset while the exporter the distro would pick for it is not installed,
that variable is set to ``none``.  A variable the user set (or a launcher flag that sets it,
such as ``--metrics_exporter``) is never changed, and an installed OTLP exporter keeps the
distro's default.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.environment_variables import (
    OTEL_LOGS_EXPORTER,
    OTEL_METRICS_EXPORTER,
    OTEL_PROPAGATORS,
    OTEL_TRACES_EXPORTER,
)
from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_DISTRO
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._importlib_metadata import entry_points

from otel_maxim import environment_variables as env
from otel_maxim._config import resolve_bool
from otel_maxim.processor import SessionBaggageProcessor

__all__ = ["EXPORTER_NAME", "launcher_defaults", "pre_instrument"]

_logger = logging.getLogger(__name__)

#: The name of our ``opentelemetry_traces_exporter`` entry point: ``OTEL_TRACES_EXPORTER=maxim``.
EXPORTER_NAME = "maxim"

#: The providers that already have our stamping processor (the hook may in principle run twice).
_stamped: weakref.WeakSet[TracerProvider] = weakref.WeakSet()


class _SDKConfigurator(_OTelSDKConfigurator):
    """The SDK's configurator from the ``OTEL_*`` variables (opentelemetry-distro registers the same class).

    It is used only when no configurator ran.
    """


def pre_instrument() -> None:
    """The ``opentelemetry_pre_instrument`` hook: make ``OTEL_TRACES_EXPORTER=maxim`` produce Maxim sessions.

    ``opentelemetry-instrument`` calls it with no arguments after the configurator and before
    the instrumentors.  It never raises.
    """
    try:
        exporter_configured = EXPORTER_NAME in _traces_exporter_names()
        if exporter_configured and _no_provider_set() and not _configure_sdk():
            return
        if _stamping_wanted(exporter_configured):
            _add_session_stamping(trace.get_tracer_provider())
    except Exception:  # an exception here would stop every instrumentor from loading: log it and go on
        _logger.exception("Could not set up Maxim sessions under opentelemetry-instrument; the program runs without.")


#: opentelemetry-distro's distro, as its entry point names it.
_OPENTELEMETRY_DISTRO = "opentelemetry.distro:OpenTelemetryDistro"
#: The exporter OTLP means for each protocol (the SDK's configurator maps ``otlp`` the same way).
_OTLP_EXPORTER_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
#: For metrics and logs: the variable naming the exporter, its protocol variable, and the exporters' entry point group.
_DISTRO_DEFAULTED_SIGNALS = (
    (OTEL_METRICS_EXPORTER, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "opentelemetry_metrics_exporter"),
    (OTEL_LOGS_EXPORTER, OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, "opentelemetry_logs_exporter"),
)


def _launcher_flag(variable: str) -> str:
    """The ``opentelemetry-instrument`` flag that sets ``variable``, made by the launcher's own rule:
    the name without ``OTEL_`` or ``OTEL_PYTHON_``, lower case."""
    return "--" + re.sub(r"OTEL_(PYTHON_)?", "", variable).lower()


#: The variables :func:`launcher_defaults` reads, by the launcher flag that sets each.
_LAUNCHER_FLAGS = {
    _launcher_flag(variable): variable
    for variable in (
        OTEL_TRACES_EXPORTER,
        OTEL_METRICS_EXPORTER,
        OTEL_LOGS_EXPORTER,
        OTEL_EXPORTER_OTLP_PROTOCOL,
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
        OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
        OTEL_PYTHON_DISTRO,
    )
}


def launcher_flags(arguments: Sequence[str]) -> dict[str, str]:
    """The variables that ``opentelemetry-instrument``'s own flags will set, from its arguments.

    The launcher reads its flags only after loading the entry points, so they are read here the
    way it will: ``--name value`` or ``--name=value`` before the program's command, which ends
    them, and a flag cut short (``--traces_exp``) if it starts only one of the launcher's flags,
    as its ``argparse`` allows.  Only the flags :func:`launcher_defaults` needs.
    """
    found: dict[str, str] = {}
    every_flag: set[str] | None = None
    index = 0
    while index < len(arguments) and arguments[index].startswith("--"):
        flag, equals, value = arguments[index].partition("=")
        if not equals:
            if index + 1 >= len(arguments):
                break
            index += 1
            value = arguments[index]
        if flag not in _LAUNCHER_FLAGS:
            every_flag = _every_launcher_flag() if every_flag is None else every_flag
            if flag not in every_flag:  # argparse's rule for a flag cut short: the one flag it starts
                starting = [name for name in every_flag if name.startswith(flag)]
                flag = starting[0] if len(starting) == 1 else flag
        if flag in _LAUNCHER_FLAGS:
            found[_LAUNCHER_FLAGS[flag]] = value
        index += 1
    return found


def _every_launcher_flag() -> set[str]:
    """Every flag ``opentelemetry-instrument`` defines: one per ``OTEL_*`` name of the modules that the
    ``opentelemetry_environment_variables`` entry points load."""
    flags = {"--help", "--version"}
    for entry_point in entry_points(group="opentelemetry_environment_variables"):
        try:
            module = entry_point.load()
        except Exception:  # the launcher would fail on it too; the flags it can make are still known
            continue
        flags.update(_launcher_flag(name) for name in dir(module) if name.startswith("OTEL_"))
    return flags


def launcher_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to add to ``environ`` so that opentelemetry-distro's defaults cannot stop Maxim tracing.

    Empty unless ``OTEL_TRACES_EXPORTER`` names ``maxim`` and opentelemetry-distro may be the
    distro that runs.  Then, for metrics and logs each: if its exporter variable is unset and
    OTLP with the protocol the distro would use (``grpc`` unless a protocol variable says
    otherwise) has no installed exporter, ``{variable: "none"}``.  See the module docstring.
    """
    if EXPORTER_NAME not in _traces_exporter_names(environ) or not _opentelemetry_distro_may_run(environ):
        return {}
    defaults = {}
    for exporter_variable, protocol_variable, group in _DISTRO_DEFAULTED_SIGNALS:
        if exporter_variable in environ:
            continue
        protocol = environ.get(protocol_variable) or environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc"
        exporter = _OTLP_EXPORTER_BY_PROTOCOL.get(protocol.strip())
        if exporter is None or not entry_points(group=group, name=exporter):
            defaults[exporter_variable] = "none"
    return defaults


def _opentelemetry_distro_may_run(environ: Mapping[str, str]) -> bool:
    """Whether opentelemetry-distro's distro is installed and ``OTEL_PYTHON_DISTRO`` does not pick another."""
    chosen = environ.get(OTEL_PYTHON_DISTRO)
    return any(
        entry_point.value == _OPENTELEMETRY_DISTRO and chosen in (None, entry_point.name)
        for entry_point in entry_points(group="opentelemetry_distro")
    )


def _traces_exporter_names(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The names in ``OTEL_TRACES_EXPORTER``, read as the SDK's configurator reads them."""
    names = environ.get(OTEL_TRACES_EXPORTER)
    if not names or names.strip().lower() == "none":
        return []
    return [name.strip() for name in names.split(",")]


def _stamping_wanted(exporter_configured: bool) -> bool:
    """``MAXIM_SESSION_BAGGAGE`` if it is set (a bad value warns), else whether the ``maxim`` exporter is configured."""
    return resolve_bool(None, "session_baggage", env.MAXIM_SESSION_BAGGAGE, exporter_configured)


def _no_provider_set() -> bool:
    """Whether no configurator set a global tracer provider (only the API's placeholder is there)."""
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _configure_sdk() -> bool:
    """Build the SDK's providers from the environment, as opentelemetry-distro's configurator would.

    Returns whether that worked; a failure is logged, never raised.
    """
    instrumentation_version: str | None
    try:
        from opentelemetry.instrumentation.version import __version__ as instrumentation_version  # noqa: PLC0415
    except ImportError:  # called outside opentelemetry-instrument: there is no auto-instrumentation version
        instrumentation_version = None
    _logger.debug(
        "No configurator set a tracer provider (opentelemetry-distro is not installed); "
        "configuring the SDK from the environment (%s=%s).",
        OTEL_TRACES_EXPORTER,
        os.environ.get(OTEL_TRACES_EXPORTER),
    )
    try:
        configurator = _SDKConfigurator()  # type: ignore[no-untyped-call]  # the SDK leaves it unannotated
        configurator.configure(auto_instrumentation_version=instrumentation_version)  # type: ignore[no-untyped-call]
    except Exception:  # e.g. another exporter named in OTEL_*_EXPORTER is not installed; the app still starts
        _logger.exception(
            "Could not configure the OpenTelemetry SDK from the environment (%s=%s); no traces are exported.",
            OTEL_TRACES_EXPORTER,
            os.environ.get(OTEL_TRACES_EXPORTER),
        )
        return False
    return True


def _add_session_stamping(provider: trace.TracerProvider) -> None:
    """Add a :class:`SessionBaggageProcessor` to ``provider`` (once), if it is the SDK's.

    Called when the stamping is wanted (the ``maxim`` exporter, or ``MAXIM_SESSION_BAGGAGE=true``),
    so a provider that cannot take it is worth a warning.
    """
    if not isinstance(provider, TracerProvider):
        _logger.warning(
            "The global tracer provider is %s, not the SDK's TracerProvider; "
            "sessions in baggage are not copied onto spans.",
            type(provider).__name__,
        )
        return
    if provider in _stamped:
        return
    _warn_if_baggage_is_not_read()
    stamping = SessionBaggageProcessor()
    provider.add_span_processor(stamping)
    _put_first(provider, stamping)
    _stamped.add(provider)
    _logger.debug("Added SessionBaggageProcessor to the global TracerProvider.")


def _warn_if_baggage_is_not_read() -> None:
    """Say so when the propagators leave out W3C baggage (``OTEL_PROPAGATORS=tracecontext``): a
    ``session.id`` that a caller sends then never reaches this service's spans, without a word."""
    if "baggage" not in propagate.get_global_textmap().fields:
        _logger.warning(
            "The propagators (%s=%s) do not read the W3C baggage header: a session.id sent by a caller does "
            "not reach this service's spans (sessions entered here still do); add 'baggage' to %s.",
            OTEL_PROPAGATORS,
            os.environ.get(OTEL_PROPAGATORS, ""),
            OTEL_PROPAGATORS,
        )


def _put_first(provider: TracerProvider, processor: SessionBaggageProcessor) -> None:
    """Move ``processor`` before those the configurator added: its ``on_start`` then stamps before
    they see the span, and its ``on_end`` (which puts back a session the span's attribute limit
    evicted) runs before an exporting processor hands the span to its exporter.  The SDK only
    appends processors; this reorders its private tuple, and does nothing where that is not there."""
    active = getattr(provider, "_active_span_processor", None)
    lock = getattr(active, "_lock", None)
    if lock is None or not isinstance(getattr(active, "_span_processors", None), tuple):
        return
    with lock:
        others = tuple(p for p in active._span_processors if p is not processor)  # type: ignore[union-attr]
        active._span_processors = (processor, *others)  # type: ignore[union-attr]
