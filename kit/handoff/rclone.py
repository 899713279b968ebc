"""rclone as a child process, for ``kit offload``: argv lists, its JSON log read for
progress and errors, its exit codes turned into clear messages, credentials left out.

A remote given as a connection string (``:webdav,url='...',pass=...:path``)
carries its parameters, which may be credentials: they never reach a log or
an error message (:func:`display_remote`), nor does a ``user:pass@`` in a URL.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kit.errors import KitError

log = logging.getLogger(__name__)

EXIT_TEMPORARY = 75  # sysexits' EX_TEMPFAIL: run it again later, it resumes
EXIT_ERROR = 1  # the kit's usual "kit: error:" status (2 is a usage error)

Progress = Callable[[float], None]


class OffloadError(KitError, RuntimeError):
    """rclone could not put a bundle on the remote, or the remote copy stayed wrong.

    ``retryable`` errors (the network, a busy server, a transfer limit) go away
    by running the offload again later; it resumes where it stopped.
    """

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status  # rclone's exit status, if it got that far

    @property
    def exit_code(self) -> int:
        return EXIT_TEMPORARY if self.retryable else EXIT_ERROR


def join_remote(remote: str, name: str) -> str:
    """``remote`` with ``name`` appended as a folder (``org:`` + x is ``org:x``)."""
    return f"{remote}{name}" if remote.endswith(":") else f"{remote.rstrip('/')}/{name}"


def _connection_params(remote: str) -> str:
    """The ``,key=value...`` part of a connection string (``:webdav,url='...':path``), or ""."""
    start = 1 if remote.startswith(":") else 0  # ":backend,..." is a remote made on the fly
    name_end = next((i for i, c in enumerate(remote) if c in ",:" and i >= start), len(remote))
    if name_end == len(remote) or remote[name_end] != ",":
        return ""
    quote = ""
    for i in range(name_end, len(remote)):
        c = remote[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == ":":
            return remote[name_end:i]
    return remote[name_end:]


def display_remote(remote: str) -> str:
    """``remote`` fit for logs: a connection string's parameters (which may hold
    credentials) become ``{…}``."""
    params = _connection_params(remote)
    return remote.replace(params, "{…}") if params else remote


_NETWORK = (
    "connection refused",
    "no such host",
    "i/o timeout",
    "network is unreachable",
    "no route to host",
    "connection reset",
    "tls handshake timeout",
    "temporary failure in name resolution",
)
_STATUS = {  # rclone's documented exit codes
    1: ("rclone refused the command (check the remote and any extra rclone options)", False),
    2: ("rclone failed", False),
    3: ("a folder was not found on the remote", False),
    4: ("a file was not found", False),
    5: ("a temporary error (a busy server or the network): run it again later", True),
    6: ("the remote refused some files", False),
    7: ("a fatal error from the remote (account, quota or permissions)", False),
    8: ("stopped at the --max-transfer limit: run it again to continue", True),
    10: ("stopped at the --max-duration limit: run it again to continue", True),
}
_TIMESTAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)? ")
_URL_LOGIN = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")


@dataclass
class Run:
    status: int
    stdout: str
    errors: list[str]
    stats: dict[str, Any]  # rclone's last statistics (bytes, transfers...), if any


class Rclone:
    """rclone as a child process: argv lists, JSON log, errors with credentials left out."""

    def __init__(self, binary: str, config: Path | None, extra: Sequence[str], remote: str):
        self.binary = binary
        self.common = [*(["--config", str(config)] if config else []), *extra]
        self.config = config
        self.remote = remote
        self._secret = _connection_params(remote)

    def scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "{…}")
        return _URL_LOGIN.sub(r"\1:***@", text)

    def __call__(
        self,
        *args: str,
        on_stats: Progress | None = None,
        stdin: Callable[[IO[bytes]], None] | None = None,
        ok: Sequence[int] = (0,),
    ) -> Run:
        stats_flags = ["--stats", "500ms", "--stats-log-level", "NOTICE"] if on_stats else []
        argv = [self.binary, *args, "--use-json-log", *stats_flags, *self.common]
        log.debug("rclone %s", self.scrub(" ".join(args)))
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise OffloadError(
                f"rclone is not installed (no {self.binary!r} found): install it "
                "(`sudo apt install rclone`, or https://rclone.org/install/), then set up "
                "the organisation's remote with `rclone config`"
            ) from None
        except OSError as exc:
            raise OffloadError(f"cannot run rclone ({self.binary}): {exc.strerror}") from None
        out: list[bytes] = []
        failed: list[BaseException] = []
        run = Run(0, "", [], {})
        with proc:  # closes the pipes
            threads = [threading.Thread(target=_drain, args=(proc.stdout, out))]
            if stdin is not None:
                threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin, failed)))
            for t in threads:
                t.start()
            try:
                assert proc.stderr is not None
                for raw in proc.stderr:
                    self._log_line(raw.decode(errors="replace"), run, on_stats)
            except BaseException:
                proc.kill()  # interrupted (Ctrl-C, a callback raising): never leave rclone running
                raise
            finally:
                run.status = proc.wait()
                for t in threads:
                    t.join()
        if failed:
            raise OffloadError(f"cannot read a file to send: {failed[0]}")
        run.stdout = b"".join(out).decode(errors="replace")
        if run.status not in ok:
            raise self.error(run)
        if run.status == 0:  # errors rclone got past by retrying: worth a look
            for msg in run.errors:
                log.warning("rclone: %s", msg)
        return run

    def _log_line(self, line: str, run: Run, on_stats: Progress | None) -> None:
        line = line.strip()
        if not line:
            return
        try:
            entry = json.loads(line)
        except ValueError:  # rclone prints its last words as plain text
            entry = {"level": "error", "msg": _TIMESTAMP.sub("", line)}
        if not isinstance(entry, dict):
            return
        if isinstance(stats := entry.get("stats"), dict):
            run.stats = stats
            total = stats.get("totalBytes") or 0
            if on_stats is not None and total > 0:
                on_stats(stats.get("bytes", 0) / total)
            return
        msg = self.scrub(str(entry.get("msg", "")).strip())
        if obj := entry.get("object"):
            msg = f"{self.scrub(str(obj))}: {msg}"
        if entry.get("level") in ("error", "critical", "fatal"):
            run.errors.append(msg)
        log.debug("rclone: %s", msg)

    def error(self, run: Run) -> OffloadError:
        detail = "; ".join(dict.fromkeys(run.errors[-3:])) or "no message"
        where = display_remote(self.remote)
        low = detail.lower()
        if "didn't find section in config file" in low:
            name = self.remote.split(":", 1)[0]
            conf = f" in {self.config}" if self.config else ""
            return OffloadError(
                f"there is no rclone remote called {name!r}{conf}: set it up with "
                "`rclone config` (or give the rclone.conf that has it)",
                status=run.status,
            )
        if any(s in low for s in _NETWORK):
            return OffloadError(
                f"cannot reach {where}: {detail}. Check the network and run it again: "
                "it resumes where it stopped",
                retryable=True,
                status=run.status,
            )
        if run.status < 0:
            return OffloadError(f"rclone was killed (signal {-run.status})", status=run.status)
        what, retryable = _STATUS.get(run.status, (f"rclone failed (status {run.status})", False))
        return OffloadError(f"{where}: {what}: {detail}", retryable=retryable, status=run.status)


def _drain(pipe: IO[bytes] | None, into: list[bytes]) -> None:
    assert pipe is not None
    into.append(pipe.read())


def _feed(
    pipe: IO[bytes] | None, write: Callable[[IO[bytes]], None], failed: list[BaseException]
) -> None:
    assert pipe is not None
    try:
        with pipe:
            write(pipe)
    except BrokenPipeError:
        pass  # rclone gone early (killed, failed): its own status says why
    except OSError as exc:
        failed.append(exc)
