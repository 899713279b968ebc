"""``kit run``: the kit (kit.compose) plus the web server, button, LED, systemd and signals.

Order matters: unfinished takes are recovered before anything else, the web
server and the button come up next, and READY=1 goes to systemd only when the
kit can record. SIGTERM posts a shutdown: a take in progress is stopped, and
the films still being made (its own, and any the finaliser was busy with) are
waited for, within FINALISE_ALLOWANCE_NS; what is left then is finalised at the
next start from its raw streams. In ``--simulate`` mode the button is gpiozero's
MockFactory and SIGUSR1 presses it (press and release), SIGUSR2 holds it
down for the discard, so tests and demos drive the very same button path as
a real kit.
"""

from __future__ import annotations

import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from kit.clock import NS_PER_S, Clock, MonotonicClock
from kit.compose import Kit, compose
from kit.config import Config
from kit.crypto.keyring import Keyring
from kit.daemon.api import State
from kit.daemon.events import EventKind
from kit.daemon.memory import trim_periodically, tune_for_hours
from kit.daemon.messages import HardwareProblem, Shutdown, Sweep
from kit.daemon.notify import Notifier, watchdog_interval_ns
from kit.daemon.panel import Panel
from kit.daemon.worker import SHUTDOWN_WAIT_NS, Worker
from kit.errors import ConfigError, KitError
from kit.handoff.usb import FolderSticks
from kit.hardware.camera import CameraBlocked
from kit.hardware.factory import Hardware, is_raspberry_pi
from kit.store import layout
from kit.system import boot_id

log = logging.getLogger(__name__)

# How long finalising may take after SIGTERM (and, at start-up, recovery). Measured: a
# 10-minute 720p take muxes in under 2 s on this project's x86 CI machine; a Pi 4 is
# ~5-10x slower, and hour-long takes are rare; 5 minutes covers an hour on a Pi 4. The
# worker waits SHUTDOWN_WAIT_NS of it for the films being made, then leaves the rest to
# the next start; the margin is for closing the web server, the cutter and the store.
FINALISE_ALLOWANCE_NS = SHUTDOWN_WAIT_NS + 20 * NS_PER_S
RETENTION_PERIOD_S = 3600


def _mock_pin_factory() -> Any:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)


def _press_mock_button(factory: Any, pin: int) -> None:
    mock = factory.pin(pin)
    mock.drive_low()
    mock.drive_high()


def _hold_mock_button(factory: Any, pin: int, hold_s: float) -> None:
    """Hold the mock button down past the discard hold (in a thread: signals return fast)."""

    def hold() -> None:
        mock = factory.pin(pin)
        mock.drive_low()
        time.sleep(hold_s + 0.5)
        mock.drive_high()

    threading.Thread(target=hold, name="hold-button", daemon=True).start()


def run_daemon(config: Config, hardware: Hardware, *, port: int | None = None) -> int:
    """Run the kit until SIGTERM/SIGINT; returns the process exit code."""
    tune_for_hours()  # before the first frame and the threads: see kit.daemon.memory
    clock = MonotonicClock()
    notifier = Notifier.from_environ()
    pin_factory = _mock_pin_factory() if hardware.simulated else None
    gpio = config.gpio
    kit_box: list[Kit] = []

    def on_press() -> None:
        if kit_box:
            kit_box[0].worker.press()

    def on_hold() -> None:
        if kit_box:
            kit_box[0].worker.discard("button")

    panel = _panel(config, on_press, on_hold, pin_factory)
    # On a real kit the visits' keys must live in RAM only (a power cut forgets them).
    keyring = Keyring(Path(config.privacy.key_dir), require_ram=not hardware.simulated)
    kit = compose(config, hardware, clock, boot_id=boot_id(), lights=panel, keyring=keyring)
    kit_box.append(kit)
    _recover(kit, notifier)
    worker = kit.worker

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        # Finalising a long take can outlast TimeoutStopSec: ask systemd for more. Always
        # (an idle kit exits at once anyway): a signal handler must not take the worker's
        # lock, which the interrupted main thread (the worker's) may be holding.
        notifier.extend_timeout(FINALISE_ALLOWANCE_NS)
        worker.post(Shutdown())

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if pin_factory is not None:
        signal.signal(signal.SIGUSR1, lambda *_: _press_mock_button(pin_factory, gpio.button_pin))
        hold = config.privacy.discard_hold_s
        signal.signal(
            signal.SIGUSR2, lambda *_: _hold_mock_button(pin_factory, gpio.button_pin, hold)
        )

    _open_camera(hardware, worker, on_blocked=[kit.close, *([panel.close] if panel else [])])
    _announce_sticks(kit)
    server = _WebServer(config, kit, port)
    server.start()
    worker.begin()
    _housekeeping(worker)
    watchdog = Watchdog(notifier, worker, clock)
    watchdog.start()
    threading.Thread(
        target=_report_status, args=(notifier, worker), name="status", daemon=True
    ).start()
    notifier.ready(f"ready on port {server.port}")
    log.info("kit ready: http://%s:%s/", _display_host(config.web.host), server.port)
    try:
        worker.run()
    finally:
        notifier.stopping("shutting down")
        watchdog.stop()
        server.close()
        kit.close()
        if panel is not None:
            panel.close()
    return 1 if worker.state == State.ERROR else 0


