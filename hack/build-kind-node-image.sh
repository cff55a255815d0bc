#!/usr/bin/env bash
# Assembles a kind node image offline, from the pinned Kubernetes version the local control plane
# uses, in the kind tier's Docker engine (hack/kind/dockerd.sh); prints its tag. Does nothing
# when the image for the same inputs is there (the tag carries their hash).
#
#   hack/build-kind-node-image.sh [TAG]     default stratops.local/kind-node:<version>-<inputs>
#
# `kind build node-image` cannot work here: it pulls the pause, etcd, CoreDNS, kindnetd and
# local-path images from a registry, and needs `ctr info` (Debian's containerd 1.6 lacks it).
# So, as kind's own build does, but from what is built on this machine:
#   1. a Debian bookworm base (debootstrap: systemd, containerd, runc, CNI plugins, iptables),
#      cached as an image of its own;
#   2. the node: hack/kind/node (entrypoint, containerd, kubelet units, a bridge CNI
#      configuration, the default StorageClass) and the kubelet, kubeadm, kubectl and crictl;
#   3. the images kubeadm runs (`kubeadm config images list`), each made from its binary:
#      kube-apiserver, kube-controller-manager, kube-scheduler, etcd and pause from
#      hack/build-controlplane.sh, kube-proxy (with Debian's iptables) and CoreDNS from
#      hack/build-kind-binaries.sh; preloaded into the node's containerd (namespace k8s.io,
#      pinned) in a build container, which is then committed, as kind does.
# No kindnetd and no local-path-provisioner: the node's pod network is the bridge plugin (one
# node), and its StorageClass is the controller-manager's host-path provisioner.
#
# Needs root, debootstrap, a Debian mirror (DEBIAN_MIRROR) the first time, dockerd, and Go.
set -euo pipefail
hack=$(cd "$(dirname "$0")" && pwd)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bookworm
started=$SECONDS
say() { echo ">> kind node image: $* ($((SECONDS - started))s)" >&2; }

[ "$(id -u)" = 0 ] || { echo "building the kind node image needs root (debootstrap, Docker)" >&2; exit 1; }
DOCKER_HOST=$(bash "$hack/kind/dockerd.sh" start)
export DOCKER_HOST

version=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$hack/controlplane/go.mod")
# What the image is made of: the node's files, these scripts, and the Go modules every binary
# comes from (the binaries' caches are keyed by the same modules).
key=$(
  cd "$hack"
  find kind/node kind/go.mod kind/go.sum kind/coredns kind/crictl controlplane kubectl \
    build-kind-node-image.sh build-kind-binaries.sh -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-12
)
tag=${1:-stratops.local/kind-node:$version-$key}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (Debian: apt-get install debootstrap)" >&2; exit 1; }

say "binaries: control plane, kubectl, kubeadm, kube-proxy, CoreDNS, crictl (cached after the first build)"
controlplane=$(bash "$hack/build-controlplane.sh")
kubectl=$(bash "$hack/build-kubectl.sh")
binaries=$(bash "$hack/build-kind-binaries.sh")

