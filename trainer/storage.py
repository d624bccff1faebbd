"""Where job files live: a small interface every job-dir path goes through.

`open_store(url)` returns a `Store` rooted at a local folder. Writes that a
reader may race with are atomic (write a temp file beside the target, then
`os.replace`), and `put_new` refuses to replace an existing object, which is
how plans, manifests and checkpoint pointers are published exactly once.

gs:// URLs are recognised and refused with a clear message in this version
(TensorFlow's own gs:// file system cannot be pointed at an emulator, so a
GCS store must use the google-cloud-storage client; see the README).

    python -c "from trainer import storage; s = storage.open_store('/tmp/x'); s.put('a.txt', b'hi'); print(s.get('a.txt'))"
"""

from __future__ import annotations

import os
import shutil
import uuid

from trainer.errors import UserError


def is_remote(url: str) -> bool:
    return "://" in url


def _refuse_remote(url: str) -> None:
    scheme = url.split("://", 1)[0]
    if scheme == "gs":
        raise UserError(f"{url}: gs:// paths are not supported by this version yet; use a local folder "
                        "(or a gcsfuse mount of the bucket)")
    raise UserError(f"{url}: unsupported URL scheme {scheme}:// (use a local folder)")


class AlreadyExists(Exception):
    """`put_new` found the object already there."""


class Store:
    """A folder of named objects ('a/b.json'); keys always use '/'."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def __repr__(self) -> str:
        return f"Store({self.root})"

    def path(self, key: str = "") -> str:
        """The local path of `key` (the store is a plain folder)."""
        return os.path.join(self.root, *key.split("/")) if key else self.root

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def get(self, key: str) -> bytes:
        with open(self.path(key), "rb") as f:
            return f.read()

    def get_text(self, key: str) -> str:
        return self.get(key).decode("utf-8")

    def put(self, key: str, data: bytes) -> None:
        """Atomically creates or replaces `key`."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)

    def put_new(self, key: str, data: bytes) -> None:
        """Creates `key` only if absent (raises AlreadyExists), atomically."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, target)  # fails if target exists: a create-if-absent that is also atomic
        except FileExistsError:
            raise AlreadyExists(key) from None
        finally:
            os.unlink(temp)

    def publish_file(self, local_path: str, key: str) -> None:
        """Moves a finished local file to `key` in one step, refusing to replace."""
        target = self.path(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            os.link(local_path, target)
        except FileExistsError:
            raise AlreadyExists(key) from None
        os.unlink(local_path)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (a folder key), recursively, sorted."""
        base = self.path(prefix)
        if not os.path.isdir(base):
            return []
        keys = []
        for dirpath, _, filenames in os.walk(base):
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                keys.append(rel.replace(os.sep, "/"))
        return sorted(keys)

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


def open_store(url: str) -> Store:
    if is_remote(url):
        _refuse_remote(url)
    return Store(url)


def stage_dataset(url: str) -> str:
    """A local path for a dataset URL (local paths pass through unchanged)."""
    if is_remote(url):
        _refuse_remote(url)
    return url
