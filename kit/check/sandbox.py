"""Run ``kit check`` inside the kit service's own sandbox, so it meets the service's limits.

The service runs as the ``kit`` user with a read-only system, a device
allow-list, a system-call filter and more (systemd/kit.service). A check run
as root outside all that passes where the service fails: a libcamera update
that needs one more device, a file the venv cannot read as ``kit``. So by
default ``kit check`` starts itself again through ``systemd-run --wait
--pipe --collect`` with every ``[Service]`` setting of the installed unit (and
its drop-ins) passed as ``-p`` properties, and reports what that run found.

Passed as they are: everything about the execution environment (user,
groups, umask, nice, environment, the hardening lines, devices). Left out:
what only makes sense for a long-running daemon (:data:`LIFECYCLE`). Renamed:
the runtime directory, so the check gets a ``/run/kit-check`` of its own
instead of sharing, and on exit deleting, the service's ``/run/kit`` (which
holds the open visits' keys).

Only root can start a unit as another user, and only a machine booted with
systemd has a manager to ask; elsewhere :func:`plan` says why, in words for
the report, and the check runs outside the sandbox.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kit.daemon.health import CheckItem, Level

SANDBOX = "sandbox"
UNIT = "kit.service"
INSTALLED_UNIT = Path("/etc/systemd/system") / UNIT
DROP_IN_DIRS = (
    Path("/etc/systemd/system/kit.service.d"),
    Path("/run/systemd/system/kit.service.d"),
)
SYSTEMD_RUNNING = Path("/run/systemd/system")  # exists exactly when systemd is PID 1 (sd_booted)

LIFECYCLE = frozenset(
    {
        "Type",
        "NotifyAccess",
        "ExecStart",
        "ExecStartPre",
        "ExecStartPost",
        "ExecStop",
        "ExecStopPost",
        "ExecReload",
        "WatchdogSec",
        "Restart",
        "RestartSec",
        "RestartPreventExitStatus",
        "RestartForceExitStatus",
        "SuccessExitStatus",
        "TimeoutSec",
        "TimeoutStartSec",
        "TimeoutStopSec",
        "KillMode",
        "RuntimeDirectoryPreserve",
        "PIDFile",
    }
)
"""[Service] settings of a daemon's life, not of its sandbox: a one-shot check leaves them out."""

SERVICE_RUNTIME_DIR = "kit"
CHECK_RUNTIME_DIR = "kit-check"


