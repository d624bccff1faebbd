"""The store interface: what every store offers (trainer/storage/__init__.py lists it), its errors and key rules.

`LocalStore` (local.py) and `GcsStore` (gcs.py) implement it; `open_store` (the package) picks one by URL.
Object names are untrusted (a bucket accepts `a/../../x`): `key_path` is the one place that maps a key to a
local file, for the local folder and for a bucket's staging copies alike.

    python -c "from trainer.storage import base; print(base.key_path('/tmp/x', 'a/b.json'))"
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Iterator, Optional

from trainer.errors import UnsafeObjectName, UserError


def key_path(root: str, key: str) -> str:
    """The local path of store key `key` under `root`, refusing keys that could leave it.

    Object names come from bucket listings, manifests and pointers, which anyone
    with write access to the bucket controls: GCS accepts `a/../../x`. Empty,
    '.' and '..' segments and NUL bytes are refused, and the resolved path must
    lie under `root`."""
    if not key:
        return root
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or "\x00" in key:
        raise UnsafeObjectName(
            f"object name {key!r} has an empty, '.' or '..' segment; refusing to map it to a local file"
        )
    path = os.path.join(root, *parts)
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
        raise UnsafeObjectName(f"object name {key!r} resolves outside {root}; refusing to map it to a local file")
    return path


def is_remote(url: str) -> bool:
    return "://" in url


def check_url(url: str) -> None:
    """Refuses a URL scheme other than gs://."""
    scheme = url.split("://", 1)[0]
    if scheme != "gs":
        raise UserError(f"{url}: unsupported URL scheme {scheme}:// (use a local folder or gs://bucket/path)")


class AlreadyExists(Exception):
    """`put_new` found the object already there."""


class Changed(Exception):
    """`replace_if` found the object changed since the version it was given."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    size: int
    metadata: dict  # custom metadata (GCS); local files have none


class Store(abc.ABC):
    """A folder of named objects ('a/b.json'); keys always use '/'. Writes are atomic: an object appears whole
    or not at all."""

    keeps_metadata = False  # whether publish_file's metadata is kept (GCS) or dropped (readers recompute it)

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The folder or gs:// URL this store was opened on."""

    @abc.abstractmethod
    def local(self, key: str = "") -> str:
        """A local path for `key` to write to before publishing (the folder itself, or a staging copy);
        refuses keys that would leave it."""

    def path(self, key: str = "") -> str:
        return self.local(key)

    # -- small objects
    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def get(self, key: str) -> bytes: ...

    def get_text(self, key: str) -> str:
        return self.get(key).decode("utf-8")

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Atomically creates or replaces `key`."""

    @abc.abstractmethod
    def put_new(self, key: str, data: bytes) -> None:
        """Creates `key` only if absent (raises AlreadyExists)."""

    @abc.abstractmethod
    def read_versioned(self, key: str) -> tuple[Optional[bytes], str]:
        """(content or None, version): the version `replace_if` compares."""

    @abc.abstractmethod
    def replace_if(self, key: str, data: bytes, version: str) -> str:
        """Writes `key` only if it is still at `version` ('' = absent), else raises Changed; returns the new
        version."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Removes an object, or every object under a folder key; absent is not an error."""

    # -- files and folders
    @abc.abstractmethod
    def publish_file(self, local_path: str, key: str, metadata: Optional[dict] = None) -> None:
        """Moves a finished local file to `key` in one step, never replacing (AlreadyExists)."""

    @abc.abstractmethod
    def publish_folder(self, local_dir: str, key: str) -> None:
        """Moves a finished local folder into the store."""

    @abc.abstractmethod
    def fetch(self, key: str) -> str:
        """A local, checksum-verified path of the object."""

    @abc.abstractmethod
    def sync_up(self, key: str) -> None:
        """Copies what changed under local(key) into the store (logs)."""

    # -- listing
    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (a folder key), recursively, sorted; work in progress is not listed."""

    @abc.abstractmethod
    def stat_all(self, prefix: str = "") -> dict[str, ObjectInfo]:
        """{key: ObjectInfo} under `prefix`, in one listing."""

    @abc.abstractmethod
    def stat_range(self, first: str, last: str) -> Iterator[tuple[str, ObjectInfo]]:
        """(key, ObjectInfo) with first <= key <= last (keys of one folder), in key order, lazily."""

    @abc.abstractmethod
    def folders(self, key: str) -> list[str]:
        """The immediate sub-folder names of a folder key, sorted."""

    @abc.abstractmethod
    def check_writable(self) -> None:
        """Fails with one line (UserError) when the store cannot be written."""


def is_local(store: Store) -> bool:
    return not is_remote(store.url)
