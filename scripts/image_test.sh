#!/usr/bin/env bash
# Build the CPU image and run it end to end, with podman or docker (`make image-test`).
#
#   bash scripts/image_test.sh                 # the CPU image, end to end
#   bash scripts/image_test.sh --gpu-builder   # also build the GPU Dockerfile's builder stage
#
# 1. Base: the Dockerfile's published base when it can be pulled, else one made here from Debian
#    packages (debootstrap --variant=minbase bookworm + python3, python3-venv; `podman import`).
# 2. Builds docker/Dockerfile.cpu with that base (BASE_IMAGE), timing it.
# 3. Runs it as its non-root user, read-only root filesystem (a tmpfs on /tmp), a fresh named models
#    volume (filled from the image's /models), and waits for the HEALTHCHECK to say healthy.
# 4. From outside: /readyz, a stylized sample photo, a synthesized example map, generated digits.
# 5. Checks the root filesystem refuses a write and the user is uid 10001.
# 6. SIGTERM (stop with a grace period): a clean exit (code 0) well within it.
# Prints the image size, build and start-up times, and writes them to $OUT/report.json.
#
# Engine flags that this kind of machine needs (podman 4.3 on hybrid cgroups, rootful in a sandbox):
# PODMAN_FLAGS (default "--runtime runc --cgroup-manager cgroupfs") and RUN_FLAGS (default
# "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host"); the server's port is PORT
# (default 8000: with the host network it must be free). A local base trusts this machine's CA bundle
# (HOST_CA, default /etc/ssl/certs/ca-certificates.crt). The image and volume are removed at the end
# (KEEP=1 keeps them); the base and the build cache stay for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_BUILDER=0
[ "${1:-}" = "--gpu-builder" ] && GPU_BUILDER=1
OUT=${OUT:-runs/image-test}
PORT=${PORT:-8000}
TAG=${TAG:-localhost/stylenorm:cpu-test}
NAME=stylenorm-image-test
VOLUME=stylenorm-image-test-models
LOCAL_BASE=localhost/stylenorm-base:bookworm
MIRROR=${MIRROR:-http://deb.debian.org/debian}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
mkdir -p "$OUT"

BUILD_FORMAT=()
HEALTHCHECK_FIELD='{{json .Config.Healthcheck}}'
if command -v podman > /dev/null; then
    # shellcheck disable=SC2086
    ENGINE=(podman ${PODMAN_FLAGS:---runtime runc --cgroup-manager cgroupfs})
    ENGINE_NAME="podman $(podman --version | awk '{print $3}')"
    BUILD_FORMAT=(--format docker)  # the OCI image format has no HEALTHCHECK: podman would drop it
    HEALTHCHECK_FIELD='{{json .HealthCheck}}'
elif command -v docker > /dev/null; then
    ENGINE=(docker)
    ENGINE_NAME="docker $(docker version --format '{{.Server.Version}}' 2> /dev/null || echo '?')"
else
    echo "image-test: neither podman nor docker is installed (Debian: apt-get install podman runc)" >&2
    exit 2
fi
# shellcheck disable=SC2206
RUN=(${RUN_FLAGS:---ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host})
log() { printf '\n== %s\n' "$*"; }
fail() { echo "image-test FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        "${ENGINE[@]}" rm -f "$NAME" > /dev/null 2>&1 || true
        "${ENGINE[@]}" volume rm -f "$VOLUME" > /dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
cleanup

# ---- 1. the base image
PUBLISHED=$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile.cpu)
log "base image: $PUBLISHED"
if timeout 120 "${ENGINE[@]}" pull -q "$PUBLISHED" > /dev/null 2>&1; then
    BASE=$PUBLISHED
elif "${ENGINE[@]}" image exists "$LOCAL_BASE" 2> /dev/null; then
    BASE=$LOCAL_BASE
    echo "cannot pull it; using the local base made earlier: $BASE"
else
    echo "cannot pull it; making $LOCAL_BASE from Debian packages ($MIRROR)"
    command -v debootstrap > /dev/null || fail "debootstrap is needed for a local base (apt-get install debootstrap)"
    root=$(mktemp -d /var/tmp/stylenorm-base.XXXXXX)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$MIRROR" \
        > "$OUT/debootstrap.log" 2>&1 || { tail -20 "$OUT/debootstrap.log"; fail "debootstrap"; }
    ln -sf python3 "$root/usr/bin/python"                     # the Dockerfiles call `python`
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    # This machine's CA bundle, so pip in the build trusts what this machine trusts (a TLS-inspecting
    # proxy's CA, say); pip reads its own certifi bundle unless PIP_CERT names another.
    cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
    tar -C "$root" -c . | "${ENGINE[@]}" import --change 'CMD ["python3"]' \
        --change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt" - "$LOCAL_BASE" > /dev/null
    rm -rf "$root"
    BASE=$LOCAL_BASE
fi

# ---- 2. build the CPU image
log "build docker/Dockerfile.cpu (BASE_IMAGE=$BASE) with $ENGINE_NAME"
start=$(now)
"${ENGINE[@]}" build "${BUILD_FORMAT[@]}" "${RUN[@]}" --build-arg "BASE_IMAGE=$BASE" -f docker/Dockerfile.cpu \
    -t "$TAG" . \
    > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; fail "the build"; }
