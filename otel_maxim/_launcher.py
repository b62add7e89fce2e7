"""Loaded by the ``opentelemetry-instrument`` launcher before it starts the program.

The launcher loads every ``opentelemetry_environment_variables`` entry point (to offer each
``OTEL_*`` name a module defines as a command-line flag; this module defines none) and then
runs the program with its environment.  Loading this module adds
:func:`otel_maxim.auto.launcher_defaults` to that environment, so that with
``OTEL_TRACES_EXPORTER=maxim`` alone, opentelemetry-distro's OTLP defaults for metrics and logs
cannot stop tracing when no OTLP exporter for them is installed.  See :mod:`otel_maxim.auto`.

Importing it never raises: the launcher does not catch errors from its entry points.
"""

import logging as _logging
import os as _os
import sys as _sys

_logger = _logging.getLogger("otel_maxim.auto")


def _apply() -> None:
    try:
        from otel_maxim.auto import launcher_defaults, launcher_flags  # noqa: PLC0415 - inside the guard

        # The launcher applies its own flags (--traces_exporter maxim, ...) after this: read them too.
        settings = {**_os.environ, **launcher_flags(_sys.argv[1:])}
        for variable, value in launcher_defaults(settings).items():
            _os.environ[variable] = value
            _logger.info(
                "%s=%s for this program: opentelemetry-distro would default it to an OTLP exporter that is "
                "not installed, and that would stop tracing too. Set %s to choose.",
                variable,
                value,
                variable,
            )
    except Exception:  # the launcher would die of it; the program still runs, as without us
        _logger.exception("otel_maxim could not check the OpenTelemetry environment before start-up.")


_apply()
