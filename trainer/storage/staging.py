"""Local copies of gs:// objects: one file (a model), or a whole dataset folder mirrored into a cache.

python -c "from trainer import storage; print(storage.fetch_file('/tmp/local/paths/pass/through'))"
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import time

from trainer.errors import UnsafeObjectName, UserError
from trainer.storage.base import check_url, is_remote
from trainer.storage.gcs import GcsStore, file_crc32c
from trainer.storage.local import cache_for


def fetch_file(url: str, kind: str = "files") -> str:
    """A local, checksum-verified copy of one gs:// object (a model file, say); local paths pass through."""
    if not is_remote(url):
        return url
    check_url(url)
    folder, _, name = url.rstrip("/").rpartition("/")
    if not name or folder in ("gs:", "gs:/"):
        raise UserError(f"{url}: expected gs://bucket/path/to/file")
    from google.api_core import exceptions as gexc

    store = GcsStore(folder, staging=cache_for(kind, folder))
    try:
        return store.fetch(name)
    except gexc.NotFound:
        raise UserError(f"{url}: no such object") from None


def stage_dataset(url: str) -> str:
    """A local path for a dataset URL; a gs:// folder is mirrored into a local cache (parallel, checksummed).

    The cache mirrors the bucket listing exactly: objects already cached with the
    bucket's crc32c are not downloaded again, and cached files that are no longer
    in the bucket are removed (a stale manifest.json must not make an unfinished
    shard output look complete). Folder markers (`dir/`, zero bytes, made by the
    Cloud Console or gcsfuse) are skipped; so are object names with '..' or empty
    segments, with one warning line, since they cannot be local files under the cache.
    """
    if not is_remote(url):
        return url
    check_url(url)
    store = GcsStore(url, staging=cache_for("datasets", url))
    blobs = _local_files(store, url)
    if not blobs:
        raise UserError(f"--dataset={url}: no objects there")
    _remove_unlisted(store.root, set(blobs))

    def fetch(item):
        local, (key, blob) = item
        if os.path.isfile(local) and file_crc32c(local) == blob.crc32c:
            return False
        store.fetch(key)
        return True

    from trainer.progress import Progress

    counter = Progress(f"staging {url}", len(blobs), "files")
    fetched = 0
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for downloaded in pool.map(fetch, sorted(blobs.items())):
            fetched += downloaded
            counter.advance()
    counter.close()
    print(f"staged {url}: {fetched} downloaded, {len(blobs) - fetched} already cached in {store.root}")
    return store.root


def _local_files(store: GcsStore, url: str) -> dict:
    """{local path: (key, blob)} of the objects that can be local files under the cache; one warning line
    for each kind left out."""
    blobs = {}
    unsafe = []
    for key, blob in store.blobs("").items():  # one listing gives the keys and their checksums
        if key.endswith("/") and not int(blob.size or 0):
            continue  # a folder marker
        try:
            blobs[store.local(key)] = (key, blob)
        except UnsafeObjectName:
            unsafe.append(key)
    # An object `a` beside `a/x.png`: a local path cannot be a file and a folder; the folder's files win.
    folders = {key.rsplit("/", n)[0] for key, _ in blobs.values() for n in range(1, key.count("/") + 1)}
    shadowed = sorted(key for key, _ in blobs.values() if key in folders)
    blobs = {local: item for local, item in blobs.items() if item[0] not in folders}
    for names, why in ((unsafe, "(empty, '.' or '..' segments)"), (shadowed, "(other objects are inside them)")):
        if names:
            shown = ", ".join(repr(k) for k in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            print(
                f"warning: skipped {len(names)} object(s) of {url} whose names cannot be local files {why}: {shown}",
                file=sys.stderr,
            )
    return blobs


def _remove_unlisted(root: str, keep: set[str], partial_age_s: float = 3600.0) -> None:
    """Deletes files under `root` that are not in `keep`, and folders left empty.

    A download in progress (`*.part-*`, possibly another process staging the
    same dataset) is left alone until it is `partial_age_s` old."""
    now = time.time()
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            if path in keep:
                continue
            try:
                if ".part-" not in name or now - os.stat(path).st_mtime > partial_age_s:
                    os.unlink(path)
            except FileNotFoundError:  # its owner renamed or removed it meanwhile
                pass
        if folder != root:
            try:
                os.rmdir(folder)  # only succeeds when empty
            except OSError:
                pass
