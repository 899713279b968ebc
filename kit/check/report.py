"""The report ``kit check`` prints and writes as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kit.daemon.health import CheckItem, Level

FIGURE_ITEMS = (
    "fsync",
    "recording",
    "thermal",
    "camera clock",
    "mic drift",
    "a/v clap",
    "hotspot",
    "web port",
)
"""The items whose data are field-trial figures; their keys carry their units (``_ms``, ``_ppm``,
``_c``, ``_percent``) and are unique across items, so ``figures`` holds them all flat."""


@dataclass(frozen=True)
class CheckReport:
    """The outcome of ``kit check``."""

    items: tuple[CheckItem, ...]
    host: str
    checked_at: str  # wall clock, a label only: the Pi has no RTC
    kit_version: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No item failed (warnings and skips are fine)."""
        return all(item.level is not Level.FAIL for item in self.items)

    def item(self, name: str) -> CheckItem:
        """The item called ``name`` (KeyError if there is none)."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {str(level): sum(i.level is level for i in self.items) for level in Level}

    def figures(self) -> dict[str, Any]:
        """Every measured figure, flat: what a field trial collects from each kit."""
        out: dict[str, Any] = {}
        for item in self.items:
            if item.name in FIGURE_ITEMS:
                out.update(item.data)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "host": self.host,
            "checked_at": self.checked_at,
            "kit_version": self.kit_version,
            "settings": dict(self.settings),
            "counts": self.counts(),
            "figures": self.figures(),
            "items": [item.as_dict() for item in self.items],
        }

    def format_text(self) -> str:
        """The readable report: one line per item, then a summary."""
        lines = [format_item(item) for item in self.items]
        lines.append(summary_line(self))
        return "\n".join(lines)


def format_item(item: CheckItem) -> str:
    """``LEVEL name  value  -> hint`` on one line."""
    line = f"{item.level:<4}  {item.name:<12}  {item.value}"
    return f"{line}  -> {item.hint}" if item.hint else line


def summary_line(report: CheckReport) -> str:
    counts = report.counts()
    parts = ", ".join(f"{n} {level}" for level, n in counts.items() if n)
    return f"kit check: {'passed' if report.ok else 'FAILED'} ({parts})"