BUILD_S=$(since "$start")
SIZE=$("${ENGINE[@]}" image inspect --format '{{.Size}}' "$TAG")
echo "built in ${BUILD_S} s; $(python3 -c "print(f'{$SIZE / 1e9:.2f}')") GB"

if [ "$GPU_BUILDER" = 1 ]; then
    log "build the GPU Dockerfile's builder stage (BASE_IMAGE=$BASE: apt python3, the venv, torch, the project)"
    "${ENGINE[@]}" build "${BUILD_FORMAT[@]}" "${RUN[@]}" --build-arg "BASE_IMAGE=$BASE" -f docker/Dockerfile \
        --target builder \
        -t localhost/stylenorm:gpu-builder-test . > "$OUT/build-gpu.log" 2>&1 \
        || { tail -30 "$OUT/build-gpu.log"; fail "the GPU builder stage"; }
    echo "the GPU builder stage builds"
fi

# ---- 3. run it: non-root, read-only root, a fresh models volume
if python3 -c "import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $PORT)) != 0)"; then
    fail "port $PORT is taken (PORT=... to use another)"
fi
log "run (read-only root, volume $VOLUME on /models, port $PORT)"
start=$(now)
# the image's own CMD on port 8000; another PORT repeats that command with its port changed
COMMAND=()
[ "$PORT" = 8000 ] || COMMAND=(stylenorm serve --host 0.0.0.0 --port "$PORT" --workers 1)
"${ENGINE[@]}" run -d --name "$NAME" "${RUN[@]}" --read-only --tmpfs /tmp:rw,size=256m \
    -v "$VOLUME:/models" "$TAG" "${COMMAND[@]}" > /dev/null
URL="http://127.0.0.1:$PORT"
"${ENGINE[@]}" image inspect --format "$HEALTHCHECK_FIELD" "$TAG" | grep -q healthz \
    || fail "the image carries no HEALTHCHECK"
health=""
for _ in $(seq 1 240); do
    # podman runs a HEALTHCHECK by its systemd timer; without systemd, run it by hand (the same command)
    if [ "${ENGINE[0]}" = podman ]; then "${ENGINE[@]}" healthcheck run "$NAME" > /dev/null 2>&1 || true; fi
    health=$("${ENGINE[@]}" inspect --format '{{.State.Health.Status}}' "$NAME" 2> /dev/null || echo "?")
    [ "$health" = healthy ] && break
    [ "$("${ENGINE[@]}" inspect --format '{{.State.Running}}' "$NAME")" = true ] || {
        "${ENGINE[@]}" logs "$NAME" | tail -30; fail "the container exited"; }
    sleep 0.5
done
HEALTHY_S=$(since "$start")
[ "$health" = healthy ] || { "${ENGINE[@]}" logs "$NAME" | tail -30; fail "not healthy: $health"; }
for _ in $(seq 1 240); do
    curl -fs "$URL/readyz" > /dev/null && break
    sleep 0.5
