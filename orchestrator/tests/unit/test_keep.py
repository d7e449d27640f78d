"""Saved work (keep.py): which files are kept, and a hostile home cannot reach past its own.

The archive a notebook sends is the visitor's to shape, so the store is fed hand-made tars here:
names with `..`, absolute names, links, devices, a member that grew past the cap, names nobody
asked for. Nothing of them may land anywhere but the visitor's own directory of the store.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import keep
from orchestrator.keep import HomeEntry, KeepPlan, SavedWork

HANDED_OUT = 1_800_000_000.0
MB = 1024**2
KEY = keep.new_key()
DIGEST = keep.key_digest(KEY)


def entry(name: str, size: int = 10, kind: str = "f", mtime: float = HANDED_OUT + 60) -> HomeEntry:
    return HomeEntry(kind, size, mtime, name)


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    buffer.seek(0)
    return buffer


def regular(
    name: str, data: bytes, mtime: float = HANDED_OUT + 60
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), mtime
    return info, data


def special(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


@pytest.fixture
def store(tmp_path: Path) -> SavedWork:
    saved = SavedWork(tmp_path / "saved", cap_bytes=1 * MB, keep_seconds=24 * 3600)
    saved.prepare()
    return saved


def packed(pack, digest: str) -> io.BytesIO:
    """What store.restore_archive or store.download writes, ready to read."""
    target = io.BytesIO()
    pack(digest, target)
    target.seek(0)
    return target


def everything_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")}


# ----- keys -----


def test_keys_are_256_bits_and_only_their_digest_names_anything():
    assert len(KEY) == 43 and keep.valid_key(KEY)
    assert keep.new_key() != keep.new_key()
    assert keep.valid_digest(DIGEST) and KEY not in DIGEST
    for forged in ("", "short", KEY + "x", KEY[:-1] + "/", "../" + KEY[3:], None):
        assert not keep.valid_key(forged), forged


def test_the_store_refuses_anything_but_a_digest_as_a_directory(store):
    for bad in ("..", "../etc", KEY, DIGEST.upper(), DIGEST + "/x", ""):
        assert store.lookup(bad) is None
        with pytest.raises(keep.KeepError):
            store.restore_archive(bad, io.BytesIO())


# ----- which names and files -----


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../outside.txt", "not allowed"),
        ("a/../../etc/passwd", "not allowed"),
        ("/etc/passwd", "not allowed"),
        ("a//b", "not allowed"),
        ("./a", "not allowed"),
        ("bell\x07.txt", "control character"),
        ("new\nline.ipynb", "control character"),
        ("del\x7f", "control character"),
        (".bashrc", "hidden"),
        ("data/.secret/x", "hidden"),
        ("x" * 256, "not allowed"),
        ("bad-\udcff.txt", "UTF-8"),
        ("", "not allowed"),
    ],
)
def test_names_that_could_escape_or_mislead_are_refused(name, why):
    problem = keep.name_problem(name)
    assert problem is not None and why in problem


@pytest.mark.parametrize("name", ["notes.ipynb", "data/results 2024.csv", "é/ü ñ.txt", "a" * 255])
def test_ordinary_names_pass(name):
    assert keep.name_problem(name) is None


@given(st.text(min_size=1, max_size=40))
def test_a_name_that_passes_stays_under_the_root_whatever_it_is(name):
    if keep.name_problem(name) is None:
        root = Path("/store/visitor")
        resolved = Path(os.path.normpath(root / name))
        assert resolved.is_relative_to(root) and resolved != root
        assert not any(part.startswith(".") for part in name.split("/"))


def test_the_plan_keeps_the_visitors_files_not_the_images_nor_links():
    plan = keep.plan_keep(
        [
            entry("material/intro.ipynb", mtime=HANDED_OUT - 3600),  # the image's, unchanged
            entry("material/intro-edited.ipynb"),
            entry("data", kind="d"),
            entry("data/results.csv", size=300),
            entry("escape", kind="l"),
            entry("pipe", kind="p"),
            entry("../up.txt"),
        ],
        since=HANDED_OUT,
        cap=MB,
    )
    assert [item.name for item in plan.take] == ["material/intro-edited.ipynb", "data/results.csv"]
    assert {item.name: item.why for item in plan.skipped} == {
        "../up.txt": "its name is not allowed",
        "escape": "symbolic links are not kept",
        "pipe": "only regular files are kept",
    }


def test_over_the_cap_notebooks_come_first_and_the_rest_is_named_not_dropped():
    plan = keep.plan_keep(
        [entry("big.csv", size=700), entry("work.ipynb", size=600), entry("small.txt", size=100)],
        since=HANDED_OUT,
        cap=1000,
    )
    assert [item.name for item in plan.take] == ["work.ipynb", "small.txt"]
    assert [(item.name, item.size, item.why) for item in plan.skipped] == [
        ("big.csv", 700, "over the size kept per visitor")
    ]
    assert plan.bytes == 700


def test_the_newest_work_comes_first_and_older_work_fills_the_room_left():
    kept = {"old.ipynb": 800, "notes.txt": 150, "tiny.txt": 50}
    plan = keep.plan_keep(
        [entry("notes.txt", size=190), entry("new.csv", size=100)], HANDED_OUT, 1000, kept
    )
    assert [item.name for item in plan.take] == ["new.csv", "notes.txt"]  # notes.txt replaced
    assert plan.drop == ["old.ipynb"]  # 290 new + 50 still fit, 800 more do not
    assert [(item.name, item.why) for item in plan.skipped] == [
        ("old.ipynb", "older work, over the size kept per visitor")
    ]


def test_older_work_that_no_longer_fits_leaves_the_disk_and_is_named(store):
    store.save(DIGEST, "one", plan_for(("old.bin", 700)), tar_of(regular("old.bin", b"o" * 700)))
    cap = 1000
    store.cap_bytes = cap
    plan = keep.plan_keep([entry("new.bin", 600)], HANDED_OUT, cap, store.lookup(DIGEST).files)
    store.save(DIGEST, "two", plan, tar_of(regular("new.bin", b"n" * 600)))
    saved = store.lookup(DIGEST)
    assert saved.files == {"new.bin": 600}
    assert everything_under(store.root / DIGEST / keep.FILES) == {"new.bin"}
    assert [item["name"] for item in saved.skipped] == ["old.bin"]


def test_a_malformed_listing_is_parsed_as_far_as_it_makes_sense():
    raw = b"f 12 1800000060.5 a.txt\0garbage\0f x 1 b.txt\0l 7 1800000060.0 link\0f 3 1.0 sp ace\0"
    assert keep.parse_listing(raw) == [
        HomeEntry("f", 12, 1800000060.5, "a.txt"),
        HomeEntry("l", 7, 1800000060.0, "link"),
        HomeEntry("f", 3, 1.0, "sp ace"),
    ]


# ----- the store -----


def plan_for(*names_sizes: tuple[str, int]) -> KeepPlan:
    return KeepPlan(take=[entry(name, size) for name, size in names_sizes])


def test_saved_work_comes_back_whole_and_as_a_zip(store):
    notebook = json.dumps({"cells": [], "nbformat": 4}).encode()
    store.save(
        DIGEST,
        "abc123",
        plan_for(("work.ipynb", len(notebook)), ("data/r.csv", 4)),
        tar_of(regular("./work.ipynb", notebook), regular("./data/r.csv", b"1,2\n")),
    )
    saved = store.lookup(DIGEST)
    assert saved is not None and saved.files == {"work.ipynb": len(notebook), "data/r.csv": 4}
    with tarfile.open(fileobj=packed(store.restore_archive, DIGEST)) as tar:
        members = {member.name: member for member in tar}
        assert set(members) == {"work.ipynb", "data/r.csv"}
        assert all(member.isreg() for member in members.values())
        assert members["work.ipynb"].mtime == int(HANDED_OUT + 60)  # not saved again next time
        assert tar.extractfile(members["work.ipynb"]).read() == notebook
    with zipfile.ZipFile(packed(store.download, DIGEST)) as archive:
        assert sorted(archive.namelist()) == ["data/r.csv", "work.ipynb"]
        assert archive.read("data/r.csv") == b"1,2\n"


def test_the_store_and_each_visitors_work_are_the_services_alone(store):
    store.save(DIGEST, "abc123", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")))
    for path in [store.root, store.root / DIGEST, store.root / DIGEST / keep.FILES]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [store.root / DIGEST / keep.INDEX, store.root / DIGEST / keep.FILES / "a.txt"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert KEY not in (store.root / DIGEST / keep.INDEX).read_text()


def test_a_hostile_archive_writes_nothing_but_the_planned_regular_files(store, tmp_path):
    (tmp_path / "victim.txt").write_text("untouched")
    other = keep.key_digest(keep.new_key())
    store.save(
        other, "other1", plan_for(("theirs.txt", 6)), tar_of(regular("theirs.txt", b"theirs"))
    )
    planned = ["ok.txt", "../victim.txt", "/etc/passwd", "link", "hard", "dev", "grew.bin"]
    plan = KeepPlan(take=[entry(name, 5) for name in planned])
    store.save(
        DIGEST,
        "abc123",
        plan,
        tar_of(
            regular("ok.txt", b"fine!"),
            regular("../victim.txt", b"overwritten"),
            regular("/etc/passwd", b"root::0:0"),
            special("link", tarfile.SYMTYPE, f"../{other}/files/theirs.txt"),
            special("hard", tarfile.LNKTYPE, "ok.txt"),
            special("dev", tarfile.CHRTYPE),
            regular("grew.bin", b"y" * (MB + 1)),  # listed at 5 bytes, sent past the cap
            regular("unasked.txt", b"not in the plan"),
        ),
    )
    assert (tmp_path / "victim.txt").read_text() == "untouched"
    assert everything_under(store.root / DIGEST / keep.FILES) == {"ok.txt"}
    saved = store.lookup(DIGEST)
    assert saved.files == {"ok.txt": 5}
    assert {item["name"]: item["why"] for item in saved.skipped} == {
        "../victim.txt": "it was gone when saved",
        "/etc/passwd": "it was gone when saved",
        "link": "it was gone when saved",
        "hard": "it was gone when saved",
        "dev": "it was gone when saved",
        "grew.bin": "over the size kept per visitor",
    }
    assert store.lookup(other).files == {"theirs.txt": 6}  # the other visitor's work is intact


def test_a_link_planted_in_the_store_is_not_followed(store, tmp_path):
    """Even if something put a link where a visitor's files go, writes do not follow it."""
    store.save(DIGEST, "abc123", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")))
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(store.root / DIGEST / keep.FILES)
    (store.root / DIGEST / keep.FILES).symlink_to(outside)
    with pytest.raises(OSError):
        store.save(DIGEST, "abc123", plan_for(("b.txt", 1)), tar_of(regular("b.txt", b"y")))
    assert list(outside.iterdir()) == []


def test_a_stale_folder_is_cleared_links_and_all_before_a_first_save(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / DIGEST).mkdir(mode=0o700)
    (store.root / DIGEST / keep.FILES).symlink_to(outside)
    store.save(DIGEST, "abc123", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")))
    assert list(outside.iterdir()) == []
    assert not (store.root / DIGEST / keep.FILES).is_symlink()
    assert everything_under(store.root / DIGEST / keep.FILES) == {"a.txt"}


def test_a_broken_archive_is_a_clean_error_and_keeps_what_was_saved(store):
    store.save(DIGEST, "abc123", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")))
    with pytest.raises(keep.KeepError):
        store.save(DIGEST, "def456", plan_for(("b.txt", 1)), io.BytesIO(b"not a tar" * 200))
    assert store.lookup(DIGEST).files == {"a.txt": 1}


def test_a_second_cull_merges_into_what_was_kept(store):
    store.save(DIGEST, "one", plan_for(("a.txt", 1), ("b.txt", 1)),
               tar_of(regular("a.txt", b"1"), regular("b.txt", b"1")))  # fmt: skip
    store.save(DIGEST, "two", plan_for(("b.txt", 2), ("c.txt", 1)),
               tar_of(regular("b.txt", b"22"), regular("c.txt", b"3")))  # fmt: skip
    saved = store.lookup(DIGEST)
    assert saved.files == {"a.txt": 1, "b.txt": 2, "c.txt": 1} and saved.path_id == "two"
    with zipfile.ZipFile(packed(store.download, DIGEST)) as archive:
        assert archive.read("b.txt") == b"22"


def test_what_was_not_kept_is_named_in_the_download(store):
    plan = keep.plan_keep([entry("a.txt", 1), entry("big.bin", 2 * MB)], HANDED_OUT, MB)
    store.save(DIGEST, "abc123", plan, tar_of(regular("a.txt", b"x")))
    with zipfile.ZipFile(packed(store.download, DIGEST)) as archive:
        note = archive.read("NOT-KEPT.txt").decode()
    assert "big.bin" in note and "over the size kept per visitor" in note


def test_work_is_gone_when_its_time_is_up_and_the_rest_stays(store):
    late = keep.key_digest(keep.new_key())
    store.save(DIGEST, "early", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")), now=1000)
    store.save(late, "late", plan_for(("b.txt", 1)), tar_of(regular("b.txt", b"y")), now=5000)
    (store.root / "stray-file").write_text("not work")
    day = 24 * 3600
    assert store.lookup(DIGEST, now=1000 + day - 1) is not None
    assert store.stats(now=1000) == (2, 2, 1000)
    assert store.sweep(now=1000 + day) == 2  # the early one, and what is not work
    assert store.lookup(DIGEST, now=1000 + day) is None
    assert set(os.listdir(store.root)) == {late}
    with pytest.raises(keep.KeepError):
        store.download(DIGEST, io.BytesIO())


def test_turning_the_feature_off_removes_every_visitors_work(store):
    store.save(DIGEST, "abc123", plan_for(("a.txt", 1)), tar_of(regular("a.txt", b"x")))
    SavedWork(store.root, 0, 0).prepare()
    assert not store.root.exists()


def test_a_save_over_expired_work_starts_clean(store):
    day = 24 * 3600
    store.save(DIGEST, "old", plan_for(("old.txt", 1)), tar_of(regular("old.txt", b"o")), now=1000)
    store.save(
        DIGEST, "new", plan_for(("new.txt", 1)), tar_of(regular("new.txt", b"n")), now=1000 + day
    )
    assert store.lookup(DIGEST, now=1000 + day).files == {"new.txt": 1}
    assert everything_under(store.root / DIGEST / keep.FILES) == {"new.txt"}


def test_the_sweep_leaves_alone_the_work_being_saved(store):
    (store.root / DIGEST / keep.FILES).mkdir(parents=True)  # a first save: files, no index yet
    (store.root / DIGEST / keep.FILES / "a.txt").write_text("x")
    assert store.sweep(busy=frozenset({DIGEST})) == 0
    assert (store.root / DIGEST / keep.FILES / "a.txt").exists()
    assert store.sweep() == 1  # once nobody saves it, a folder without an index is not work


def test_saves_of_one_key_take_turns_even_when_one_comes_as_another_leaves():
    """The first holder leaves; before the second (woken) runs, a third asks: it must wait for
    the second, not get a lock of its own (which a lock dropped when free would give it)."""

    async def scenario() -> int:
        locks, inside, most = keep.KeyedLocks(), 0, 0
        release, third_may_start = asyncio.Event(), asyncio.Event()

        async def save(wait_for: asyncio.Event | None = None, hold: asyncio.Event | None = None):
            nonlocal inside, most
            if wait_for is not None:
                await wait_for.wait()
            async with locks.hold("visitor"):
                inside += 1
                most = max(most, inside)
                if hold is not None:
                    await hold.wait()
                for _ in range(5):
                    await asyncio.sleep(0)
                inside -= 1
            if hold is not None:
                third_may_start.set()  # the first leaves: the second is woken, not yet running

        first = asyncio.create_task(save(hold=release))
        await asyncio.sleep(0)
        second = asyncio.create_task(save())
        third = asyncio.create_task(save(wait_for=third_may_start))
        await asyncio.sleep(0)
        assert locks.busy() == {"visitor"}
        release.set()
        await asyncio.gather(first, second, third)
        assert locks.busy() == frozenset()  # nobody holds or waits: forgotten
        return most

    assert asyncio.run(scenario()) == 1
