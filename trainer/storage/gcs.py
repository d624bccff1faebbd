"""A gs://bucket/prefix `Store` (see trainer/storage/__init__.py), through the google-cloud-storage client.

Every object goes through the client (which honours STORAGE_EMULATOR_HOST), with
explicit timeouts and exponential-backoff retries (DCGAN_GCS_TIMEOUT,
DCGAN_GCS_RETRY_DEADLINE), crc32c checksums on every transfer, and generation
preconditions: an upload that creates never replaces, a pointer is replaced only
over the generation this process last saw. Writes are staged in a local folder
first (`local(key)`), then published.

    python -c "from trainer import storage; print(storage.open_store('gs://bucket/prefix'))"
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import posixpath
import shutil
import threading
import uuid
from typing import Iterator, Optional

from trainer import environment
from trainer.errors import StorageUnavailable, UserError
from trainer.storage.base import AlreadyExists, Changed, ObjectInfo, Store, key_path
from trainer.storage.local import cache_for, changed_files


class GcsStore(Store):
    """A gs://bucket/prefix store staged through a local folder.

    Objects are read and written with the google-cloud-storage client, with
    explicit timeouts and exponential-backoff retries on 429/5xx, connection
    errors and timeouts (the client's policy, tuned).
    """

    keeps_metadata = True  # custom object metadata, set in the same request as the upload
    # (connect, read) seconds per request; DCGAN_GCS_TIMEOUT overrides the read timeout.
    TIMEOUT = property(lambda self: (10, environment.gcs_timeout()))

    def __init__(self, url: str, staging: str = ""):
        bucket, _, prefix = url[len("gs://") :].partition("/")
        if not bucket:
            raise UserError(f"{url}: no bucket name")
        self.url_text, self.bucket_name, self.prefix = url.rstrip("/"), bucket, prefix.strip("/")
        self.root = staging or cache_for("staging", self.url_text)
        self._client = None
        self._synced: dict[str, tuple[int, int]] = {}
        self._sync_lock = threading.Lock()  # the log timer and the checkpoint thread both sync logs

    url = property(lambda self: self.url_text)

    def __repr__(self) -> str:
        return f"GcsStore({self.url_text})"

    # -- client, retries, errors
    @property
    def bucket(self):
        if self._client is None:
            from google.cloud import storage as gcs

            try:
                if os.environ.get("STORAGE_EMULATOR_HOST"):
                    from google.auth.credentials import AnonymousCredentials

                    self._client = gcs.Client(
                        project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"), credentials=AnonymousCredentials()
                    )
                else:
                    self._client = gcs.Client()
            except Exception as err:  # google.auth's DefaultCredentialsError and friends
                raise UserError(
                    f"{self.url_text}: no usable Google Cloud credentials ({type(err).__name__}); run "
                    "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
                ) from None
        return self._client.bucket(self.bucket_name)

    @staticmethod
    def retry():
        from google.api_core.retry import Retry
        from google.cloud.storage.retry import DEFAULT_RETRY

        deadline = environment.gcs_retry_deadline()  # seconds of retrying per call
        return (
            DEFAULT_RETRY.with_delay(initial=0.5, maximum=16.0, multiplier=2.0).with_timeout(deadline)
            if isinstance(DEFAULT_RETRY, Retry)
            else DEFAULT_RETRY
        )

    def _call(self, what: str, fn):
        """Runs one client call; turns its failures into one-line errors (a missing object stays NotFound)."""
        from google.api_core import exceptions as gexc

        try:
            return fn()
        except gexc.NotFound:
            if not self._bucket_exists():  # else it is just the object that is missing
                raise UserError(f"{self.url_text}: bucket gs://{self.bucket_name} does not exist") from None
            raise
        except gexc.Forbidden:
            raise self._permission_denied(what) from None
        except gexc.Unauthorized:
            raise UserError(
                f"{self.url_text}: not authenticated; run `gcloud auth application-default login`"
            ) from None
        except (
            gexc.ServiceUnavailable,
            gexc.InternalServerError,
            gexc.TooManyRequests,
            gexc.GatewayTimeout,
            gexc.RetryError,
            ConnectionError,
        ) as err:
            raise self._unreachable(what, err) from None
        except Exception as err:
            if type(err).__module__.startswith(("requests", "urllib3")):
                raise self._unreachable(what, err) from None
            raise

    def _permission_denied(self, what: str) -> UserError:
        return UserError(
            f"{self.url_text}: permission denied ({what}); the account needs roles/storage.objectAdmin on the bucket"
        )

    def _unreachable(self, what: str, err: Exception) -> StorageUnavailable:
        return StorageUnavailable(
            f"{self.url_text}: storage unreachable after retries ({what}: "
            f"{type(err).__name__}); transient, rerun the job to resume"
        )

    def _bucket_exists(self) -> bool:
        """Whether the bucket exists, asked with a one-result object listing.

        `bucket.exists()` reads bucket metadata (storage.buckets.get), which
        roles/storage.objectAdmin does not grant: real GCS answers 403 and a new
        job would be told its bucket is missing. Listing needs only
        storage.objects.list, which every role that can use the job dir has."""
        from google.api_core import exceptions as gexc

        try:
            list(
                self.bucket.client.list_blobs(self.bucket_name, max_results=1, timeout=self.TIMEOUT, retry=self.retry())
            )
        except gexc.NotFound:
            return False
        except gexc.Forbidden:
            raise self._permission_denied("list objects") from None
        except Exception as err:
            if isinstance(err, (gexc.GoogleAPICallError, gexc.RetryError, ConnectionError)) or type(
                err
            ).__module__.startswith(("requests", "urllib3")):
                raise self._unreachable("list objects", err) from None
            raise
        return True

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- objects
    def local(self, key: str = "") -> str:
        """The staging path of `key`; refuses object names that would leave the staging folder."""
        return key_path(self.root, key)

    path = local

    def exists(self, key: str) -> bool:
        return self._call(
            f"stat {key}", lambda: self.bucket.blob(self._name(key)).exists(timeout=self.TIMEOUT, retry=self.retry())
        )

    def get(self, key: str) -> bytes:
        from google.api_core import exceptions as gexc

        try:
            return self._call(
                f"read {key}",
                lambda: self.bucket.blob(self._name(key)).download_as_bytes(
                    timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
                ),
            )
        except gexc.NotFound:
            raise FileNotFoundError(key) from None

    def put(self, key: str, data: bytes) -> None:
        self._call(
            f"write {key}",
            lambda: self.bucket.blob(self._name(key)).upload_from_string(
                data, timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
            ),
        )

    def read_versioned(self, key: str) -> tuple[Optional[bytes], str]:
        """(content or None, generation): the object's GCS generation, for `replace_if`."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self._name(key))
        try:
            data = self._call(
                f"read {key}",
                lambda: blob.download_as_bytes(timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"),
            )
        except gexc.NotFound:
            return None, ""
        return data, str(blob.generation)

    def replace_if(self, key: str, data: bytes, version: str) -> str:
        """One upload with if_generation_match (0 = must be absent): raises Changed if another writer
        replaced the object since `version`. Returns the new generation."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self._name(key))
        try:
            self._call(
                f"write {key}",
                lambda: blob.upload_from_string(
                    data,
                    if_generation_match=int(version or 0),
                    timeout=self.TIMEOUT,
                    retry=self.retry(),
                    checksum="crc32c",
                ),
            )
        except gexc.PreconditionFailed:
            current, generation = self.read_versioned(key)
            if current != data:  # not a retry of our own successful write
                raise Changed(key) from None
            return generation
        return str(blob.generation)

    def put_new(self, key: str, data: bytes) -> None:
        from google.api_core import exceptions as gexc

        try:
            self._call(
                f"create {key}",
                lambda: self.bucket.blob(self._name(key)).upload_from_string(
                    data, if_generation_match=0, timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
                ),
            )
        except gexc.PreconditionFailed:
            if self.get(key) != data:  # a retry of our own successful write is not a conflict
                raise AlreadyExists(key) from None

    def _upload_file(self, local_path: str, key: str, metadata: Optional[dict] = None) -> None:
        """Uploads one file if absent; a 412 with identical content counts as done."""
        from google.api_core import exceptions as gexc

        blob = self.bucket.blob(self._name(key))
        if metadata:
            blob.metadata = {k: str(v) for k, v in metadata.items()}
        try:
            self._call(
                f"upload {key}",
                lambda: blob.upload_from_filename(
                    local_path, if_generation_match=0, timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
                ),
            )
        except gexc.PreconditionFailed:
            existing = self._call(f"stat {key}", lambda: self.bucket.get_blob(self._name(key), timeout=self.TIMEOUT))
            if existing is None or existing.crc32c != file_crc32c(local_path):
                raise AlreadyExists(key) from None

    def publish_file(self, local_path: str, key: str, metadata: Optional[dict] = None) -> None:
        """One upload with if_generation_match=0 and a crc32c check: the object appears whole or not at all."""
        self._upload_file(local_path, key, metadata)
        os.unlink(local_path)

    def publish_folder(self, local_dir: str, key: str) -> None:
        """Uploads every file of a finished folder (in parallel), then removes it locally."""
        files = [
            (os.path.join(d, f), os.path.relpath(os.path.join(d, f), local_dir).replace(os.sep, "/"))
            for d, _, names in os.walk(local_dir)
            for f in names
        ]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(self._upload_file, path, f"{key}/{rel}") for path, rel in files]:
                future.result()
        shutil.rmtree(local_dir, ignore_errors=True)

    def fetch(self, key: str) -> str:
        """Downloads `key` into the staging folder (crc32c-checked) and returns the path."""
        target = self.local(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temp = f"{target}.part-{uuid.uuid4().hex[:8]}"
        self._call(
            f"download {key}",
            lambda: self.bucket.blob(self._name(key)).download_to_filename(
                temp, timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
            ),
        )
        os.replace(temp, target)
        return target

    def sync_up(self, key: str) -> None:
        """Uploads (replacing) files under local(key) that changed since the last sync."""
        with self._sync_lock:
            self._sync_up(key)

    def _sync_up(self, key: str) -> None:
        for path, signature in changed_files(self.local(key), self._synced):
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            self._call(
                f"sync {rel}",
                lambda: self.bucket.blob(self._name(rel)).upload_from_filename(
                    path, timeout=self.TIMEOUT, retry=self.retry(), checksum="crc32c"
                ),
            )
            self._synced[path] = signature

    def blobs(self, prefix: str = "") -> dict:
        """{key: blob} under a folder key (the blobs carry size and crc32c)."""
        name = self._name(prefix)
        name = name + "/" if name and not name.endswith("/") else name
        found = self._call(
            f"list {prefix}",
            lambda: list(
                self.bucket.client.list_blobs(self.bucket_name, prefix=name, timeout=self.TIMEOUT, retry=self.retry())
            ),
        )
        strip = len(self.prefix) + 1 if self.prefix else 0
        return {b.name[strip:]: b for b in found}

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.blobs(prefix))

    def stat_range(self, first: str, last: str) -> Iterator[tuple[str, ObjectInfo]]:
        """(key, info) of the objects with `first` <= key <= `last` (keys of one folder), in key order,
        listed a page at a time from `first` on: a caller that stops early reads fewer pages."""
        folder = posixpath.dirname(first)
        if posixpath.dirname(last) != folder:
            raise ValueError(f"stat_range: {first!r} and {last!r} are not in one folder")
        prefix = self._name(folder) if folder else self.prefix
        prefix = prefix + "/" if prefix else ""
        strip = len(self.prefix) + 1 if self.prefix else 0
        listing = self._call(
            f"list {first}..{last}",
            lambda: self.bucket.client.list_blobs(
                self.bucket_name,
                prefix=prefix,
                start_offset=self._name(first),
                delimiter="/",  # this folder's objects only
                timeout=self.TIMEOUT,
                retry=self.retry(),
            ),
        )
        pages = iter(listing.pages)
        while True:
            page = self._call(f"list {first}..{last}", lambda: next(pages, None))
            if page is None:
                return
            for blob in page:
                key = blob.name[strip:]
                if key < first:  # a server that ignores start_offset still gives the right answer
                    continue
                if key > last:
                    return
                yield key, ObjectInfo(int(blob.size), dict(blob.metadata or {}))

    def stat_all(self, prefix: str = "") -> dict[str, ObjectInfo]:
        return {k: ObjectInfo(int(b.size), dict(b.metadata or {})) for k, b in self.blobs(prefix).items()}

    def folders(self, key: str) -> list[str]:
        return sorted({k[len(key) + 1 :].split("/")[0] for k in self.list(key) if "/" in k[len(key) + 1 :]})

    def delete(self, key: str) -> None:
        """Deletes an object or every object under a folder key, and its staged local copy;
        already gone counts as deleted."""
        from google.api_core import exceptions as gexc

        staged = self.local(key)
        if key and os.path.isdir(staged):
            shutil.rmtree(staged, ignore_errors=True)
        elif key and os.path.isfile(staged):
            os.unlink(staged)
        self._synced = {path: sig for path, sig in self._synced.items() if not path.startswith(staged)}

        for k in self.list(key) or ([key] if self.exists(key) else []):
            try:
                self._call(
                    f"delete {k}",
                    lambda: self.bucket.blob(self._name(k)).delete(timeout=self.TIMEOUT, retry=self.retry()),
                )
            except gexc.NotFound:  # deleted meanwhile (by a retry of ours, or another cleaner)
                pass

    def check_writable(self) -> None:
        probe = f".write-probe-{uuid.uuid4().hex}"
        self.put(probe, b"")
        self.delete(probe)
        os.makedirs(self.root, exist_ok=True)


def file_crc32c(path: str) -> str:
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()