done
READY_S=$(since "$start")
curl -fs "$URL/readyz" > /dev/null || fail "/readyz never answered 200"
echo "healthy after ${HEALTHY_S} s, ready (models loaded and warmed) after ${READY_S} s"

# ---- 4. from outside
log "requests from outside the container"
curl -fs "$URL/v1/models" -o "$OUT/models.json" || fail "GET /v1/models"
python3 - "$OUT/models.json" <<'EOF'
import json, sys
names = {m["name"] for m in json.load(open(sys.argv[1]))["available"]}
print("models:", ", ".join(sorted(names)))
assert {"adain-open", "scenes", "color-transfer"} <= names, names
EOF
curl -fs -F model=adain-open -F styles=bark -F content=@stylenorm/server/static/samples/kite.jpg \
    "$URL/v1/stylize" -o "$OUT/stylized.png" || fail "POST /v1/stylize"
curl -fs -F model=scenes -F labels=@models/scenes/example.png -F seed=1 \
    "$URL/v1/synthesize" -o "$OUT/synthesized.png" || fail "POST /v1/synthesize"
GENERATE=skipped
if grep -q '"digits"' "$OUT/models.json"; then
    curl -fs -H 'Content-Type: application/json' -d '{"model": "digits", "class_name": "3", "count": 4}' \
        "$URL/v1/generate" -o "$OUT/generated.json" || fail "POST /v1/generate"
    GENERATE=ok
fi
python3 - "$OUT" <<'EOF'
import struct, sys
from pathlib import Path
for name, want in (("stylized.png", (819, 512)), ("synthesized.png", None)):
    data = (Path(sys.argv[1]) / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", name
    size = struct.unpack(">II", data[16:24])
    assert want is None or size == want, (name, size)
    print(f"{name}: PNG {size[0]}x{size[1]}")
EOF

# ---- 5. the user and the read-only root
uid=$("${ENGINE[@]}" exec "$NAME" python -c "import os; print(os.getuid())")
[ "$uid" = 10001 ] || fail "runs as uid $uid, not 10001"
if "${ENGINE[@]}" exec "$NAME" python -c "open('/opt/venv/x', 'w')" 2> /dev/null; then
    fail "the root filesystem took a write"
fi
echo "runs as uid $uid; the root filesystem refuses writes"
VENV_MB=$("${ENGINE[@]}" exec "$NAME" du -sm /opt/venv | cut -f1)
TRITON=$("${ENGINE[@]}" exec "$NAME" python -c "import importlib.util as u; print(u.find_spec('triton') is not None)")
echo "venv ${VENV_MB} MB; triton installed: $TRITON"

# ---- 6. SIGTERM: a clean exit within the grace period
log "SIGTERM"
start=$(now)
"${ENGINE[@]}" stop -t 30 "$NAME" > /dev/null
STOP_S=$(since "$start")
code=$("${ENGINE[@]}" inspect --format '{{.State.ExitCode}}' "$NAME")
"${ENGINE[@]}" logs "$NAME" > "$OUT/server.log" 2>&1 || true
[ "$code" = 0 ] || { tail -20 "$OUT/server.log"; fail "exit code $code after SIGTERM"; }
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= 25)" "$STOP_S" || fail "took ${STOP_S} s to stop"
echo "stopped cleanly (exit 0) ${STOP_S} s after SIGTERM"

python3 - "$OUT/report.json" <<EOF
import json, sys
report = {"engine": "$ENGINE_NAME", "base": "$BASE", "image": "$TAG", "size_bytes": $SIZE,
          "build_s": $BUILD_S, "healthy_s": $HEALTHY_S, "ready_s": $READY_S, "stop_s": $STOP_S,
          "venv_mb": $VENV_MB, "triton": "$TRITON",
          "generate": "$GENERATE", "gpu_builder": bool($GPU_BUILDER)}
json.dump(report, open(sys.argv[1], "w"), indent=2)
print(json.dumps(report, indent=2))
EOF
log "image-test passed"
