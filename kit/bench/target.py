"""The kit a network bench measures: one already running (``--url``, ``--code``,
``--pid``), or ``kit run --simulate`` started for the run in a temporary data
directory (``--small``: 320x240, less CPU)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kit.testing.launch import kit_run_simulated

SMALL = ("--width", "320", "--height", "240")


@dataclass(frozen=True)
class Target:
    """Where the bench sends its phones, and how its report names that kit."""

    url: str
    code: str
    pid: int | None  # for the kit's memory and limits; None: not known
    where: str
    data: Path | None = None  # its data directory, when the bench started it


def add_arguments(parser: argparse.ArgumentParser, *, pid: str | None, small: bool) -> None:
    """``--url``/``--code`` (and ``--pid`` when ``pid`` says what it is for, ``--small``
    when ``small``) on ``parser``."""
    parser.add_argument("--url", help="a running kit (default: start kit run --simulate)")
    parser.add_argument("--code", help="the running kit's 6-digit pairing code (with --url)")
    if pid is not None:
        parser.add_argument("--pid", type=int, help=f"the running kit's pid (with --url: {pid})")
    if small:
        parser.add_argument("--small", action="store_true", help="record 320x240 (less CPU)")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit through ``parser.error`` unless ``--url`` and ``--code`` come together, and
    ``--pid`` only with them."""
    if bool(args.url) != bool(args.code):
        parser.error("--url and --code go together")
    if getattr(args, "pid", None) is not None and not args.url:
        parser.error("--pid is the running kit's: give it with --url and --code")


@contextmanager
def target(args: argparse.Namespace, name: str) -> Iterator[Target]:
    """The kit the arguments name, or one started (and stopped afterwards) for bench
    ``name``."""
    if args.url:
        yield Target(args.url, args.code, getattr(args, "pid", None), args.url)
        return
    extra = SMALL if getattr(args, "small", False) else ()
    with (
        tempfile.TemporaryDirectory(prefix=f"kit-bench-{name}-") as tmp,
        kit_run_simulated(Path(tmp) / "data", *extra) as kit,
    ):
        yield Target(
            kit.url, kit.code, kit.process.proc.pid, f"kit run --simulate ({kit.url})", kit.data
        )