def _recover(kit: Kit, notifier: Notifier) -> None:
    """Finalise what a crash or power cut left, before anything else."""
    if kit.store.db.unfinished_takes():
        # Muxing a long take can outlast TimeoutStartSec: ask for more first.
        notifier.extend_timeout(FINALISE_ALLOWANCE_NS)
        notifier.status("recovering unfinished takes")
    for take in kit.recover():
        log.warning("recovered take %s: %s", take.id, take.state)
    for visit in kit.lost_keys:
        log.warning(
            "visit %s was open when the kit lost power: it is sealed for the organisation",
            visit.id,
        )


def _announce_sticks(kit: Kit) -> None:
    """Say where simulated USB sticks go (made if missing), or that real ones are used."""
    sticks = kit.exports.sticks_source
    if isinstance(sticks, FolderSticks):
        try:
            sticks.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.error("no simulated USB sticks: cannot make %s: %s", sticks.root, exc)
            return
        log.info("simulated USB sticks: every folder in %s is one", sticks.root)
    else:
        log.info("USB sticks: found with lsblk, mounted and ejected through udisks2")
    log.info("the kit signs bundles as %s", kit.handoff.signer.fingerprint)


def _housekeeping(worker: Worker) -> None:
    """Until the worker finishes: retention every hour, freed memory back every minute."""
    threading.Thread(target=_sweep_hourly, args=(worker,), name="retention", daemon=True).start()
    trim_periodically(lambda: worker.finished)


def _sweep_hourly(worker: Worker) -> None:
    """Retention: erase what is due at start-up and then every hour (while idle)."""

    def done() -> bool:
        return worker.finished

    while not done():
        worker.post(Sweep())
        for _ in range(RETENTION_PERIOD_S):
            if done():
                return
            time.sleep(1)


