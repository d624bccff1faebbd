"""The local-folder store, and the local files every store uses: locks, caches, the tree mirror for logs.

`LocalStore` implements the interface of base.py: atomic writes (temp file +
rename), create-if-absent and publishing by hard link (which fails when the
target exists).

    python -c "from trainer.storage import local; s = local.LocalStore('/tmp/x'); s.put('a', b'hi'); print(s.get('a'))"
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import os
import posixpath
import shutil
import stat
import threading
import uuid
from typing import Iterator, Optional

from trainer.errors import UserError
from trainer.storage.base import AlreadyExists, Changed, ObjectInfo, Store, is_local, key_path


def cache_dir(kind: str) -> str:
    """Local staging and dataset caches: $DCGAN_CACHE (default ~/.cache/dcgan-factory)/KIND."""
    return os.path.join(os.path.expanduser(os.environ.get("DCGAN_CACHE", "~/.cache/dcgan-factory")), kind)


def own(path: str, lock_path: str = ""):
    """Creates `path` (or `lock_path`, for a folder) and holds an exclusive flock on it for as long as the
    returned file stays open. The kernel drops the lock when the process dies, so a lock that can be
    taken means the writer is gone (see remove_if_unowned)."""
    handle = open(lock_path or path, "ab")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def remove_if_unowned(path: str, lock_path: str = "") -> bool:
    """Deletes a temp file or folder unless a live process holds its lock (`own`); True if deleted."""
    try:
        with open(lock_path or path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while a live process holds it
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
            if lock_path:
                os.unlink(lock_path)
            return True
    except (BlockingIOError, FileNotFoundError):
        return False


def sync_tree(path: str, files: bool = True) -> None:
    """fsync a file, or a folder's files (if `files`) and the folder entries themselves."""

    def sync(target: str) -> None:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    if os.path.isfile(path) or not files:
        sync(path)
        return
    for folder, _, names in os.walk(path, topdown=False):
        for name in names:
            sync(os.path.join(folder, name))
        sync(folder)


def _is_temp(name: str) -> bool:
    return (
        name == ".tmp"
        or name.startswith(".tmp-")
        or ".tmp-" in name
        or name.startswith(".write-probe-")
        or (name.startswith(".") and name.endswith(".lock"))
    )


def cache_for(kind: str, url: str) -> str:
    """A cache folder for one gs:// URL: readable bucket name plus a hash of the whole URL,
    so that gs://a/b__c and gs://a__b/c never share a folder."""
    bucket = url[len("gs://") :].split("/", 1)[0]
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return os.path.join(cache_dir(kind), f"{bucket}-{digest}")


