"""The Python packages the image installs: pinned, and exactly what ``kit check`` needs.

``kit check`` runs ``pytest -m pi`` on the kit, and pytest imports every test
module before it selects by marker: a module importing at its top a package
the image lacks fails the whole run. So the ``check`` extra of pyproject.toml
(what the image installs beside the kit) must hold exactly what test modules
import at their top beyond the kit's own dependencies; and
image-build/constraints.txt must pin every one of them, at versions that
satisfy pyproject, with numpy held to Debian bookworm's own. The chroot test
(test_image_root.py) then installs exactly these and collects the suite.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "image-build" / "constraints.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
FIRST_PARTY = {"kit", "web", "tests"}
# Always needed to collect: pytest itself (and so named in the extra).
COLLECTOR = {"pytest"}


def canonical(name: str) -> str:
    return canonicalize_name(name)


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a constraints file, by canonical name."""
    found = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"constraints.txt: not NAME==VERSION: {raw!r}"
        name = canonical(match[1])
        assert name not in found, f"constraints.txt pins {name} twice"
        found[name] = match[2]
    return found


def requirements(group: str) -> list[Requirement]:
    """pyproject's dependencies (``group="main"``), an extra, or the build requirements."""
    if group == "main":
        entries = PYPROJECT["project"]["dependencies"]
    elif group == "build":
        entries = PYPROJECT["build-system"]["requires"]
    else:
        entries = PYPROJECT["project"]["optional-dependencies"][group]
    return [Requirement(entry) for entry in entries]


def test_every_line_is_an_exact_pin() -> None:
    assert pins(CONSTRAINTS.read_text())


@pytest.mark.parametrize("group", ["main", "check", "build"])
def test_what_the_image_installs_is_pinned_within_pyproject(group: str) -> None:
    pinned = pins(CONSTRAINTS.read_text())
    for req in requirements(group):
        name = canonical(req.name)
        assert name in pinned, f"{req} ({group}) is not pinned in image-build/constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]}, pyproject asks {req}"
        )


def test_numpy_stays_below_2() -> None:
    """picamera2 and simplejpeg (Raspberry Pi OS's) are built against numpy 1.x."""
    assert int(pins(CONSTRAINTS.read_text())["numpy"].split(".")[0]) == 1


def _host_codename() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r"^VERSION_CODENAME=(\S+)$", text, re.M)
    return match[1] if match else ""


def test_the_numpy_pin_is_bookworms_python3_numpy() -> None:
    """Asked of this machine's apt, when it is bookworm (the chroot test asks in any case)."""
    if _host_codename() != "bookworm":
        pytest.skip("this machine is not Debian bookworm (test_image_root.py checks in its chroot)")
    done = subprocess.run(
        ["apt-cache", "policy", "python3-numpy"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    candidate = re.search(r"Candidate: (?:\d+:)?([0-9.]+)-", done.stdout)
    if candidate is None:
        pytest.skip(f"apt knows no python3-numpy here: {done.stdout or done.stderr}")
    assert pins(CONSTRAINTS.read_text())["numpy"] == candidate[1]


# --- what collecting the suite imports ------------------------------------------------------


def _guarded(node: ast.Try) -> bool:
    """A try whose handler catches a failed import (so a missing package is tolerated)."""
    names: set[str] = set()
    for handler in node.handlers:
        kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {k.id for k in kinds if isinstance(k, ast.Name)}
        if handler.type is None:
            return True
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: Iterable[ast.stmt]) -> Iterator[str]:
    """Top-level package names a module imports when it is imported."""
    for node in body:
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]
        elif isinstance(node, ast.If) and not _type_checking(node):
            yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try) and not _guarded(node):
            yield from _top_level_imports(node.body)


def imported_at_top(folders: Iterable[str]) -> dict[str, set[str]]:
    """Third-party import names -> the files (relative) importing them at their top."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for name in _top_level_imports(tree.body):
                if name in sys.stdlib_module_names or name in FIRST_PARTY:
                    continue
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def _closure(reqs: Iterable[Requirement]) -> set[str]:
    """The distributions ``reqs`` install, their dependencies included (as installed here)."""
    seen: set[str] = set()
    todo = [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            more = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for entry in more:
            sub = Requirement(entry)
            if sub.marker is None or sub.marker.evaluate({"extra": ""}):
                todo.append(sub)
    return seen


@functools.cache
def _packages_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def _distributions_of(import_name: str) -> set[str]:
    dists = _packages_distributions().get(import_name, [])
    return {canonical(d) for d in dists}


def test_the_check_extra_is_exactly_what_collecting_the_suite_needs() -> None:
    main = _closure(requirements("main"))
    check = {canonical(r.name) for r in requirements("check")}
    # What kit/ and web/ import at their top must come with the kit itself.
    for name, files in imported_at_top(["kit", "web"]).items():
        dists = _distributions_of(name)
        assert dists & main, (
            f"{name} ({dists or 'not installed'}) is imported at the top of {sorted(files)}, "
            "and is not a dependency of the kit"
        )
    needed: dict[str, set[str]] = {}
    for name, files in imported_at_top(["tests"]).items():
        dists = _distributions_of(name)
        assert dists, f"{name}, imported at the top of {sorted(files)}, is not installed here"
        if not dists & main:
            for dist in dists:
                needed.setdefault(dist, set()).update(files)
    installs = _closure(requirements("check"))
    missing = {d: sorted(f) for d, f in needed.items() if d not in installs}
    assert missing == {}, (
        "`kit check` on a kit could not collect these test modules: add the package to "
        "pyproject's [check] extra and image-build/constraints.txt, or import it inside "
        f"the tests that use it: {missing}"
    )
    unneeded = check - set(needed) - COLLECTOR
    assert unneeded == set(), f"[check] holds what no test module imports at its top: {unneeded}"
