"""Compile the hot modules (gossip/_native.py's COMPILED) with mypyc into build/native/.

    .venv/bin/python scripts/build_native.py [--force]

`make install` runs it. Nothing is rebuilt while build/native/ matches the sources. The
sources' hashes are taken before compiling, so a file edited during the build leaves a
build that does not match it and is not used. A new build replaces the old one only
once it is complete. A failed build is reported and the Python sources run (slower),
unless SONM_REQUIRE_NATIVE=1 (CI), where it fails the command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["SONM_PURE_PYTHON"] = "1"  # importing gossip here must not load a build

from gossip import _native  # noqa: E402


def build(force: bool) -> None:
    if not force and _native.check()[0]:
        print("compiled modules: up to date")
        return
    from mypyc.build import mypycify  # the dev extra's mypy; imported late: slow
    from setuptools import setup

    hashes = _native.source_hashes()
    t0 = time.perf_counter()
    out = ROOT / "build"
    out.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="native-", dir=out))
    try:
        os.chdir(ROOT)  # mypy reads pyproject.toml from here
        paths = [str(_native.source_of(m).relative_to(ROOT)) for m in _native.COMPILED]
        exts = mypycify(
            paths,
            opt_level="3",
            group_name=_native.GROUP,
            target_dir=str(work / "c"),
        )
        os.chdir(work)  # away from pyproject.toml: setup() would read the project's config
        setup(
            name="sonm-native",
            ext_modules=exts,
            script_args=[
                "-q",
                "build_ext",
                "--build-lib",
                str(work / "lib"),
                "--build-temp",
                str(work / "tmp"),
                "--parallel",
                str(os.cpu_count() or 2),
            ],
        )
        manifest = {"abi": _native.abi_tag(), "modules": hashes}
        (work / "lib" / _native.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        old = out / "native.old"
        shutil.rmtree(old, ignore_errors=True)
        if _native.BUILD_DIR.exists():
            _native.BUILD_DIR.rename(old)
        (work / "lib").rename(_native.BUILD_DIR)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)
    print(f"compiled modules: {len(_native.COMPILED)} built in {time.perf_counter() - t0:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args()
    try:
        build(args.force)
    except (Exception, SystemExit) as e:  # setuptools reports a failed compile as SystemExit
        if os.environ.get("SONM_REQUIRE_NATIVE", "") not in ("", "0"):
            raise
        traceback.print_exc()
        print(
            f"compiled modules NOT built ({e!r}): the Python sources run, slower. "
            "Needs a C compiler and the Python headers.",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
