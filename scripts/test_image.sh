#!/usr/bin/env bash
# Start the built CPU image and talk to it (`make image-test`, as root, after `make image`):
# a working container from quorum:<version>-cpu runs, as the image's user and on loopback only
# (host network, 127.0.0.1), the checks KubeRay relies on (a login shell finds `ray`), then
# `quorum up` on the image's config (embedded model prepared at build time), waits for grpc.health
# SERVING, asks "What is the capital of France?" at temperature 0, prints the answer, stops the
# cluster and removes the working container.
#
# Environment: IMAGE (default quorum:<version>-cpu), READY_TIMEOUT_S (default 900).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO/pyproject.toml" | head -n 1)
IMAGE=${IMAGE:-quorum:$VERSION-cpu}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-900}
BUILDAH=(buildah --storage-driver vfs)

ctr=$("${BUILDAH[@]}" from --name "quorum-image-test-$$" "$IMAGE")
MARK="QUORUM_IMAGE_TEST=$ctr"
cleanup() {
    # With chroot isolation the container's processes live in the host's PID namespace: stop any
    # left behind (an interrupted run) by the variable every process of this run inherits.
    local environ
    for environ in /proc/[0-9]*/environ; do
        if { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "$MARK"; then
            environ=${environ#/proc/}
            kill -TERM "${environ%/environ}" 2>/dev/null || true
        fi
    done
    "${BUILDAH[@]}" rm "$ctr" >/dev/null
    echo "== removed working container $ctr"
}
trap cleanup EXIT
echo "== working container $ctr from $IMAGE"

# shellcheck disable=SC2016  # expanded inside the container
inner='
set -euo pipefail
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # as KubeRay does before `ray start`
echo "== as $(id -un) ($(id -u):$(id -g)), HOME=$HOME, login shell finds: $(bash -lc "command -v ray quorum" | tr "\n" " ")"
python -c "import ray, vllm, torch, quorum.services.app; print(\"== ray\", ray.__version__, \"vllm\", vllm.__version__, \"torch\", torch.__version__)"
python - <<EOF
import yaml
with open("/opt/quorum/quorum.yaml") as f:
    config = yaml.safe_load(f)
# Port 0: the gateway and Serve pick free loopback ports when they bind (other clusters share this host).
config["gateway"].update(host="127.0.0.1", grpc_port=0, http_host="127.0.0.1", http_port=0)
config["models"][0]["engine"]["kv_cache_memory_gib"] = 0.5  # a shared machine
config.setdefault("ray", {})["metrics_export_port"] = None  # Ray picks a free one
with open("/tmp/image-test.yaml", "w") as f:
    yaml.safe_dump(config, f)
EOF
quorum up --config /tmp/image-test.yaml > /tmp/quorum-up.log 2>&1 &
up=$!
start=$SECONDS
target=
until [ -n "$target" ] && quorum status --target "$target" --timeout 10 > /dev/null 2>&1; do
    target=$(sed -n "s/.*gateway at \(127\.0\.0\.1:[0-9]*\).*/\1/p" /tmp/quorum-up.log | head -n 1)
    if ! kill -0 $up 2>/dev/null || [ $((SECONDS - start)) -gt $READY_TIMEOUT_S ]; then
        echo "== quorum up did not become SERVING; its output:" >&2
        grep -m 3 -E "Memory on the node|Error|error:" /tmp/quorum-up.log >&2 || true
        tail -n 30 /tmp/quorum-up.log >&2
        kill -TERM $up 2>/dev/null || true
        wait $up || true
        exit 1
    fi
    sleep 5  # polling interval of the health check, not a synchronisation
done
echo "== SERVING at $target after $((SECONDS - start)) s"
quorum status --target "$target"
echo "== quorum chat \"What is the capital of France?\" --temperature 0"
quorum chat --target "$target" --temperature 0 "What is the capital of France?"
# SIGINT, as Ctrl-C: Ray installs its own SIGTERM handler in the driver, which aborts the process.
kill -INT $up
rc=0
wait $up || rc=$?
if [ $rc -ne 0 ]; then
    echo "== quorum up exited with status $rc on SIGINT; the end of its output:" >&2
    tail -n 40 /tmp/quorum-up.log >&2
    exit $rc
fi
echo "== quorum up stopped"
'
"${BUILDAH[@]}" run --isolation chroot --network host --user 1000:100 \
    --env "$MARK" --env READY_TIMEOUT_S="$READY_TIMEOUT_S" \
    "$ctr" -- bash -c "$inner"
