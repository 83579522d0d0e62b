# The score stage's image: reward models through transformers, the LLM judge client (standard library HTTP to an
# OpenAI-compatible endpoint), the SQL verifier (sqlglot + sqlite3); vLLM's pooling runner optionally.
#
# Build from the repository root:
#   docker build -f k8s/images/score.Dockerfile -t tao-score:<version> .                        (no vLLM)
#   docker build -f k8s/images/score.Dockerfile --build-arg WITH_VLLM=1 -t tao-score-vllm:<version> .
# It has not been built where it was written (no Docker engine there); its pins were checked to resolve to
# binary wheels for CPython 3.12 on manylinux x86_64 (pip install --dry-run, with the vLLM layer), and
# jobs/tests/test_images.py checks its shape.
# BASE: the Python base image (default the public one); scripts/k8s/build-images.sh passes a local equivalent
# built from Debian packages where Docker Hub cannot be reached.
ARG BASE
FROM ${BASE:-python:3.12-slim-bookworm}

ARG WITH_VLLM=0

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    VLLM_NO_USAGE_STATS=1 \
    TOKENIZERS_PARALLELISM=false

# Triton (torch, vLLM) compiles small C stubs at run time: it needs a C compiler.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*

COPY k8s/images/requirements-score.txt k8s/images/requirements-score-vllm.txt /tmp/
RUN pip install --only-binary=:all: -r /tmp/requirements-score.txt \
 && if [ "$WITH_VLLM" = "1" ]; then \
      pip install --only-binary=:all: -r /tmp/requirements-score.txt -r /tmp/requirements-score-vllm.txt; \
    fi

RUN useradd --uid 10001 --create-home tao
COPY jobs/src /opt/tao/src
ENV PYTHONPATH=/opt/tao/src
USER 10001
WORKDIR /home/tao

ENTRYPOINT ["python", "-m", "tao_jobs"]
