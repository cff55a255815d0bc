#!/usr/bin/env bash
# The kind tier's own Docker engine, next to (never instead of) the machine's default one.
#
#   hack/kind/dockerd.sh start    start it unless it runs; prints its DOCKER_HOST
#   hack/kind/dockerd.sh host     prints its DOCKER_HOST (exit 1 if it does not run)
#   hack/kind/dockerd.sh stop     stop it and check that nothing is left behind
#
# Why a second engine: kind starts its nodes --privileged, and where the processes that run
# Docker lack CAP_SYS_RESOURCE (as here) runc cannot start a privileged container. This engine's
# default runtime is hack/kind/runc-drop-sys-resource, which drops that one capability. The
# machine's engine is left alone: another engineer's or CI's containers may be running there.
#
# Nothing is shared with the default engine: its own socket, exec-root, pidfile and containerd
# namespace under $STRATOPS_KIND_RUN_DIR (default /run/stratops-kind); its data-root (images,
# the node image included: the cache) under the stratops cache; a default bridge of its own
# (stkind0, made here: with "bridge": "none" dockerd deletes the host's docker0 at start, which
# broke every `docker run` of the default engine until it restarted); and it never
# touches iptables or the host's sysctls (the default engine's rules stay as they are; published
# ports go through docker-proxy). Needs root and dockerd (Debian: apt-get install docker.io).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
run=${STRATOPS_KIND_RUN_DIR:-/run/stratops-kind}
data="$cache/kind/docker"
sock="$run/docker.sock"
pidfile="$run/docker.pid"
bridge=stkind0  # its default bridge (10.213.255.1/24, from its own pool): never docker0
export DOCKER_HOST="unix://$sock"

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && docker info >/dev/null 2>&1
}

start() {
  if running; then echo "$DOCKER_HOST"; return; fi
  [ "$(id -u)" = 0 ] || { echo "the kind tier's Docker engine needs root (run as root, or use your own Docker: see README, kind)" >&2; exit 1; }
  command -v dockerd >/dev/null || { echo "dockerd is not installed (Debian: apt-get install docker.io)" >&2; exit 1; }
  command -v runc >/dev/null || { echo "runc is not installed (Debian: apt-get install runc)" >&2; exit 1; }
  mkdir -p "$run" "$data"
  # A pidfile left by an engine that died: dockerd refuses to start over it.
  rm -f "$pidfile" "$sock"
  # At start, dockerd clears the default "bridge" network it stored the time before, and with it
  # an interface by the default name: the host's docker0, the default engine's, after which every
  # `docker run` there fails until it restarts. A network store with no such record clears
  # nothing: start from an empty one whenever no container of this engine is left (one that is
  # would lose its networks; then say what to expect).
  if [ -z "$(ls -A "$data/containers" 2>/dev/null)" ]; then
    rm -rf "$data/network"
  elif ip link show docker0 >/dev/null 2>&1; then
    echo "warning: containers of the kind tier's engine are left in $data/containers (a crash?): starting over" \
      "its network store; the host's docker0 may go (restart the default engine: pkill dockerd; dockerd &)" >&2
  fi
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
    ip addr add 10.213.255.1/24 dev "$bridge"
    ip link set "$bridge" up
  fi
  cat >"$run/daemon.json" <<EOF
{
  "hosts": ["$DOCKER_HOST"],
  "data-root": "$data",
  "exec-root": "$run/exec",
  "pidfile": "$pidfile",
  "containerd-namespace": "stratops-kind",
  "containerd-plugins-namespace": "stratops-kind-plugins",
  "bridge": "$bridge",
  "iptables": false,
  "ip6tables": false,
  "ip-forward": false,
  "ip-masq": false,
  "default-address-pools": [{"base": "10.213.0.0/16", "size": 24}],
  "runtimes": {"runc-drop-sys-resource": {"path": "$here/runc-drop-sys-resource"}},
  "default-runtime": "runc-drop-sys-resource",
  "log-level": "warn"
}
EOF
  # setsid: the engine outlives this script (kind-up returns, the cluster keeps running), and
  # is stopped by `make kind-down` (hack/kind/dockerd.sh stop).
  setsid dockerd --config-file "$run/daemon.json" >"$run/dockerd.log" 2>&1 </dev/null &
  local deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 $! 2>/dev/null; then
      echo "the kind tier's Docker engine did not start; its log ($run/dockerd.log) ends:" >&2
      tail -n 15 "$run/dockerd.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "$DOCKER_HOST"
}

stop() {
  if running; then
    local left
    left=$(docker ps -aq)
    if [ -n "$left" ]; then
      echo "containers still on the kind tier's Docker engine: delete them first (make kind-down KIND_CLUSTER=NAME):" >&2
      docker ps -a --format '  {{.Names}} ({{.Status}})' >&2
      exit 1
    fi
    # The networks' bridges outlive the engine: remove them while it can (kind leaves its own).
    docker network prune -f >/dev/null
    local pid
    pid=$(cat "$pidfile")
    kill "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { echo "dockerd ($pid) did not stop within 30 s" >&2; exit 1; }
      sleep 0.2
    done
  fi
  # What must not outlive it: processes (containerd, shims, docker-proxy), mounts, the run dir.
  local procs
  procs=$(pgrep -f -- "$run/" || true)
  [ -z "$procs" ] || { echo "processes of the kind tier's Docker engine still run: $procs" >&2; exit 1; }
  local m
  awk -v r="$run" -v d="$data" '$2 ~ "^"r || $2 ~ "^"d {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  rm -rf "$run"
  ip link delete "$bridge" 2>/dev/null || true
  # Its networks' bridges (addresses from its pool, 10.213.0.0/16).
  if command -v ip >/dev/null && ip -4 -br addr | grep -q ' 10\.213\.'; then
    echo "bridges of the kind tier's Docker engine are left: $(ip -4 -br addr | grep ' 10\.213\.')" >&2
    exit 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  host) running && echo "$DOCKER_HOST" ;;
  *) echo "usage: $0 start|stop|host" >&2; exit 2 ;;
esac
