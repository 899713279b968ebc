"""The ``kit`` command: run the daemon, record headless, recover, check, cut, benchmark, and
take visits off the kit (export, verify, decrypt, offload).

Exit codes: 0 done; 1 the kit refused or failed (the reason on stderr);
2 a usage error (bad arguments); 3 a bundle that does not verify; 75 a
temporary failure of `kit offload` (the network): run it again, it resumes.
Results go to stdout (``--json -`` writes JSON there), everything else to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kit import __version__
from kit.clock import NS_PER_S, MonotonicClock
from kit.config import Config, load_config
from kit.errors import KitError
from kit.logs import setup_logging
from kit.progress import ProgressLine

log = logging.getLogger("kit")

EXIT_OK = 0
EXIT_FAILED = 1  # the kit refused or failed: a KitError, a take with no film, damage
EXIT_USAGE = 2  # argparse's own code for bad arguments
EXIT_NOT_VERIFIED = 3  # `kit verify`: the bundle is not whole, or not the kit's


def _write_json(target: Path, value: Any) -> None:
    """``value`` as JSON to the file ``target``, or to stdout for ``-``."""
    text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if str(target) == "-":
        sys.stdout.write(text)
        return
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise KitError(f"cannot write {target}: {exc.strerror}") from None


def _tag_at(text: str) -> Any:
    from kit.recording.headless import TagAt

    seconds, _, label = text.partition(":")
    try:
        value = float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--tag-at takes SECONDS[:LABEL], e.g. 12.5:Guiding; got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"--tag-at seconds must be 0 or more, got {seconds!r}")
    return TagAt(value, label.strip() or "better than usual")


def _seconds(text: str) -> float:
    """A length in seconds: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _port(text: str) -> int:
    """A TCP port, or 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free one), got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="config file (default: $KIT_CONFIG or /etc/kit/kit.toml)"
    )
    p.add_argument("--data", type=Path, help="data directory (default: storage.data_dir)")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def _add_sim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulate", action="store_true", help="simulated camera and microphone")
    p.add_argument("--sim-mic-skew-ppm", type=float, help="the simulated mic's clock error")
    p.add_argument("--sim-mic-latency-ms", type=float, help="the simulated mic's start latency")
    p.add_argument("--width", type=int, help="video width")
    p.add_argument("--height", type=int, help="video height")
    p.add_argument("--fps", type=int, help="video frame rate")


def _add_check_options(p: argparse.ArgumentParser) -> None:
    """``kit check``'s options (kit/check/run.py: options_from_args reads them)."""
    _add_common(p)
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the report as JSON (- : stdout)"
    )
    p.add_argument(
        "--field",
        action="store_true",
        help="field-trial figures: a 5-minute take, 1000 fsyncs (see --take-seconds)",
    )
    p.add_argument(
        "--take-seconds",
        type=_seconds,
        metavar="S",
        help="length of the measured take (default 60; 300 with --field)",
    )
    p.add_argument(
        "--fsync-count",
        type=int,
        metavar="N",
        help="64 KiB write+fsync pieces to time (default 100; 1000 with --field)",
    )
    p.add_argument(
        "--av-clap",
        action="store_true",
        help="measure the A/V offset: clap once with a flash in front of the kit when told",
    )
    p.add_argument(
        "--clap-seconds", type=_seconds, default=8.0, metavar="S", help=argparse.SUPPRESS
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help="check outside the kit service's sandbox (by default: inside it, via systemd-run)",
    )
    p.add_argument(
        "--unit", type=Path, metavar="FILE", help="the unit whose sandbox to use (kit.service)"
    )
    p.add_argument("--in-sandbox", metavar="UNIT", help=argparse.SUPPRESS)


