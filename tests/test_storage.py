"""The store interface (trainer/storage/) on local folders: keys, listings, hostile names."""

import os

import pytest

from trainer import storage
from trainer.errors import UnsafeObjectName


def test_listings_leave_out_work_in_progress(tmp_path):
    store = storage.LocalStore(str(tmp_path))
    store.put("a.bin", b"a")
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "task-00000-x.tfrecord").write_bytes(b"partial")
    (tmp_path / "b.json.tmp-123").write_bytes(b"partial")
    (tmp_path / "checkpoints" / ".tmp-ckpt-00000004-ab").mkdir(parents=True)
    (tmp_path / "checkpoints" / ".tmp-ckpt-00000004-ab" / "ckpt.index").write_bytes(b"partial")
    assert store.list() == ["a.bin"]
    assert set(store.stat_all()) == {"a.bin"}


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a//b", "./a", "a/.", "a/\x00b"])
def test_keys_that_could_leave_the_folder_are_refused(tmp_path, key):
    with pytest.raises(UnsafeObjectName):
        storage.LocalStore(str(tmp_path)).path(key)


def test_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path, tmp_path / "root" / "link")
    with pytest.raises(UnsafeObjectName, match="resolves outside"):
        storage.LocalStore(str(tmp_path / "root")).path("link/x")


def test_published_files_reach_the_disk_before_they_are_named(tmp_path, monkeypatch):
    """Every file of a published folder, and the folder entries, are fsync'ed before the rename returns."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    staging = tmp_path / "staging"
    (staging / "sub").mkdir(parents=True)
    (staging / "ckpt.index").write_bytes(b"i")
    (staging / "sub" / "ckpt.data").write_bytes(b"d")
    store = storage.LocalStore(str(tmp_path / "job"))
    store.publish_folder(str(staging), "checkpoints/ckpt-1")
    assert {str(staging / "ckpt.index"), str(staging / "sub" / "ckpt.data")} <= set(synced)
    assert str(tmp_path / "job" / "checkpoints") in synced  # the new entry itself
    shard = tmp_path / "shard.tmp"
    shard.write_bytes(b"records")
    synced.clear()
    store.publish_file(str(shard), "out/shard-0")
    assert str(shard) in synced and str(tmp_path / "job" / "out") in synced


def test_a_range_listing_is_one_folder_in_key_order(tmp_path):
    store = storage.LocalStore(str(tmp_path))
    for key in ["s-003", "s-001", "s-002", "s-005", "t-000", "plan.json", "sub/s-004"]:
        store.put(key, b"x" * len(key))
    (tmp_path / "s-004.tmp-9").write_bytes(b"partial")  # another process's temp file
    assert [k for k, _ in store.stat_range("s-002", "s-005")] == ["s-002", "s-003", "s-005"]
    assert dict(store.stat_range("sub/s-000", "sub/s-009"))["sub/s-004"].size == len("sub/s-004")
    assert list(store.stat_range("s-006", "s-009")) == []
    assert list(store.stat_range("none/a", "none/b")) == []
    with pytest.raises(ValueError, match="one folder"):
        list(store.stat_range("a/x", "b/x"))


def test_both_stores_implement_the_whole_interface(tmp_path):
    """Store is an abstract base: a store missing a method cannot be built, and both real ones are complete."""
    missing = sorted(storage.Store.__abstractmethods__)
    assert {"get", "put_new", "replace_if", "publish_file", "stat_range", "check_writable"} <= set(missing)
    for cls in (storage.LocalStore, storage.GcsStore):
        assert not cls.__abstractmethods__, cls
        assert issubclass(cls, storage.Store)
    assert not issubclass(storage.GcsStore, storage.LocalStore)  # a bucket is not a folder

    class Partial(storage.Store):
        url = "x"

    with pytest.raises(TypeError, match="abstract"):
        Partial()
    local = storage.open_store(str(tmp_path))
    remote = storage.open_store("gs://bucket/run", staging=str(tmp_path / "staging"))
    assert type(local) is storage.LocalStore and storage.is_local(local)
    assert type(remote) is storage.GcsStore and not storage.is_local(remote)
    assert remote.local("a/b") == str(tmp_path / "staging" / "a" / "b")
