# The Temporal worker (and the tao CLI). Not built here: this machine has no Docker engine.
#   docker build -f k8s/images/worker.Dockerfile -t tao-worker .
FROM node:20.19-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
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
