# The Temporal worker (and the tao CLI).
#   docker build -f k8s/images/worker.Dockerfile -t tao-worker .
# BASE: the Node base image (default the public one); scripts/k8s/build-images.sh passes a local equivalent
# built from Debian packages where Docker Hub cannot be reached. A TLS-inspecting proxy's CA comes in as the
# build secret `ca` (npm reads it through NODE_EXTRA_CA_CERTS) and does not stay in the image.
ARG BASE
FROM ${BASE:-node:20.19-bookworm-slim}
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi; \
    npm ci --omit=dev --no-audit --no-fund
COPY common ./common
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY scripts ./scripts
# the stage code's sources: their hash is the code version in every memo key (the stage images are built from
# the same tree); the worker runs no Python itself
COPY jobs/src ./jobs/src
COPY tsconfig.json ./
USER node
# SIGTERM reaches node directly (exec form): the worker drains and leaves running stage Jobs for adoption.
ENTRYPOINT ["node", "--import", "tsx", "scripts/tao.ts"]
CMD ["worker"]
