# Every stage on CPU (the transformers engine, no vLLM): the image of dev clusters (k8s/overlays/dev) and of the
# tests that run the stage contract and stage Jobs on a real node. torch is PyPI's build, whose CUDA libraries
# come along (PyPI has no CPU-only torch); they are never loaded on a node without a GPU.
#
# Build from the repository root:
#   docker build -f k8s/images/jobs-cpu.Dockerfile -t tao-jobs-cpu:<version> .
# BASE: the Python base image (default the public one; scripts/k8s/build-images.sh passes a local equivalent
# built from Debian packages where Docker Hub cannot be reached). pip settings come in as build arguments
# (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX: e.g. a local wheelhouse) and a TLS-inspecting proxy's CA as
# the build secret `ca`; neither stays in the image.
ARG BASE
FROM ${BASE:-python:3.12-slim-bookworm}

ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TOKENIZERS_PARALLELISM=false

COPY k8s/images/requirements-jobs-cpu.txt /tmp/requirements.txt
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    pip install --only-binary=:all: -r /tmp/requirements.txt

RUN useradd --uid 10001 --create-home tao
COPY jobs/src /opt/tao/src
ENV PYTHONPATH=/opt/tao/src
USER 10001
WORKDIR /home/tao

ENTRYPOINT ["python", "-m", "tao_jobs"]