work=$(mktemp -d)
builder=""
unloaded="stratops.local/kind-node-unloaded:$key"
images=()
cleanup() {
  [ -z "$builder" ] || docker rm -f -v "$builder" >/dev/null 2>&1 || true
  docker rmi "$unloaded" "${images[@]}" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The base: Debian with systemd and the container runtime. Keyed by its package list.
packages=systemd,systemd-sysv,containerd,runc,containernetworking-plugins,iptables,iproute2,conntrack,kmod,procps,ca-certificates
base="stratops.local/kind-base:$suite-$(echo "$suite $packages $(sed -n '/^  # base: /,/^  # base end/p' "$0")" | sha256sum | cut -c1-12)"
if ! docker image inspect "$base" >/dev/null 2>&1; then
  say "debootstrap $suite with $packages (about a minute)"
  rootfs="$work/rootfs"
  debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    echo "debootstrap failed (is $mirror reachable? DEBIAN_MIRROR names another)" >&2
    exit 1
  }
  # base: systemd as a container's init, as kind's base image has it: no units but those the
  # node enables (the Dockerfile), no kernel log in the journal, no binfmt registration (global
  # to the kernel), no temporary-files cleanup at boot.
  (
    cd "$rootfs"
    rm -f lib/systemd/system/multi-user.target.wants/* etc/systemd/system/*.wants/* \
      lib/systemd/system/local-fs.target.wants/* lib/systemd/system/sockets.target.wants/*udev* \
      lib/systemd/system/sockets.target.wants/*initctl* lib/systemd/system/basic.target.wants/* \
      lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service
    echo "ReadKMsg=no" >>etc/systemd/journald.conf
    ln -sf /dev/null etc/systemd/system/systemd-binfmt.service
    : >etc/machine-id
    rm -rf var/lib/apt/lists/* var/cache/apt/*.bin usr/share/doc/* usr/share/man/* usr/share/locale/* usr/share/info/*
  )
  # base end
  tar -C "$rootfs" --numeric-owner -c . | docker import - "$base" >/dev/null
  rm -rf "$rootfs"
fi

# 2. The node.
say "node: files, kubelet, kubeadm, kubectl on $base"
mkdir -p "$work/context/bin"
cp -a "$hack/kind/node/files" "$work/context/files"
cp "$controlplane/kubelet" "$binaries/kubeadm" "$binaries/crictl" "$kubectl" "$work/context/bin/"
docker build --network none -f "$hack/kind/node/Dockerfile" --build-arg BASE_IMAGE="$base" \
  --build-arg KUBERNETES_VERSION="$version" --tag "$unloaded" "$work/context" >"$work/build.log" 2>&1 || {
  tail -n 20 "$work/build.log" >&2
  exit 1
}

# 3. The images kubeadm will run, each made from its binary.
say "images kubeadm runs, from the binaries"
image_from() { # NAME DIR [ENTRYPOINT]: an image of DIR's tree
  local change=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  [ -z "${3:-}" ] || change+=(--change "ENTRYPOINT [\"$3\"]")
  tar -C "$2" --numeric-owner --owner=0 --group=0 -c . | docker import "${change[@]}" - "$1" >/dev/null
  images+=("$1")
}
for name in $("$binaries/kubeadm" config images list --kubernetes-version "$version"); do
  component=$(basename "${name%:*}")
  dir="$work/image-$component"
  mkdir -p "$dir/usr/local/bin"
  case "$component" in
    kube-apiserver | kube-controller-manager | kube-scheduler | etcd)
      cp "$controlplane/$component" "$dir/usr/local/bin/"
      image_from "$name" "$dir"
      ;;
    kube-proxy)
      # kube-proxy runs iptables, iptables-save and iptables-restore: Debian's (the base's,
      # nftables backend) with the libraries and extensions they load.
      docker run --rm --network none --entrypoint /bin/bash "$base" -c '
        set -euo pipefail
        tools="/usr/sbin/iptables /usr/sbin/iptables-save /usr/sbin/iptables-restore
               /usr/sbin/ip6tables /usr/sbin/ip6tables-save /usr/sbin/ip6tables-restore"
        extensions=$(ls /usr/lib/*/xtables/*.so)
        libs=$(ldd /usr/sbin/xtables-nft-multi $extensions | awk "/=> \// {print \$3} /^\t\/lib/ {print \$1}" | sort -u)
        tar -ch $tools $extensions $libs /etc/ld.so.cache 2>/dev/null' | tar -C "$dir" -x
      cp "$binaries/kube-proxy" "$dir/usr/local/bin/"
      image_from "$name" "$dir"
      ;;
    coredns)
      cp "$binaries/coredns" "$dir/coredns"
      image_from "$name" "$dir" /coredns
      ;;
    pause)
      cp "$controlplane/pause" "$dir/pause"
      image_from "$name" "$dir" /pause
      ;;
    *)
      echo "kubeadm $version runs $name, which nothing here builds: add it to $0" >&2
      exit 1
      ;;
  esac
done

# 4. Preloaded as kind preloads them: containerd started in a build container of the node image,
#    every image imported (not unpacked: the node unpacks on first use) and pinned (the kubelet
#    never collects them), containerd stopped, the container committed.
say "preloading ${#images[@]} images into the node's containerd"
builder=$(docker run -d --network none --entrypoint sleep --security-opt seccomp=unconfined "$unloaded" infinity)
docker exec "$builder" bash -c 'containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid'
deadline=$((SECONDS + 60))
until docker exec "$builder" ctr version >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ]; then
    docker exec "$builder" tail -n 20 /tmp/containerd.log >&2 || true
    echo "containerd did not start in the build container" >&2
    exit 1
  fi
  sleep 0.2
done
docker save "${images[@]}" | docker exec -i "$builder" ctr --namespace=k8s.io images import \
  --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
loaded=$(docker exec "$builder" ctr --namespace=k8s.io images list -q)
for name in "${images[@]}"; do
  grep -qx "$name" <<<"$loaded" || { echo "$name is not in the node's containerd after the import: $loaded" >&2; exit 1; }
done
docker exec "$builder" bash -c '
  pid=$(cat /tmp/containerd.pid); kill "$pid"
  # Stopped: gone, or a zombie (sleep, the first process of the container, reaps nothing).
  stopped() { [ ! -e /proc/$pid ] || [ "$(cut -d" " -f3 /proc/$pid/stat)" = Z ]; }
  for _ in $(seq 150); do stopped && break; sleep 0.2; done
  stopped || { echo "containerd did not stop in the build container" >&2; exit 1; }
  rm -rf /tmp/* /run/containerd'
# Setting ENTRYPOINT again also drops the build container's CMD (sleep's argument).
docker commit --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' "$builder" "$tag" >/dev/null
docker rm -f -v "$builder" >/dev/null
builder=""
# Node and base images of earlier inputs are of no further use: the cache keeps the current ones.
for old in $(docker image ls --format '{{.Repository}}:{{.Tag}}' --filter 'reference=stratops.local/kind-node:*' --filter 'reference=stratops.local/kind-base:*'); do
  [ "$old" = "$tag" ] || [ "$old" = "$base" ] || docker rmi "$old" >/dev/null
done
say "built $tag"
echo "$tag"
