"""Where job files live: one small interface for local folders and gs:// buckets.

`open_store(url)` returns a `Store` (base.py): a `LocalStore` (a local folder) or a `GcsStore` (a bucket
prefix, trainer/storage/gcs.py, through the google-cloud-storage client, which honours
STORAGE_EMULATOR_HOST; TensorFlow's own gs:// file system cannot reach an
emulator and can publish partial objects). Both offer:

  get/put/exists/list/delete         small objects (config, pointers, exports)
  put_new                            create-if-absent (GCS: if_generation_match=0)
  local(key)                         a local path to write to before publishing
                                     (the folder itself, or a staging copy)
  publish_folder(local_dir, key)     move a finished local folder into the store
  publish_file(path, key, metadata)  move a finished local file in, never replacing
                                     (GCS keeps `metadata` as custom object metadata)
  stat_all(prefix)                   {key: ObjectInfo(size, metadata)} in one listing
  stat_range(first, last)            (key, ObjectInfo) from first to last, lazily, page by page
  fetch(key)                         a local, checksum-verified copy of an object
  sync_up(key)                       upload what changed under local(key) (logs)

Local writes are atomic (temp file + rename). GCS uploads carry a crc32c
checksum; a 412 on a create-if-absent is compared with what we meant to
write, so a retried request that already succeeded is not an error.

The package: base.py (the interface, its errors, key and URL rules), local.py
(the local folder, locks, caches, the tree mirror for logs), gcs.py (the
bucket), staging.py (local copies of gs:// files and dataset folders), and
here `open_store`, the one place that chooses between them. Nothing in it imports the rest of trainer/
except errors, environment and (for a staging progress bar) progress.

    python -c "from trainer import storage; s = storage.open_store('/tmp/x'); s.put('a', b'hi'); print(s.get('a'))"
"""

from __future__ import annotations

from trainer.storage.base import AlreadyExists, Changed, ObjectInfo, Store, check_url, is_local, is_remote, key_path
from trainer.storage.gcs import GcsStore
from trainer.storage.local import (
    LocalStore,
    TreeMirror,
    cache_dir,
    cache_for,
    changed_files,
    own,
    remove_if_unowned,
    sync_tree,
    upload_tree,
)
from trainer.storage.staging import fetch_file, stage_dataset

__all__ = [
    "AlreadyExists",
    "Changed",
    "GcsStore",
    "LocalStore",
    "ObjectInfo",
    "Store",
    "TreeMirror",
    "cache_dir",
    "cache_for",
    "changed_files",
    "check_url",
    "fetch_file",
    "is_remote",
    "is_local",
    "key_path",
    "open_store",
    "own",
    "remove_if_unowned",
    "stage_dataset",
    "sync_tree",
    "upload_tree",
]


def open_store(url: str, staging: str = "") -> Store:
    """The store of a local folder or a gs://bucket/prefix (with `staging`, a local folder for its copies)."""
    if is_remote(url):
        check_url(url)
        return GcsStore(url, staging=staging)
    return LocalStore(url)
