"""The kit's one button and one LED (gpiozero), and the LED's patterns.

The patterns are pure data: one per state, told apart across a room without
reading anything; recording while the previous take's film is still being made
has a pattern of its own, so both show. The button only posts a press (or, held down for
``privacy.discard_hold_s``, a discard); it never does work itself.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class Light(StrEnum):
    """What the LED is showing."""

    READY = "ready"  # slow breathe
    RECORDING = "recording"  # solid
    # Solid with a short dark blink every second: recording, and a film is still being
    # made meanwhile (the previous take's, or the visit's rough cut).
    RECORDING_BUSY = "recording_busy"
    BUSY = "busy"  # fast blink: finalising or cutting
    LOW_STORAGE = "low_storage"  # double blink
    ERROR = "error"  # long on, three quick flashes
    OFF = "off"


STEP_S = 0.05
"""The LED's update period."""


def _breathe(period_s: float = 3.2) -> tuple[tuple[float, float], ...]:
    """Fade up and down over ``period_s``, then rest dark a moment."""
    ramp = [i / 15 for i in range(16)]
    step = period_s / 2 / len(ramp) / 1.25
    return (
        *((round(b, 2), step) for b in ramp),
        *((round(b, 2), step) for b in reversed(ramp)),
        (0.0, period_s / 5),
    )


# (brightness 0..1, seconds) steps, repeated.
PATTERNS: dict[Light, tuple[tuple[float, float], ...]] = {
    Light.READY: _breathe(),
    Light.RECORDING: ((1.0, 1.0),),
    # Mostly on, so it still reads "recording" across a room; one dark dip a second tells
    # it from solid, and 0.8 s on from the fast blink (0.1 s) and the error (three flashes).
    Light.RECORDING_BUSY: ((1.0, 0.8), (0.0, 0.2)),
    Light.BUSY: ((1.0, 0.1), (0.0, 0.1)),
    Light.LOW_STORAGE: ((1.0, 0.15), (0.0, 0.15), (1.0, 0.15), (0.0, 1.05)),
    Light.ERROR: (
        (1.0, 0.9),
        (0.0, 0.15),
        (1.0, 0.1),
        (0.0, 0.15),
        (1.0, 0.1),
        (0.0, 0.15),
        (1.0, 0.1),
        (0.0, 0.75),
    ),
    Light.OFF: ((0.0, 1.0),),
}


def pattern_values(light: Light, step_s: float = STEP_S) -> Iterator[float]:
    """The LED's brightness every ``step_s``, forever."""
    steps = [
        value
        for brightness, seconds in PATTERNS[light]
        for value in [brightness] * max(1, round(seconds / step_s))
    ]
    return itertools.cycle(steps)


class Panel:
    """A gpiozero Button and PWMLED; ``pin_factory`` None means gpiozero's default."""

    def __init__(
        self,
        button_pin: int,
        led_pin: int,
        on_press: Callable[[], None],
        *,
        on_hold: Callable[[], None] | None = None,
        hold_s: float = 3.0,
        bounce_s: float | None = 0.05,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import PWMLED, Button

        self._button = Button(
            button_pin,
            pull_up=True,
            bounce_time=bounce_s,
            hold_time=hold_s,
            pin_factory=pin_factory,
        )
        self._button.when_pressed = on_press
        # Held down (the family asked to stop and discard): once per hold, not repeated.
        if on_hold is not None:  # gpiozero warns (CallbackSetToNone) when set to None
            self._button.when_held = on_hold
        self._led = PWMLED(led_pin, pin_factory=pin_factory)
        self._led.source_delay = STEP_S
        self._light: Light | None = None

    @property
    def light(self) -> Light | None:
        return self._light

    def show(self, light: Light) -> None:
        if light == self._light:
            return
        self._light = light
        self._led.source = pattern_values(light)

    def close(self) -> None:
        self._led.source = None
        self._led.close()
        self._button.close()