class LocalStore(Store):
    """A local folder: atomic writes (temp file + rename), create-if-absent and publishing by hard link."""

    keeps_metadata = False  # a local file cannot carry metadata; readers recompute it from the file

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def __repr__(self) -> str:
        return f"LocalStore({self.root})"

    url = property(lambda self: self.root)

    def local(self, key: str = "") -> str:
        """The path of `key` (local folders are written in place); refuses keys that leave the folder."""
        return key_path(self.root, key)

    path = local

    def publish_folder(self, local_dir: str, key: str) -> None:
        """Moves a finished folder into place; its files reach the disk first (a pointer written
        after this never names data lost in a power cut)."""
        sync_tree(local_dir)
        self.delete(key)
        os.makedirs(os.path.dirname(self.path(key)), exist_ok=True)
        os.replace(local_dir, self.path(key))
        sync_tree(os.path.dirname(self.path(key)), files=False)

    def fetch(self, key: str) -> str:
        return self.path(key)

    def sync_up(self, key: str) -> None:
        """Nothing to do: files are already in place."""

    def folders(self, key: str) -> list[str]:
        base = self.path(key)
        return (
            sorted(n for n in os.listdir(base) if os.path.isdir(os.path.join(base, n))) if os.path.isdir(base) else []
        )

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def get(self, key: str) -> bytes:
        with open(self.path(key), "rb") as f:
            return f.read()

    def _write_temp(self, key: str, data: bytes) -> tuple[str, str]:
        """Writes `data` durably beside `key`'s path; returns (temp, target)."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return temp, target

    def put(self, key: str, data: bytes) -> None:
        """Atomically creates or replaces `key`."""
        temp, target = self._write_temp(key, data)
        os.replace(temp, target)

    def read_versioned(self, key: str) -> tuple[Optional[bytes], str]:
        """(content or None, version): the version `replace_if` compares (here: a hash of the content)."""
        try:
            data = self.get(key)
        except FileNotFoundError:
            return None, ""
        return data, hashlib.sha256(data).hexdigest()

    def replace_if(self, key: str, data: bytes, version: str) -> str:
        """Writes `key` only if it is still at `version` ('' = absent); raises Changed otherwise.
        Returns the new version. Processes on this machine serialise on a lock file beside the key."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(f"{os.path.dirname(target)}/.{os.path.basename(target)}.lock", "ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.read_versioned(key)[1] != version:
                raise Changed(key)
            self.put(key, data)
        return hashlib.sha256(data).hexdigest()

    def put_new(self, key: str, data: bytes) -> None:
        """Creates `key` only if absent (raises AlreadyExists), atomically."""
        temp, target = self._write_temp(key, data)
        try:
            os.link(temp, target)  # fails if target exists: a create-if-absent that is also atomic
        except FileExistsError:
            raise AlreadyExists(key) from None
        finally:
            os.unlink(temp)

    def publish_file(self, local_path: str, key: str, metadata: Optional[dict] = None) -> None:
        """Moves a finished local file to `key` in one step, refusing to replace (AlreadyExists).

        A local file cannot carry metadata; readers recompute it from the file."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        sync_tree(local_path)
        try:
            os.link(local_path, target)
        except FileExistsError:
            raise AlreadyExists(key) from None
        os.unlink(local_path)
        sync_tree(os.path.dirname(target), files=False)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (a folder key), recursively, sorted; work in progress is not listed
        (`.tmp` folders, `*.tmp-*` files: other processes' temp files, which may vanish at any time)."""
        base = self.path(prefix)
        if not os.path.isdir(base):
            return []
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not _is_temp(d)]
            for name in filenames:
                if not _is_temp(name):
                    rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                    keys.append(rel.replace(os.sep, "/"))
        return sorted(keys)

    def stat_all(self, prefix: str = "") -> dict[str, ObjectInfo]:
        found = {}
        for key in self.list(prefix):
            try:
                found[key] = ObjectInfo(os.path.getsize(self.path(key)), {})
            except FileNotFoundError:  # deleted between the listing and now (another process's cleanup)
                pass
        return found

    def stat_range(self, first: str, last: str) -> Iterator[tuple[str, ObjectInfo]]:
        """(key, info) of the objects with `first` <= key <= `last` (keys of one folder), in key order,
        produced lazily: a caller that stops early costs less (a bucket lists page by page). A sharded job
        reads its own block of shards, and the commit check stops at the first missing shard."""
        folder, low = posixpath.split(first)
        if posixpath.dirname(last) != folder:
            raise ValueError(f"stat_range: {first!r} and {last!r} are not in one folder")
        base = self.path(folder)
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            return
        high = posixpath.basename(last)
        for name in names[bisect.bisect_left(names, low) :]:
            if name > high:
                return
            if _is_temp(name):
                continue
            try:
                info = os.stat(os.path.join(base, name))
            except FileNotFoundError:  # deleted between the listing and now (another process's cleanup)
                continue
            if stat.S_ISREG(info.st_mode):
                yield (f"{folder}/{name}" if folder else name), ObjectInfo(info.st_size, {})

    def delete(self, key: str) -> None:
        target = self.path(key)
        if os.path.isdir(target):
            shutil.rmtree(target, ignore_errors=True)
        elif os.path.exists(target):
            os.unlink(target)

    def check_writable(self) -> None:
        """Fails with one line when the folder cannot be created or written."""
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f".write-probe-{uuid.uuid4().hex}")
            with open(probe, "wb"):
                pass
            os.unlink(probe)
        except OSError as err:
            raise UserError(f"{self.root}: cannot write there ({err.strerror or err})") from None


def changed_files(folder: str, seen: dict) -> list[tuple[str, tuple[int, int]]]:
    """(path, (size, mtime_ns)) of the files under `folder` whose signature differs from seen[path]."""
    changed = []
    for d, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(d, name)
            stat = os.stat(path)
            if seen.get(path) != (stat.st_size, stat.st_mtime_ns):
                changed.append((path, (stat.st_size, stat.st_mtime_ns)))
    return changed


class TreeMirror:
    """Copies a local folder's new and changed files into a store, keys relative to the folder.

    Each call uploads only what changed (size or mtime) since the last one; safe
    to call from several threads."""

    def __init__(self, local_dir: str, target: Store):
        self.local_dir, self.target = local_dir, target
        self._copied: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def __call__(self) -> int:
        copied = 0
        with self._lock:
            for path, signature in changed_files(self.local_dir, self._copied):
                key = os.path.relpath(path, self.local_dir).replace(os.sep, "/")
                if not (is_local(self.target) and _append_new_bytes(path, self.target.path(key))):
                    with open(path, "rb") as f:
                        self.target.put(key, f.read())
                self._copied[path] = signature
                copied += 1
        return copied


def _append_new_bytes(source: str, target: str) -> bool:
    """Appends what `source` gained since `target` was copied from it (event files only grow), so a
    reader tailing `target` (TensorBoard) keeps its place; False when `target` is not a prefix copy."""
    if not os.path.isfile(target) or os.path.getsize(target) > os.path.getsize(source):
        return False
    with open(source, "rb") as src, open(target, "ab") as out:
        src.seek(out.tell())
        shutil.copyfileobj(src, out)
    return True


def upload_tree(local_dir: str, target: Store) -> None:
    """Copies (replacing) every file under a local folder into a store, keys relative to the folder."""
    TreeMirror(local_dir, target)()
