"""``kit check``: the hardware self-test and the field-trial figures of a real kit.

:mod:`kit.check.run` runs the probes and writes the report
(:mod:`kit.check.report`) for the options asked for (:mod:`kit.check.options`);
each measurement lives in a module of its own beside it: the take
(:mod:`~kit.check.take`, :mod:`~kit.check.board`, :mod:`~kit.check.timing`),
:mod:`~kit.check.fsync`, :mod:`~kit.check.clap`, :mod:`~kit.check.network`
and :mod:`~kit.check.sandbox`. The older probes live in :mod:`kit.daemon.health`.
"""

from kit.check.options import CheckOptions, options_from_args
from kit.check.report import CheckReport, format_item, summary_line
from kit.check.run import (
    CheckSources,
    default_project_root,
    main,
    probe_signing_key,
    run_check,
)

__all__ = [
    "CheckOptions",
    "CheckReport",
    "CheckSources",
    "default_project_root",
    "format_item",
    "main",
    "options_from_args",
    "probe_signing_key",
    "run_check",
    "summary_line",
]