def _add_handoff_parsers(sub: Any) -> None:
    """The commands that take visits off the kit and check them on the way."""
    visits = sub.add_parser("visits", help="list the visits on this kit")
    _add_common(visits)
    visits.add_argument("--json", type=Path, metavar="FILE", help="write them as JSON (- : stdout)")

    export = sub.add_parser(
        "export", help="write sealed visits as signed bundles into a folder (a stick, a share)"
    )
    _add_common(export)
    export.add_argument("visit", nargs="*", help="visit ids (default: every sealed visit)")
    export.add_argument("--to", type=Path, required=True, help="the folder to write them into")
    export.add_argument(
        "--fat32", action="store_true", help="split files over 4 GiB (a FAT32 stick)"
    )

    off = sub.add_parser(
        "offload",
        help="send bundles to the organisation's storage through rclone (from a laptop)",
    )
    off.add_argument("source", type=Path, help="a bundle's folder, or a folder of bundles")
    off.add_argument(
        "--to", required=True, metavar="REMOTE:PATH", help="an rclone remote and folder"
    )
    off.add_argument("--rclone", default="rclone", help="the rclone program (default: on PATH)")
    off.add_argument("--rclone-config", metavar="FILE", help="rclone's config file")
    off.add_argument(
        "--json", type=Path, metavar="FILE", help="write the report as JSON (- : stdout)"
    )
    off.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    ver = sub.add_parser("verify", help="check a bundle: its signature and every file's hash")
    ver.add_argument("bundle", type=Path, help="a bundle's folder or .tar, or a folder of them")
    ver.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="KIT",
        help="a kit's public key or fingerprint to accept (repeatable; default: any kit)",
    )
    ver.add_argument(
        "--json", type=Path, metavar="FILE", help="write the report as JSON (- : stdout)"
    )
    ver.add_argument("-v", "--verbose", action="store_true", help="log debug messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="record one take without the daemon; prints the MP4 path")
    _add_common(rec)
    _add_sim(rec)
    rec.add_argument("--seconds", type=_seconds, required=True, help="length of the take")
    rec.add_argument("--case-ref", default="", help="the new visit's case reference")
    rec.add_argument(
        "--consent-by",
        metavar="ROLE",
        help="who gave consent: parent, carer, guardian, young person or other (no name)",
    )
    rec.add_argument(
        "--purpose",
        action="append",
        default=[],
        metavar="PURPOSE",
        help="a purpose the family agreed to: review, supervision, training (repeatable)",
    )
    rec.add_argument(
        "--erase-by",
        metavar="DATE",
        help="the date the visit is erased (YYYY-MM-DD; default: privacy.erase_after_days on)",
    )
    rec.add_argument(
        "--recipient",
        action="append",
        default=[],
        metavar="AGE_PUBLIC_KEY",
        help="the organisation's public key (age1...; repeatable; default: privacy.recipients)",
    )
    rec.add_argument(
        "--tag-at",
        type=_tag_at,
        action="append",
        default=[],
        metavar="SECONDS[:LABEL]",
        help="tag a moment (repeatable)",
    )

    cut = sub.add_parser("cut", help="make a visit's rough cut (film, stills, exports)")
    _add_common(cut)
    cut.add_argument("visit", help="visit id")
    cut.add_argument("--lead", type=float, help="seconds before each tag (default: cut.lead_s)")
    cut.add_argument("--lag", type=float, help="seconds after each tag (default: cut.lag_s)")

    recover = sub.add_parser("recover", help="finalise takes a crash or power cut left unfinished")
    _add_common(recover)

    run = sub.add_parser("run", help="run the kit daemon (button, LED, phone page)")
    _add_common(run)
    _add_sim(run)
    run.add_argument("--port", type=_port, help="web port (default: web.port; 0: any free one)")

    check = sub.add_parser("check", help="hardware self-test of a real kit; prints a report")
    _add_check_options(check)

    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    bench.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    keys = sub.add_parser("keys", help="organisation keys: `kit keys new --out FILE`")
    keys.add_argument("action", choices=["new"], help="new: make an organisation key pair")
    keys.add_argument("--out", type=Path, required=True, help="where to write the private key")
    keys.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    dec = sub.add_parser(
        "decrypt", help="decrypt sealed visits with the organisation's key (on a laptop)"
    )
    dec.add_argument(
        "source",
        type=Path,
        help="a bundle (its folder or .tar), a folder of bundles (a USB stick), "
        "a kit data directory, or one visit's directory",
    )
    dec.add_argument("--key", type=Path, required=True, help="the organisation's private key file")
    dec.add_argument("--out", type=Path, required=True, help="where to write the plain files")
    dec.add_argument(
        "--kit-layout",
        action="store_true",
        help="write the kit's own layout (visits/<id>/...) instead of editor-ready folders",
    )
    dec.add_argument("-v", "--verbose", action="store_true", help="log debug messages")

    _add_handoff_parsers(sub)

    audit = sub.add_parser("audit", help="the audit trail: check that no entry was altered")
    audit.add_argument("action", choices=["verify"], help="verify: check the whole chain")
    _add_common(audit)

    cfg = sub.add_parser("config", help="print the effective configuration as TOML-like JSON")
    _add_common(cfg)
    _add_first_boot_parser(sub)
    return parser


def _add_first_boot_parser(sub: Any) -> None:
    from kit.provision.wifi import DEFAULT_WIFI_FILE

    boot = sub.add_parser(
        "first-boot",
        help="make the kit's secrets (once) and its label (label.png, label.pdf) in its data",
    )
    _add_common(boot)
    boot.add_argument(
        "--wifi-file",
        type=Path,
        default=DEFAULT_WIFI_FILE,
        help=f"the hotspot's network name and passphrase (default: {DEFAULT_WIFI_FILE})",
    )
    boot.add_argument("--name", help="the kit's name on the label (default: its network name)")


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    o: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            o.setdefault(section, {})[key] = value

    put("storage", "data_dir", str(args.data) if getattr(args, "data", None) else None)
    put("sim", "mic_skew_ppm", getattr(args, "sim_mic_skew_ppm", None))
    put("sim", "mic_latency_ms", getattr(args, "sim_mic_latency_ms", None))
    put("camera", "width", getattr(args, "width", None))
    put("camera", "height", getattr(args, "height", None))
    put("camera", "fps", getattr(args, "fps", None))
    put("cut", "lead_s", getattr(args, "lead", None))
    put("cut", "lag_s", getattr(args, "lag", None))
    put("privacy", "recipients", getattr(args, "recipient", None) or None)
    return o


def _hardware(config: Config, simulate: bool, clock: MonotonicClock) -> Any:
    from kit.hardware import factory

    if simulate or not factory.is_raspberry_pi():
        if not simulate:
            log.warning("not a Raspberry Pi: using the simulated camera and microphone")
        return factory.simulated_hardware(config, clock)
    return factory.pi_hardware(config, clock)


def _cmd_record(args: argparse.Namespace, config: Config) -> int:
    from kit.compose import Cutting, compose
    from kit.recording.headless import record_take
    from kit.system import boot_id

    if args.seconds <= 0:
        raise KitError("--seconds must be positive")
    clock = MonotonicClock()
    hardware = _hardware(config, args.simulate, clock)
    kit = compose(config, hardware, clock, boot_id=boot_id(), cutting=Cutting.NONE)
    interrupt = threading.Event()
    cut = None
    signal.signal(signal.SIGINT, lambda *_: interrupt.set())
    signal.signal(signal.SIGTERM, lambda *_: interrupt.set())
    try:
        consent = None
        if kit.library.open_visit() is None:
            consent = _consent(args, kit)
        result = record_take(
            kit,
            seconds=args.seconds,
            tags=args.tag_at,
            case_ref=args.case_ref,
            consent=consent,
            interrupt=interrupt,
        )
        if result.tags and result.mp4:
            cut = _cut(kit.store, result.visit.id, config)
        sealed = kit.library.seal_ended()  # a visit of its own ends, cut, sealed
    finally:
        kit.close()
    take, stats = result.take, result.stats
    print(f"visit {result.visit.id} ({result.visit.case_ref}): take {take.seq}")
    if stats is not None:
        print(
            f"take {take.id}: {take.state}, {take.video_frames} frames, "
            f"{take.duration_ns / NS_PER_S:.3f} s, dropped {stats.dropped_frames}, "
            f"mic overflows {stats.mic_overflows}, mic skew {take.audio_skew_ppm or 0:+.1f} ppm"
        )
    if not result.mp4:
        print(f"error: take {take.id} produced no film: {take.error}", file=sys.stderr)
        return 1
    if cut is not None:
        _print_cut(cut)
    if any(v.id == result.visit.id for v in sealed):
        print(f"visit {result.visit.id} is sealed: `kit decrypt` with the organisation's key")
    print(result.mp4)
    return 0


def _consent(args: argparse.Namespace, kit: Any) -> Any:
    """The family's consent from ``kit record``'s flags; a clear refusal without them."""
    missing = [
        flag
        for flag, value in (
            ("--case-ref", args.case_ref),
            ("--consent-by", args.consent_by),
            ("--purpose", args.purpose),
        )
        if not value
    ]
    if missing:
        raise KitError(
            "recording needs the family's consent: give " + ", ".join(missing) + " "
            "(e.g. --case-ref F-0042 --consent-by parent --purpose review --erase-by 2027-01-31)"
        )
    erase_by = args.erase_by or kit.library.consent_form()["erase_by"]
    if not erase_by:
        raise KitError("the kit does not know today's date: give --erase-by YYYY-MM-DD")
    try:
        return kit.library.check_consent(args.consent_by, args.purpose, erase_by)
    except ValueError as exc:
        raise KitError(f"consent: {exc}") from None


def _print_cut(result: Any) -> None:
    if result.film is None:
        print(f"visit {result.visit_id}: no tagged moment in a finished take, nothing to cut")
        return
    clips = len(result.film.clips)
    print(f"rough cut: {clips} clip(s), {result.film.duration_ns / NS_PER_S:.1f} s")
    for still in result.stills:
        print(f"still: {still.path}")
    if result.contact_sheet:
        print(f"contact sheet: {result.contact_sheet}")
    if result.exports:
        e = result.exports
        print(f"exports: {e.otio} {e.edl} {e.csv} {e.vtt}")
    print(f"film: {result.film.path}")


def _cut(store: Any, visit_id: str, config: Config) -> Any:
    from kit.cutting.plan import CutRules
    from kit.cutting.visit import cut_visit

    progress = ProgressLine(f"cutting {visit_id}")
    try:
        return cut_visit(
            store,
            visit_id,
            CutRules.from_config(config.cut),
            progress,
            aac_bitrate=config.audio.aac_bitrate,
        )
    finally:
        progress.done()


def _store(config: Config) -> Any:
    """The data directory, able to read the visits whose keys the kit holds (key_dir)."""
    from kit.crypto.keyring import Keyring
    from kit.store.store import Store

    keyring = Keyring(Path(config.privacy.key_dir))
    return Store(Path(config.storage.data_dir), keyring.get)


def _cmd_cut(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    try:
        _print_cut(_cut(store, args.visit, config))
    finally:
        store.close()
    return 0


def _cmd_recover(args: argparse.Namespace, config: Config) -> int:
    from kit.recording.takes import Finaliser

    store = _store(config)
    try:
        line = ProgressLine("recovering")
        takes = Finaliser(store, aac_bitrate=config.audio.aac_bitrate).recover(
            progress=lambda done, total: line(done / max(1, total), f"{done} of {total} takes")
        )
        line.done()
    finally:
        store.close()
    for take in takes:
        print(f"take {take.id}: {take.state} {take.duration_ns / NS_PER_S:.3f} s {take.error}")
    print(f"recovered {len(takes)} take(s)")
    return 0


def _cmd_run(args: argparse.Namespace, config: Config) -> int:
    from kit.daemon.run import run_daemon

    clock = MonotonicClock()
    return run_daemon(config, _hardware(config, args.simulate, clock), port=args.port)


def _cmd_check(args: argparse.Namespace, config: Config) -> int:
    from kit import check

    return check.main(config, args.json, options=check.options_from_args(args))


BENCHMARKS = {
    "record": "kit.bench.record",
    "tagging": "kit.bench.tagging",
    "cut": "kit.bench.cut",
    "crypto": "kit.bench.crypto",
    "handoff": "kit.bench.handoff",
    "crash": "kit.bench.crash",
    "siege": "kit.bench.siege",
    "load": "kit.bench.load",
}


def _cmd_bench(args: argparse.Namespace, config: Config) -> int:
    import importlib

    module = importlib.import_module(BENCHMARKS[args.name])
    code: int = module.main(args.options)
    return code


def _cmd_keys(args: argparse.Namespace, config: Config) -> int:
    import os
    from datetime import UTC, datetime

    from kit.crypto.keys import new_org_key

    pair = new_org_key()
    created = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KitError(f"{args.out} exists: a key is never overwritten") from None
    except OSError as exc:
        raise KitError(f"cannot write {args.out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(pair.identity_file(created))
    print(f"private key: {args.out} (keep it off the kit, backed up, secret)")
    print(f"public key:  {pair.public}")
    print("put the public key in the kit's /etc/kit/kit.toml:")
    print(f'[privacy]\nrecipients = ["{pair.public}"]')
    return 0


def _cmd_decrypt(args: argparse.Namespace, config: Config) -> int:
    from kit.crypto.decrypt import decrypt, decrypt_for_editing
    from kit.crypto.keys import read_identities

    if not args.source.exists():
        raise KitError(f"no such directory: {args.source}")
    identities = read_identities(args.key)
    if args.kit_layout:
        pairs = [(r, r.directory) for r in decrypt(args.source, identities, args.out)]
    else:
        pairs = decrypt_for_editing(args.source, identities, args.out)
    damaged = 0
    for r, folder in pairs:
        finished = (
            f", {len(r.finished_takes)} unfinished take(s) finished" if r.finished_takes else ""
        )
        print(f"visit {r.visit_id}: {r.files} files, {r.bytes / 1e6:.1f} MB{finished} -> {folder}")
        for problem in r.damaged:
            print(f"  damaged: {problem}", file=sys.stderr)
        damaged += len(r.damaged)
    return EXIT_FAILED if damaged else EXIT_OK


def _cmd_audit(args: argparse.Namespace, config: Config) -> int:
    from kit.audit.log import verify_file
    from kit.store.files import FileLayer

    data = Path(config.storage.data_dir)
    if not data.is_dir():
        raise KitError(f"no data directory {data}")
    verdict = verify_file(FileLayer(data))
    if verdict.intact:
        print(f"audit log: {verdict.entries} entries, the chain is intact")
        return 0
    print(
        f"audit log: entry {verdict.first_bad} is not what was written: {verdict.reason} "
        f"({verdict.entries} entries before it are intact)",
        file=sys.stderr,
    )
    return 1


def _cmd_first_boot(args: argparse.Namespace, config: Config) -> int:
    from kit.provision.firstboot import first_boot, page_url

    report = first_boot(
        Path(config.storage.data_dir),
        args.wifi_file,
        page_url(config.web.port),
        kit_name=args.name,
    )
    for path in report.written:
        print(f"wrote {path}")
    for path in report.kept:
        print(f"kept  {path}")
    print(f"signing key fingerprint: {report.fingerprint}")
    return EXIT_OK


def _cmd_config(args: argparse.Namespace, config: Config) -> int:
    print(json.dumps(config.as_dict(), indent=2))
    return 0


def _cmd_visits(args: argparse.Namespace, config: Config) -> int:
    from kit.crypto.keyring import Keyring
    from kit.store import layout
    from kit.store.database import Database

    # The index alone, beside a running daemon (SQLite's WAL lets it read meanwhile).
    path = Path(config.storage.data_dir) / layout.DATABASE
    if not path.is_file():
        raise KitError(f"no kit data in {config.storage.data_dir}")
    db = Database(path, Keyring(Path(config.privacy.key_dir)).get)
    try:
        rows = []
        for visit in db.visits():
            takes = db.takes(visit.id)
            rows.append(
                {
                    **visit.as_json(),
                    "takes": len(takes),
                    "seconds": round(sum(t.duration_ns for t in takes) / NS_PER_S, 1),
                    "tags": len(db.tags_for_visit(visit.id)),
                }
            )
    finally:
        db.close()
    if args.json is not None:
        _write_json(args.json, {"visits": rows})
        return EXIT_OK
    if not rows:
        print("no visits on this kit", file=sys.stderr)
    for row in rows:
        case = row["case_ref"] or "(sealed)"
        purposes = ",".join(row["consent"]["purposes"]) if row["consent"] else "-"
        print(
            f"{row['id']}  {row['started_wall'][:16] or '?':16}  {row['state']:5}  "
            f"{row['access']:8}  {row['takes']:2} take(s) {row['seconds']:7.1f} s  "
            f"{row['tags']:3} tag(s)  erase by {(row['consent'] or {}).get('erase_by') or '-'}  "
            f"{purposes}  {case}"
        )
    return EXIT_OK


def _cmd_export(args: argparse.Namespace, config: Config) -> int:
    from kit.handoff.bundle import FAT32_MAX_FILE
    from kit.handoff.service import HandOff
    from kit.handoff.signing import Signer
    from kit.store import layout

    if not args.to.is_dir():
        raise KitError(f"{args.to} is not a folder")
    store = _store(config)
    try:
        signer = Signer.load_or_create(store.root / layout.SIGNING_KEY)
        handoff = HandOff(store.db, store.root, signer)
        ids = args.visit or [v.id for v in handoff.ready()]
        if not ids:
            raise KitError("no sealed visit to export (a visit is sealed once it is ended and cut)")
        for visit_id in ids:
            line = ProgressLine(f"exporting {visit_id}")
            try:
                folder, report = handoff.export(
                    visit_id,
                    args.to,
                    max_file_bytes=FAT32_MAX_FILE if args.fat32 else None,
                    progress=line.of_phase,
                )
            finally:
                line.done()
            print(f"{folder}: {report.files} files, {report.bytes / 1e6:.1f} MB, verified")
    finally:
        store.close()
    print(f"signed by kit {signer.fingerprint}")
    return EXIT_OK


def _bundles(path: Path) -> list[Path]:
    from kit.handoff.bundle import MANIFEST

    if path.is_file() or (path / MANIFEST).is_file():
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if (p / MANIFEST).is_file() or p.suffix == ".tar")
        if found:
            return found
    raise KitError(f"{path} is not a bundle, nor a folder of bundles")


def _cmd_verify(args: argparse.Namespace, config: Config) -> int:
    from kit.handoff.verify import verify_bundle

    reports = []
    for bundle in _bundles(args.bundle):
        line = ProgressLine(f"verifying {bundle.name}")
        try:
            reports.append(verify_bundle(bundle, trusted=args.trust, progress=line.of_bytes))
        finally:
            line.done()
    if args.json is not None:
        value = reports[0].as_json() if len(reports) == 1 else [r.as_json() for r in reports]
        _write_json(args.json, value)
    for r in reports:
        if r.ok:
            if args.json is None:
                print(
                    f"{r.path}: verified, {r.files} files, {r.bytes / 1e6:.1f} MB, "
                    f"visit {r.visit_id}, signed by kit {r.fingerprint}"
                )
            continue
        print(f"{r.path}: does NOT verify ({len(r.problems)} problem(s))", file=sys.stderr)
        for problem in r.problems:
            print(f"  {problem}", file=sys.stderr)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_NOT_VERIFIED


def _cmd_offload(args: argparse.Namespace, config: Config) -> int:
    from kit.handoff.offload import main_offload

    line = ProgressLine("offload")
    try:
        if args.json is None or str(args.json) == "-":
            return main_offload(
                str(args.source),
                args.to,
                json_out=args.json is not None,
                rclone=args.rclone,
                config=args.rclone_config,
                progress=line,
            )
        with args.json.open("w", encoding="utf-8") as out:
            return main_offload(
                str(args.source),
                args.to,
                json_out=True,
                rclone=args.rclone,
                config=args.rclone_config,
                progress=line,
                out=out,
            )
    finally:
        line.done()


COMMANDS = {
    "record": _cmd_record,
    "recover": _cmd_recover,
    "run": _cmd_run,
    "config": _cmd_config,
    "bench": _cmd_bench,
    "check": _cmd_check,
    "cut": _cmd_cut,
    "audit": _cmd_audit,
    "keys": _cmd_keys,
    "decrypt": _cmd_decrypt,
    "visits": _cmd_visits,
    "export": _cmd_export,
    "verify": _cmd_verify,
    "offload": _cmd_offload,
    "first-boot": _cmd_first_boot,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits with EXIT_USAGE on bad arguments
    setup_logging(args.verbose)
    try:
        config = load_config(getattr(args, "config", None), overrides=_overrides(args))
        return COMMANDS[args.command](args, config)
    except KitError as exc:
        print(f"kit: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
