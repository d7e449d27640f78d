"""Visitors' saved work: what is kept of a notebook when it is culled, and how it comes back.

What always holds (tests/unit/test_keep.py checks each rule, and hostile homes):
- Only the visitor's own files are kept: regular files under home_dir, not hidden (no dotfiles:
  caches, checkpoints, kernel history), changed since the hand-out (so not the image's material).
  A symbolic link, device or fifo is never followed, read or written: it is named as skipped.
- Every name is checked before anything touches the disk: relative, no `..`, no empty part, no
  control character, valid UTF-8, of sane length. Nothing is ever written outside the visitor's
  own directory of the store, and the store never holds a link.
- The cap is the visitor's total (what was kept before included). What does not fit is named in
  the saved index with its size, never silently dropped.
- The store is `<state_dir>/saved` (0700, the service's own), one directory per resume key,
  named by the key's SHA-256: the key itself is never written anywhere but the visitor's cookie.
- Work is removed `keep_hours` after it was last saved (`sweep`), and with the feature off.

The visitor's browser holds the key (web/visitor.py). A notebook culled again under the same key
merges into what was kept: coming back twice loses nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

KEY_BYTES = 32  # 256 bits; a guess is hopeless
_KEY_FORM = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
_DIGEST_FORM = re.compile(r"[0-9a-f]{64}")
INDEX = "index.json"
FILES = "files"
MAX_ENTRIES = 20_000  # a home with more files is listed this far (the rest is named as skipped)
MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255
# Bytes of tar headers and padding allowed beyond the files' own sizes.
TAR_OVERHEAD_PER_FILE = 1536
_EMPTY_TAR = bytes(1024)  # two zero blocks: the end of an archive with no member


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def valid_key(key: str | None) -> bool:
    return bool(key) and _KEY_FORM.fullmatch(key or "") is not None


def key_digest(key: str) -> str:
    """The key's name on disk and in the proxy's route data; the key cannot be read back from it."""
    return hashlib.sha256(key.encode()).hexdigest()


def valid_digest(digest: str | None) -> bool:
    return bool(digest) and _DIGEST_FORM.fullmatch(digest or "") is not None


# ----- what is in a home, and what of it is kept -----


def listing_command(home: str) -> list[str]:
    """Run in the notebook's container: every entry of the home, hidden ones pruned, as
    `type size mtime path` records separated by NUL (names may hold any byte but NUL and /)."""
    return [
        "find", home, "-mindepth", "1", "-name", ".*", "-prune",
        "-o", "-printf", r"%y %s %T@ %P\0",
    ]  # fmt: skip


def archive_command(home: str, names: Iterable[str]) -> list[str]:
    """Run in the container: an uncompressed tar of these files (checked names, so no option).
    A file gone meanwhile is left out (and named as such by SavedWork.save)."""
    return [
        "tar", "-C", home, "--create", "--file=-", "--no-recursion", "--ignore-failed-read",
        "--", *names,
    ]  # fmt: skip


@dataclass(frozen=True)
class HomeEntry:
    kind: str  # find's %y: f file, d directory, l symbolic link, ...
    size: int
    mtime: float
    name: str


@dataclass(frozen=True)
class Skipped:
    name: str
    size: int
    why: str


@dataclass(frozen=True)
class KeepPlan:
    take: list[HomeEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)  # kept before, no longer within the cap

    @property
    def bytes(self) -> int:
        return sum(entry.size for entry in self.take)


def parse_listing(raw: bytes) -> list[HomeEntry]:
    """The records of `listing_command`; a malformed one is ignored (it came from the visitor's
    container: nothing it says is trusted, only parsed)."""
    entries = []
    for record in raw.split(b"\0")[:MAX_ENTRIES]:
        parts = record.split(b" ", 3)
        if len(parts) != 4:
            continue
        kind, size, mtime, name = parts
        try:
            entries.append(
                HomeEntry(
                    kind.decode("ascii"),
                    int(size),
                    float(mtime),
                    name.decode("utf-8", "surrogateescape"),
                )
            )
        except (UnicodeDecodeError, ValueError):
            continue
    return entries


def name_problem(name: str) -> str | None:
    """Why `name` cannot be kept, or None: the one rule every name passes before disk or zip."""
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if not name or name.startswith("/") or len(encoded) > MAX_NAME_BYTES:
        return "its name is not allowed"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "its name holds a control character"
    parts = name.split("/")
    if any(part in ("", ".", "..") or len(part.encode()) > MAX_PART_BYTES for part in parts):
        return "its name is not allowed"
    if any(part.startswith(".") for part in parts):
        return "hidden files are not kept"
    return None


def plan_keep(
    entries: Iterable[HomeEntry], since: float, cap: int, kept: dict[str, int] | None = None
) -> KeepPlan:
    """Which files of a home to keep: the visitor's own (see the module's rules), notebooks
    first, then the smallest first, within `cap` bytes. The newest work comes first: what was
    kept before (`kept`, name -> bytes) fills the room left, notebooks first, and what no longer
    fits is dropped (`drop`) and named. `since`: the hand-out, as a Unix time."""
    candidates: list[HomeEntry] = []
    skipped: list[Skipped] = []
    for entry in entries:
        problem = name_problem(entry.name)
        if entry.kind == "d" or entry.mtime < since:
            continue  # directories come with their files; what is older is the image's
        if problem is not None:
            skipped.append(Skipped(entry.name, entry.size, problem))
        elif entry.kind == "l":
            skipped.append(Skipped(entry.name, entry.size, "symbolic links are not kept"))
        elif entry.kind != "f":
            skipped.append(Skipped(entry.name, entry.size, "only regular files are kept"))
        else:
            candidates.append(entry)
    take, room = [], cap
    for entry in sorted(candidates, key=lambda e: _priority(e.name, e.size)):
        if entry.size > room:
            skipped.append(Skipped(entry.name, entry.size, "over the size kept per visitor"))
            continue
        room -= entry.size
        take.append(entry)
    taken = {entry.name for entry in take}
    drop = []
    for name, size in sorted((kept or {}).items(), key=lambda item: _priority(*item)):
        if name in taken:
            continue  # replaced by its new version
        if size > room:
            drop.append(name)
            skipped.append(Skipped(name, size, "older work, over the size kept per visitor"))
            continue
        room -= size
    return KeepPlan(take=take, skipped=sorted(skipped, key=lambda s: s.name), drop=drop)


def _priority(name: str, size: int) -> tuple[bool, int, str]:
    return (not name.endswith(".ipynb"), size, name)


def archive_limit(plan: KeepPlan) -> int:
    """The most bytes the container's tar of `plan` may send (a file may grow meanwhile: the
    cap is enforced again on what arrives)."""
    return plan.bytes + TAR_OVERHEAD_PER_FILE * (len(plan.take) + 2) + 10240


class KeyedLocks:
    """One lock per key, alive while anyone holds it or waits for it: the saves of one visitor's
    work take turns, and the sweep leaves alone the work being saved (`busy`)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody holds it, nobody waits: forget it
                del self._users[key], self._locks[key]

    def busy(self) -> frozenset[str]:
        return frozenset(self._users)