def parse_unit(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` for every setting of a unit file, in order.

    Comments (``#``, ``;``) and blank lines are skipped; a line ending in a
    backslash continues on the next (joined with a space, as systemd does).
    Keys may repeat (``DeviceAllow=``); an empty value is kept, because it
    resets a list.
    """
    out: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep:
            out.append((section, key.strip(), value.strip()))
    return out


def service_settings(texts: Sequence[str]) -> list[tuple[str, str]]:
    """The ``[Service]`` settings of a unit file and then its drop-ins, in order."""
    return [
        (key, value)
        for text in texts
        for section, key, value in parse_unit(text)
        if section == "Service"
    ]


def sandbox_properties(settings: Sequence[tuple[str, str]]) -> list[str]:
    """``KEY=VALUE`` properties for ``systemd-run -p``: the unit's, minus its lifecycle.

    In order, so an empty assignment in a drop-in resets a list just as it
    does for the service itself.
    """
    service_run = f"/run/{SERVICE_RUNTIME_DIR}"
    check_run = f"/run/{CHECK_RUNTIME_DIR}"
    props = []
    for key, value in settings:
        if key in LIFECYCLE:
            continue
        passed = value
        if key == "RuntimeDirectory":
            passed = " ".join(
                CHECK_RUNTIME_DIR if d == SERVICE_RUNTIME_DIR else d for d in value.split()
            )
        elif key in {"WorkingDirectory", "Environment"}:
            passed = _rebase(value, service_run, check_run)
        props.append(f"{key}={passed}")
    return props


def _rebase(value: str, old: str, new: str) -> str:
    """``value`` with the path ``old`` (as a whole path component) replaced by ``new``."""
    out = []
    for word in value.split(" "):
        name, eq, path = word.rpartition("=") if "=" in word else ("", "", word)
        if path == old or path.startswith(old + "/"):
            path = new + path[len(old) :]
        out.append(f"{name}{eq}{path}")
    return " ".join(out)


def user_of(settings: Sequence[tuple[str, str]]) -> str | None:
    """The ``User=`` the unit runs as (the last one wins), None for root."""
    users = [value for key, value in settings if key == "User"]
    return users[-1] if users and users[-1] else None


def systemd_run_argv(
    properties: Sequence[str],
    command: Sequence[str],
    *,
    unit_name: str,
    environment: Mapping[str, str] | None = None,
    program: str = "systemd-run",
) -> list[str]:
    """The ``systemd-run`` command that runs ``command`` in a transient unit with ``properties``.

    ``--wait`` returns the command's exit code, ``--pipe`` connects its
    stdin, stdout and stderr to ours, ``--collect`` unloads the unit even if
    it failed, ``--quiet`` keeps systemd-run's own chatter out of the report.
    """
    argv = [
        program,
        "--wait",
        "--pipe",
        "--collect",
        "--quiet",
        f"--unit={unit_name}",
        "--description=kit check inside kit.service's sandbox",
    ]
    for prop in properties:
        argv += ["-p", prop]
    for name, value in sorted((environment or {}).items()):
        argv.append(f"--setenv={name}={value}")
    return [*argv, "--", *command]


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True)
class SandboxHost:
    """What deciding on the sandbox looks at: the real machine unless a test says otherwise."""

    unit_files: tuple[Path, ...] = (INSTALLED_UNIT,)
    drop_in_dirs: tuple[Path, ...] = DROP_IN_DIRS
    systemd_running: Path = SYSTEMD_RUNNING
    which: Callable[[str], str | None] = shutil.which
    euid: Callable[[], int] = os.geteuid
    user_exists: Callable[[str], bool] = _user_exists
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class Plan:
    """How to run a command inside the sandbox of the unit found."""

    unit_file: Path
    properties: list[str]
    user: str | None
    program: str
    environment: dict[str, str]

    def argv(self, command: Sequence[str], unit_name: str | None = None) -> list[str]:
        """The ``systemd-run`` argv that runs ``command`` in the sandbox."""
        return systemd_run_argv(
            self.properties,
            command,
            unit_name=unit_name or f"kit-check-{os.getpid()}",
            environment=self.environment,
            program=self.program,
        )


def plan(host: SandboxHost, *, unit_file: Path | None = None) -> Plan | str:
    """The sandbox to run in, or why there can be none here (a sentence for the report).

    ``unit_file`` overrides the unit looked for (by default the installed one,
    then the source tree's); drop-ins are read from ``host.drop_in_dirs``.
    """
    candidates = (unit_file,) if unit_file is not None else host.unit_files
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        where = ", ".join(str(p) for p in candidates) or "nowhere"
        return f"no {UNIT} at {where} (not an installed kit)"
    program = host.which("systemd-run")
    if program is None:
        return "systemd-run is not installed (not a systemd machine)"
    if not host.systemd_running.is_dir():
        return "systemd is not running here (PID 1 is not systemd: a container?)"
    drop_ins = sorted(
        (p for d in host.drop_in_dirs if d.is_dir() for p in d.glob("*.conf")),
        key=lambda p: p.name,
    )
    texts = [found.read_text(encoding="utf-8"), *(p.read_text(encoding="utf-8") for p in drop_ins)]
    settings = service_settings(texts)
    user = user_of(settings)
    if host.euid() != 0:
        return (
            f"only root can start the check as user {user or 'root'} in {UNIT}'s sandbox "
            "(sudo kit check)"
        )
    if user is not None and not host.user_exists(user):
        return f"there is no user {user!r} here (not a kit image)"
    env = {k: v for k, v in host.environ.items() if k.startswith("KIT_")}
    return Plan(found, sandbox_properties(settings), user, program, env)


Launch = Callable[[Sequence[str]], tuple[int, str]]
"""Runs an argv with our stdin and stderr, capturing stdout; returns (exit code, stdout)."""


def launch(argv: Sequence[str]) -> tuple[int, str]:
    """The real :data:`Launch`: the check's lines stream to stderr, its JSON comes back."""
    done = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=None, text=True, check=False)
    return done.returncode, done.stdout


def inside_item(unit_file: str, environ: Mapping[str, str] | None = None) -> CheckItem:
    """The report's line for a check that runs inside the sandbox."""
    env = os.environ if environ is None else environ
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    data = {
        "sandboxed": True,
        "unit_file": unit_file,
        "user": user,
        "invocation_id": env.get("INVOCATION_ID"),
    }
    value = f"inside a transient unit with {unit_file}'s settings, as user {user}"
    return CheckItem(SANDBOX, Level.OK, value, "", data)


def outside_item(reason: str, *, requested: bool, on_pi: bool) -> CheckItem:
    """The report's line for a check that runs outside the sandbox, and why."""
    data = {"sandboxed": False, "reason": reason}
    if not requested:
        value = f"not used (--no-sandbox): {reason}" if reason else "not used (--no-sandbox)"
        return CheckItem(SANDBOX, Level.SKIP, value, "", data)
    hint = "the service's own permission failures (devices, files, system calls) go unseen"
    return CheckItem(
        SANDBOX, Level.WARN if on_pi else Level.SKIP, f"not used: {reason}", hint, data
    )
