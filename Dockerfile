# The dcgan-factory job image: `docker run IMAGE train --job_dir=gs://...`.
#   docker build -t REGION-docker.pkg.dev/PROJECT/repo/dcgan:TAG .
# TensorFlow 2.21 with CUDA comes from the official image; pip finds
# tensorflow==2.21.0 already satisfied and adds only this package's dependencies.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/dcgan-factory
COPY pyproject.toml README.md LICENSE ./
COPY trainer ./trainer
RUN python3 -m pip install --no-cache-dir . \
    && useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin dcgan

# Staging and dataset caches go to the user's home (~/.cache/dcgan-factory).
USER 1000:1000
WORKDIR /home/dcgan
ENTRYPOINT ["dcgan"]
CMD ["--help"]