# ----- the store -----


@dataclass
class Saved:
    """The index of one visitor's saved work (index.json)."""

    path_id: str  # the notebook it was last kept from
    saved_at: float  # Unix time of the last save
    files: dict[str, int]  # name -> bytes
    skipped: list[dict[str, Any]]

    @property
    def bytes(self) -> int:
        return sum(self.files.values())


class KeepError(Exception):
    """Saved work that cannot be read or written; the message names what, never the key."""


class SavedWork:
    """The store on the node's disk. Blocking file I/O: callers run it in a thread."""

    def __init__(self, root: Path, cap_bytes: int, keep_seconds: float) -> None:
        self.root = root
        self.cap_bytes = cap_bytes
        self.keep_seconds = keep_seconds

    def prepare(self) -> None:
        """Make the store (0700); with the feature off, remove whatever it holds."""
        if self.keep_seconds <= 0:
            if self.root.exists():
                shutil.rmtree(self.root)
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)

    def _dir(self, digest: str) -> Path:
        if not valid_digest(digest):
            raise KeepError("not a key's digest")
        return self.root / digest

    def lookup(self, digest: str, now: float | None = None) -> Saved | None:
        """The visitor's saved work, or None (none, or its time is up)."""
        try:
            raw = json.loads((self._dir(digest) / INDEX).read_text())
            saved = Saved(**raw)
        except (OSError, ValueError, TypeError, KeepError):
            return None
        if (now if now is not None else time.time()) >= saved.saved_at + self.keep_seconds:
            return None
        return saved if saved.files else None  # no file kept: nothing to offer

    def save(
        self, digest: str, path_id: str, plan: KeepPlan, archive: IO[bytes] | None, *,
        now: float | None = None,
    ) -> Saved:  # fmt: skip
        """Keep the files of `plan` from `archive` (the container's tar, untrusted: only regular
        members named in the plan are read, each within the cap), merged into what this visitor
        kept before. Each file and the index are written whole, then renamed into place."""
        home = self._dir(digest)
        previous = self.lookup(digest, now)
        if previous is None:  # nothing kept, or its time is up: what the folder holds is stale
            _remove(home)
            previous = Saved(path_id, 0, {}, [])
        wanted = {entry.name for entry in plan.take}
        files = dict(previous.files)
        home.mkdir(mode=0o700, exist_ok=True)
        for name in plan.drop:  # the newest work needed their room
            if files.pop(name, None) is not None and not name_problem(name):
                _unlink_below(home / FILES, name)
        skipped = {item.name: asdict(item) for item in plan.skipped}
        total = sum(files.values())
        try:
            with tarfile.open(fileobj=archive or io.BytesIO(_EMPTY_TAR), mode="r|") as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if name not in wanted or not member.isreg() or name_problem(name):
                        continue
                    wanted.discard(name)
                    after = total - files.get(name, 0) + member.size
                    if after > self.cap_bytes:
                        skipped[name] = asdict(
                            Skipped(name, member.size, "over the size kept per visitor")
                        )
                        continue
                    source = tar.extractfile(member)
                    if source is None:
                        continue
                    _write_file(home / FILES, name, source, member.mtime)
                    files[name], total = member.size, after
        except (tarfile.TarError, EOFError) as error:
            raise KeepError(f"the notebook's archive could not be read: {error}") from None
        for name in wanted:  # listed, then gone (or changed type) before the archive
            skipped.setdefault(name, asdict(Skipped(name, 0, "it was gone when saved")))
        for name in files:
            skipped.pop(name, None)
        saved = Saved(
            path_id=path_id,
            saved_at=now if now is not None else time.time(),
            files=files,
            skipped=sorted(skipped.values(), key=lambda item: item["name"]),
        )
        _write_whole(home / INDEX, json.dumps(asdict(saved), indent=1).encode())
        return saved

    def restore_archive(self, digest: str, target: IO[bytes]) -> None:
        """Write a tar of the visitor's files, to unpack into a new notebook's home (names checked
        again; only regular files, with their times). Callers pass a temporary file: the work
        may be keep_max_mb, which the orchestrator does not hold in memory."""
        self._pack(digest, _tar_of, target)

    def download(self, digest: str, target: IO[bytes]) -> None:
        """Write the visitor's files as a zip, with a note naming what was not kept."""
        self._pack(digest, _zip_of, target)

    def _pack(
        self, digest: str, pack: Callable[[Path, list[str], Saved, IO[bytes]], None],
        target: IO[bytes],
    ) -> None:  # fmt: skip
        saved = self.lookup(digest)
        if saved is None:
            raise KeepError("no saved work")
        pack(self._dir(digest) / FILES, sorted(saved.files), saved, target)

    def sweep(self, now: float | None = None, busy: frozenset[str] = frozenset()) -> int:
        """Remove the work whose time is up (and anything in the store that is not work), but
        for the `busy` digests, being saved now (a first save has files before its index)."""
        removed = 0
        moment = now if now is not None else time.time()
        with contextlib.suppress(FileNotFoundError):
            for entry in self.root.iterdir():
                if entry.name in busy:
                    continue
                if valid_digest(entry.name) and self.lookup(entry.name, moment) is not None:
                    continue
                _remove(entry)
                removed += 1
        return removed

    def forget(self, digest: str) -> None:
        _remove(self._dir(digest))

    def stats(self, now: float | None = None) -> tuple[int, int, float | None]:
        """(visitors with saved work, their bytes, the oldest save's Unix time)."""
        count, size, oldest = 0, 0, None
        with contextlib.suppress(FileNotFoundError):
            for entry in self.root.iterdir():
                saved = self.lookup(entry.name, now) if valid_digest(entry.name) else None
                if saved is not None:
                    count, size = count + 1, size + saved.bytes
                    oldest = saved.saved_at if oldest is None else min(oldest, saved.saved_at)
        return count, size, oldest


