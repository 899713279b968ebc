"""What a person can ask ``kit check`` for: its options, and how they travel into the sandbox."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit.errors import ConfigError

TAKE_S = 60.0
"""The normal check's take: long enough to fit the mic's drift to a few ppm."""
FIELD_TAKE_S = 300.0
"""``--field``: five minutes, long enough for the board to warm up under load."""
FSYNC_COUNT = 100
"""Enough for a median and a p95; the p99 of 100 is little more than the slowest one."""
FIELD_FSYNC_COUNT = 1000
"""``--field``: a p99 of ten slow pieces, and 64 MB written, past a card's write cache."""
CLAP_S = 8.0
"""Time to read the prompt, pick up the phone or the flash, and clap once."""


@dataclass(frozen=True)
class CheckOptions:
    """What the person asked ``kit check`` for (its command-line options)."""

    field: bool = False
    take_s: float | None = None  # None: TAKE_S, or FIELD_TAKE_S with --field
    fsync_count: int | None = None  # None: FSYNC_COUNT, or FIELD_FSYNC_COUNT with --field
    av_clap: bool = False
    clap_s: float = CLAP_S
    sandbox: bool = True
    in_sandbox: str | None = None  # set by the sandboxed run: the unit file it came from
    unit_file: Path | None = None
    forward: tuple[str, ...] = ()  # --config, --data, -v: passed on to the sandboxed run

    @property
    def take_seconds(self) -> float:
        if self.take_s is not None:
            return self.take_s
        return FIELD_TAKE_S if self.field else TAKE_S

    @property
    def fsync_pieces(self) -> int:
        if self.fsync_count is not None:
            return self.fsync_count
        return FIELD_FSYNC_COUNT if self.field else FSYNC_COUNT

    def settings(self) -> dict[str, Any]:
        """The options as the report records them."""
        return {
            "field": self.field,
            "take_s": self.take_seconds,
            "fsync_count": self.fsync_pieces,
            "av_clap": self.av_clap,
            "sandboxed": self.in_sandbox is not None,
        }

    def sandboxed_command(self, python: str, unit_file: Path) -> list[str]:
        """This check again, for the run inside the sandbox: its JSON on stdout."""
        argv = [python, "-m", "kit", "check", "--no-sandbox", "--in-sandbox", str(unit_file)]
        argv += ["--json", "-", "--take-seconds", f"{self.take_seconds:g}"]
        argv += ["--fsync-count", str(self.fsync_pieces)]
        if self.field:
            argv.append("--field")
        if self.av_clap:
            argv += ["--av-clap", "--clap-seconds", f"{self.clap_s:g}"]
        return [*argv, *self.forward]


def options_from_args(args: argparse.Namespace) -> CheckOptions:
    """The options of ``kit check``'s command line (see kit/cli.py)."""
    if args.fsync_count is not None and args.fsync_count < 0:
        raise ConfigError(f"--fsync-count must be 0 or more, got {args.fsync_count}")
    forward: list[str] = []
    # Absolute: the sandboxed run starts in its own runtime directory.
    if getattr(args, "config", None):
        forward += ["--config", str(Path(args.config).resolve())]
    if getattr(args, "data", None):
        forward += ["--data", str(Path(args.data).resolve())]
    if getattr(args, "verbose", False):
        forward.append("-v")
    return CheckOptions(
        field=args.field,
        take_s=args.take_seconds,
        fsync_count=args.fsync_count,
        av_clap=args.av_clap,
        clap_s=args.clap_seconds,
        sandbox=not args.no_sandbox,
        in_sandbox=args.in_sandbox,
        unit_file=args.unit,
        forward=tuple(forward),
    )