def _allow_many_connections() -> None:
    """Raise the open-files limit to its ceiling (up to what the web server may use):
    every connection a phone, or a stranger, holds open is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = WEB_CONNECTION_LIMIT + 1024 if hard == resource.RLIM_INFINITY else hard
    want = min(want, WEB_CONNECTION_LIMIT + 1024)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _open_camera(hardware: Hardware, worker: Worker, on_blocked: list[Callable[[], None]]) -> None:
    try:
        hardware.camera.open()
    except CameraBlocked:
        # systemd grants device access when it starts the unit: only a new process
        # gets the camera the unit was started too early for. Exit; systemd restarts.
        for close in on_blocked:
            close()
        raise
    except KitError as exc:
        # Stay up: the phone page shows the problem, the LED shows an error, and
        # a press (or Record) retries once the camera is back.
        log.error("the camera is not available: %s", exc)
        worker.post(HardwareProblem(f"camera: {exc}"))


def _panel(
    config: Config, on_press: Callable[[], None], on_hold: Callable[[], None], pin_factory: Any
) -> Panel | None:
    gpio = config.gpio
    try:
        return Panel(
            gpio.button_pin,
            gpio.led_pin,
            on_press,
            on_hold=on_hold,
            hold_s=config.privacy.discard_hold_s,
            bounce_s=gpio.button_bounce_s,
            pin_factory=pin_factory,
        )
    except Exception as exc:  # noqa: BLE001 - no GPIO must not mean no kit: the phone still works
        log.error("the button and LED are unavailable: %s", exc)
        return None


# Connections the phone page serves at once (see _WebServer).
WEB_CONNECTION_LIMIT = 2000
# Eight phones with two tabs each get a live event stream (each holds a server thread),
# and four threads are left for everything else.
WEB_MAX_STREAMS = 16
WEB_THREADS = WEB_MAX_STREAMS + 4
HOTSPOT_ADDRESS = "10.42.0.1"  # NetworkManager's shared-mode address (image-build/)


def _display_host(host: str) -> str:
    """Where a person should point a browser: the hotspot on a kit, this machine elsewhere."""
    if host not in {"0.0.0.0", "::", ""}:  # noqa: S104 - comparing, not binding
        return host
    return HOTSPOT_ADDRESS if is_raspberry_pi() else "127.0.0.1"


class _WebServer:
    """The phone page, served by waitress in its own thread."""

    def __init__(self, config: Config, kit: Kit, port: int | None) -> None:
        _allow_many_connections()

        from web import server
        from web.app import create_app
        from web.pairing import PairingStore

        self._pairing = PairingStore(kit.store.files.path(layout.PAIRING_DATABASE))
        self._app = create_app(
            kit.worker,
            kit.library,
            self._pairing,
            {
                "KIT_DATA_DIR": str(kit.store.root),
                "KIT_DISCARD_S": config.privacy.discard_s,
                "KIT_MAX_STREAMS": WEB_MAX_STREAMS,
            },
            on_phone_time=kit.wall.set_from_phone,
            audit=kit.audit,
            exports=kit.exports,
        )
        where = (config.web.host, config.web.port if port is None else port)
        try:
            self._server = server.create(
                self._app,
                host=where[0],
                port=where[1],
                # Each open event stream holds a thread: WEB_MAX_STREAMS of them at most.
                threads=WEB_THREADS,
                # The app refuses big bodies with a 413; this stops waitress buffering them.
                max_request_body_size=1_000_000,
                # A stranger on the Wi-Fi holding connections open must not crowd out the
                # phones: room for many (waitress's default is 100), idle ones closed
                # after 30 s, poll() rather than select() (which stops at 1,024 fds);
                # web.server caps each address and closes headers that dawdle.
                connection_limit=WEB_CONNECTION_LIMIT,
                channel_timeout=30,
                cleanup_interval=10,
                asyncore_use_poll=True,
                max_request_header_size=64 * 1024,
            )
        except OSError as exc:  # the port in use, or an address this machine does not have
            self._pairing.close()
            raise ConfigError(
                f"cannot serve the phone page on {where[0]}:{where[1]}: {exc}"
            ) from None
        self.port = int(self._server.effective_port)
        base = f"http://{_display_host(config.web.host)}:{self.port}"
        log.info(
            "pair a phone in the next 10 minutes: open %s or type the code %s (the label's)",
            self._pairing.label_link(base),
            self._pairing.label_code,
        )
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        from web import server
        from web.app import shutdown

        shutdown(self._app)  # ends the event streams first
        server.close(self._server, self._thread)
        self._pairing.close()


def status_line(status: dict[str, Any]) -> str:
    """The one-line state systemd shows (``systemctl status kit``)."""
    line = f"{status['state']}, {status['minutes_left']:.0f} min of storage left"
    saving = len(status.get("finalising_take_ids") or ())
    if saving and status["state"] != State.FINALISING:
        line += f", {saving} take{'s' if saving > 1 else ''} being finalised"
    if status.get("low_storage"):
        line += " (low)"
    if status.get("error"):
        line += f"; {status['error']}"
    return line


def _report_status(notifier: Notifier, worker: Worker) -> None:
    """Send systemd a STATUS= line whenever the state, error or storage warning changes."""
    last_id = 0
    last: tuple[Any, ...] = ()
    while not worker.finished:
        for event in worker.events.since(last_id, timeout_s=1.0):
            last_id = event.id
            if event.kind != EventKind.STATUS:
                continue
            data = event.data
            # Minutes left change every tick; only a change of state is news.
            key = (
                data["state"],
                data.get("error"),
                data.get("low_storage"),
                len(data.get("finalising_take_ids") or ()),
            )
            if key != last:
                notifier.status(status_line(data))
                last = key


class Watchdog:
    """Pings systemd's watchdog while the kit is healthy: the worker thread has handled
    an event (it ticks every half second) within the watchdog interval, and no film being
    made in the background is stuck (:meth:`Worker.finalise_stalled`).

    A stuck film stops the pings only while no take records: a restart would cut the
    take being recorded short (the guider may not notice), so it comes once that take
    has stopped. After the restart, recovery makes the stuck film again from its raw
    streams (and finishes the take that stopped meanwhile).
    """

    def __init__(
        self,
        notifier: Notifier,
        worker: Worker,
        clock: Clock,
        interval_ns: int | None = None,
    ) -> None:
        self._notifier = notifier
        self._worker = worker
        self._clock = clock
        self._interval = watchdog_interval_ns() if interval_ns is None else interval_ns
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._said = ""

    def start(self) -> None:
        if self._interval is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        """Ping if the kit is healthy; whether it did."""
        if self._interval is None:
            return False
        worker = self._worker
        quiet = self._clock.now() - worker.heartbeat_ns
        problem = ""
        if quiet >= self._interval:
            problem = f"the worker has been stuck for {quiet / NS_PER_S:.1f} s"
        else:
            stall = worker.finalise_stalled()
            if stall is not None and worker.state != State.RECORDING:
                problem = stall
        if problem:
            if problem != self._said:
                log.error("%s: no more watchdog pings, so systemd restarts the kit", problem)
            self._said = problem
            return False
        self._said = ""
        self._notifier.watchdog()
        return True

    def _run(self) -> None:
        assert self._interval is not None
        period = self._interval / NS_PER_S / 3
        while not self._stop.wait(period):
            if self._worker.finished:
                return
            self.check()