def _open_below(root: Path, name: str) -> tuple[int, str]:
    """A directory descriptor for the parent of `name` under `root`, made as needed, never
    following a link: (fd, last part). `name` passed name_problem."""
    root.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    *parents, last = name.split("/")
    try:
        for part in parents:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, last


def _write_file(root: Path, name: str, source: IO[bytes], mtime: float) -> None:
    fd, last = _open_below(root, name)
    partial = f".partial-{secrets.token_hex(4)}"
    try:
        out = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                      dir_fd=fd)  # fmt: skip
        with os.fdopen(out, "wb") as target:
            shutil.copyfileobj(source, target)
        os.utime(partial, (mtime, mtime), dir_fd=fd)
        os.replace(partial, last, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=fd)
        os.close(fd)


def _unlink_below(root: Path, name: str) -> None:
    fd, last = _open_below(root, name)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(last, dir_fd=fd)
    finally:
        os.close(fd)


def _write_whole(path: Path, data: bytes) -> None:
    partial = path.with_name(f".partial-{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as target:
        target.write(data)
    os.replace(partial, path)


@contextlib.contextmanager
def _open_file(root: Path, name: str) -> Iterator[tuple[IO[bytes], os.stat_result]]:
    """A kept file, opened without following a link (name checked first)."""
    if name_problem(name):
        raise KeepError("a name in the index is not allowed")
    fd, last = _open_below(root, name)
    try:
        file_fd = os.open(last, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    with os.fdopen(file_fd, "rb") as source:
        yield source, os.fstat(source.fileno())


def _tar_of(root: Path, names: list[str], saved: Saved, target: IO[bytes]) -> None:
    with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            with _open_file(root, name) as (source, status):
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = status.st_size, status.st_mtime, 0o644
                tar.addfile(info, source)


def _zip_of(root: Path, names: list[str], saved: Saved, target: IO[bytes]) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            with _open_file(root, name) as (source, status):
                moment = time.gmtime(max(status.st_mtime, 315532800))[:6]  # zip starts at 1980
                info = zipfile.ZipInfo(name, date_time=moment)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as member:
                    shutil.copyfileobj(source, member)
        if saved.skipped:
            lines = [
                f"{item['name']}\t{item['size']} bytes\t{item['why']}" for item in saved.skipped
            ]
            archive.writestr(
                "NOT-KEPT.txt", "Files that were not kept:\n" + "\n".join(lines) + "\n"
            )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
