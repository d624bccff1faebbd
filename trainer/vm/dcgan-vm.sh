#!/usr/bin/env bash
# Runs one dcgan job in its container on this GPU VM, over all its GPUs
# (MirroredStrategy picks every visible GPU).
#
#   bash dcgan-vm.sh IMAGE ARGS_FILE   # ARGS_FILE: the job's arguments, one per line
#                                      # (train, --job_dir=gs://..., ...)
#   bash dcgan-vm.sh                   # as a VM startup script: IMAGE and arguments come from
#                                      # instance metadata (dcgan-image, dcgan-args, set by
#                                      # `dcgan launch vm`)
#
# A failed run is retried (DCGAN_MAX_RESTARTS times, 30 s apart) and resumes from
# the job dir's checkpoints; exit status 2 (bad input) or 3 (diverged) is not
# retried. Exit status 75 (storage unreachable after the job's own retries) is
# retried 60 s later without using up a restart, up to DCGAN_MAX_OUTAGE_RESTARTS
# times (default 48: with the job's 5 minutes of retries each, about 5 hours). When the VM restarts (a spot VM coming back) the startup script runs
# again, and so the job resumes. As a startup script with dcgan-stop-when-done=true
# the VM powers off after the job succeeds, so an idle GPU VM costs nothing.
set -euo pipefail

metadata() {
  curl -fsS -H "Metadata-Flavor: Google" \
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/$1"
}

if [[ $# -eq 2 ]]; then
  image=$1
  mapfile -t args <"$2"
  max_restarts=${DCGAN_MAX_RESTARTS:-6}
  max_outage_restarts=${DCGAN_MAX_OUTAGE_RESTARTS:-48}
  stop_when_done=false
elif [[ $# -eq 0 ]]; then
  # A failed metadata read stops here (set -e); a process substitution would hide it.
  image=$(metadata dcgan-image)
  args_text=$(metadata dcgan-args)
  mapfile -t args <<<"$args_text"
  max_restarts=$(metadata dcgan-max-restarts || echo 6)
  max_outage_restarts=$(metadata dcgan-max-outage-restarts || echo 48)
  stop_when_done=$(metadata dcgan-stop-when-done || echo false)
else
  echo "usage: $0 [IMAGE ARGS_FILE]" >&2
  exit 2
fi

if [[ -z $image || ${#args[@]} -eq 0 || -z ${args[0]} ]]; then
  echo "dcgan-vm: no image or no job arguments (dcgan-image, dcgan-args); nothing to run" >&2
  exit 2
fi

if ! command -v docker >/dev/null; then
  echo "dcgan-vm: docker is not installed; use a Deep Learning VM image" >&2
  exit 1
fi

gpu_flags=()
if nvidia-smi -L; then
  gpu_flags=(--gpus all)
else
  echo "dcgan-vm: no NVIDIA GPU visible; the job runs on the CPU" >&2
fi

registry=${image%%/*}
if [[ $registry == *-docker.pkg.dev || $registry == *gcr.io ]]; then
  gcloud auth configure-docker "$registry" --quiet
fi
docker pull "$image"

attempt=0
outages=0
while true; do
  status=0
  # SIGTERM (VM shutdown, docker stop) gives the job 120 s to commit its last checkpoint.
  docker run --rm --name dcgan-job --stop-timeout 120 "${gpu_flags[@]}" --ipc=host -e PYTHONUNBUFFERED=1 \
    "$image" "${args[@]}" || status=$?
  if [[ $status -eq 0 ]]; then
    echo "dcgan-vm: job finished"
    break
  fi
  if [[ $status -eq 2 || $status -eq 3 ]]; then
    echo "dcgan-vm: job failed with exit status $status (bad input or diverged); not retrying" >&2
    exit "$status"
  fi
  if [[ $status -eq 75 ]]; then
    outages=$((outages + 1))
    if [[ $outages -gt $max_outage_restarts ]]; then
      echo "dcgan-vm: storage unreachable $outages times; giving up" >&2
      exit "$status"
    fi
    echo "dcgan-vm: storage unreachable (exit status 75); retry $outages of $max_outage_restarts in 60 s (it resumes)" >&2
    sleep 60
    continue
  fi
  attempt=$((attempt + 1))
  if [[ $attempt -gt $max_restarts ]]; then
    echo "dcgan-vm: job failed $attempt times; giving up" >&2
    exit "$status"
  fi
  echo "dcgan-vm: job exited with $status; retry $attempt of $max_restarts in 30 s (it resumes)" >&2
  sleep 30
done

if [[ $stop_when_done == true ]]; then
  shutdown -h now "dcgan job finished"
fi
