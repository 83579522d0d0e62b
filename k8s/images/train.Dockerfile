# The train stage's image: torch + transformers + TRL + PEFT + accelerate, no vLLM (docs/stages.md).
#
# Build from the repository root:   docker build -f k8s/images/train.Dockerfile -t tao-train:<version> .
# It has not been built where it was written (no Docker engine there); its pins were checked to resolve to
# binary wheels for CPython 3.12 on manylinux x86_64 (pip install --dry-run), and jobs/tests/test_images.py
# checks its shape.
# BASE: the Python base image (default the public one); scripts/k8s/build-images.sh passes a local equivalent
# built from Debian packages where Docker Hub cannot be reached. torch from PyPI is the CUDA build: the image runs on GPU nodes (and on CPU, slowly).
#
# One GPU: the entry point as is. Several GPUs in one pod: override the command, e.g.
#   torchrun --standalone --nproc-per-node=8 -m tao_jobs train --spec <uri>
# (only rank 0 writes outputs and the manifest).
ARG BASE
FROM ${BASE:-python:3.12-slim-bookworm}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false

# Triton (pulled in by torch) compiles small launcher stubs at run time: it needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

COPY k8s/images/requirements-train.txt /tmp/requirements.txt
RUN pip install --only-binary=:all: -r /tmp/requirements.txt

RUN useradd --uid 10001 --create-home tao
COPY jobs/src /opt/tao/src
ENV PYTHONPATH=/opt/tao/src
USER 10001
WORKDIR /home/tao

ENTRYPOINT ["python", "-m", "tao_jobs"]
