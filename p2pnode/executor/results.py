"""Packing a finished task's /results into one tar archive, and unpacking it safely.

The container wrote these files, so nothing in them is trusted: the archive holds
regular files, directories and symlinks only (links are stored as links, never
followed), the total is capped by the slot's storage, and unpacking refuses
absolute paths, '..', links and special files (tarfile's "data" filter).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from p2pnode.errors import LocalError, RemoteError


class ResultsTooLarge(LocalError):
    """/results holds more than the slot's storage allows."""


class ResultsArchiveError(RemoteError):
    """An archive from a supplier is malformed or holds what it must not."""


@dataclass(frozen=True)
class PackedResults:
    path: Path
    size: int
    sha256: bytes
    files: int


def sha256_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.digest()


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        out.extend(base / d for d in dirnames)
        out.extend(base / f for f in sorted(filenames))
    return out


def dir_bytes(root: Path) -> int:
    """What the tree under `root` takes: per entry the larger of its length and its
    allocated blocks, so neither sparse files nor many empty files slip by. Links are
    not followed; 0 when it is gone."""
    total = 0
    for p in _walk(root):
        try:
            st = p.lstat()
        except OSError:
            continue  # removed while we looked
        total += max(st.st_size, st.st_blocks * 512)
    return total


def pack_results(source: Path, archive: Path, *, max_bytes: int) -> PackedResults:
    """Tar `source` (the task's /results) into `archive`; ResultsTooLarge past `max_bytes`
    of file content. Entries are sorted so the same files give the same archive."""
    entries = _walk(source)
    total = 0
    for p in entries:
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
            if total > max_bytes:
                raise ResultsTooLarge(
                    f"/results holds more than the slot's storage allows ({max_bytes} bytes)"
                )
    files = 0
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for p in entries:
            st = p.lstat()
            if not (
                stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)
            ):
                continue  # fifos, sockets: nothing to carry
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(source)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                files += 1
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    tmp.replace(archive)
    return PackedResults(archive, archive.stat().st_size, sha256_file(archive), files)


def unpack_results(archive: Path, dest: Path) -> list[str]:
    """Extract a verified archive into `dest`; the names extracted."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            for m in members:
                if m.issym() or m.islnk():
                    raise ResultsArchiveError(f"results archive: link {m.name!r} refused")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ResultsArchiveError(f"results archive {archive}: {exc}") from None
    return [m.name for m in members]
