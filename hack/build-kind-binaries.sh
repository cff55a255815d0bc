#!/usr/bin/env bash
# Builds what a kind node needs beyond the local control plane's binaries: kubeadm and kube-proxy
# from k8s.io/kubernetes (hack/kind/go.mod, the same version as hack/controlplane), CoreDNS
# (hack/kind/coredns/go.mod, the version kubeadm deploys) and crictl (hack/kind/crictl/go.mod),
# into a cache directory keyed by the modules' content; prints that directory. Does nothing when
# every binary is already there.
#   usage: hack/build-kind-binaries.sh [OUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mod="$here/kind"
version=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$mod/go.mod")
pinned=$(sed -n 's/^\tk8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$here/controlplane/go.mod")
if [ "$version" != "$pinned" ]; then
  echo "hack/kind/go.mod pins k8s.io/kubernetes $version, hack/controlplane/go.mod $pinned: make them the same" >&2
  exit 1
fi
key=$(cat "$mod"/go.{mod,sum} "$mod"/coredns/go.{mod,sum} "$mod"/crictl/go.{mod,sum} | sha256sum | cut -c1-12)
cache="${STRATOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/stratops}"
out="${1:-$cache/kind-binaries-$key}"
bins=(kubeadm kube-proxy coredns crictl)
missing=0
for b in "${bins[@]}"; do [ -x "$out/$b" ] || missing=1; done
if [ "$missing" = 0 ]; then echo "$out"; exit 0; fi
command -v go >/dev/null || { echo "go is required to build kubeadm, kube-proxy, CoreDNS and crictl (apt-get install golang-go)" >&2; exit 1; }
mkdir -p "$out.tmp"
export GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
# kubeadm and kube-proxy report the module's version (as hack/build-kubectl.sh does for kubectl).
stamp="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
stamp+=" -X k8s.io/component-base/version.gitMinor=$(echo "$version" | cut -d. -f2)"
declare -A pkg=([kubeadm]=k8s.io/kubernetes/cmd/kubeadm [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [coredns]=github.com/coredns/coredns [crictl]=sigs.k8s.io/cri-tools/cmd/crictl)
declare -A dir=([kubeadm]="$mod" [kube-proxy]="$mod" [coredns]="$mod/coredns" [crictl]="$mod/crictl")
crictl_version=$(sed -n 's/^\tsigs.k8s.io\/cri-tools \(v[0-9.]*\).*/\1/p' "$mod/crictl/go.mod")
for b in "${bins[@]}"; do
  [ -x "$out/$b" ] && { cp "$out/$b" "$out.tmp/$b"; continue; }
  echo ">> building $b (${pkg[$b]}); up to three minutes on two cores the first time" >&2
  start=$SECONDS
  flags="-s -w"
  case "$b" in
    kubeadm | kube-proxy) flags+=" $stamp" ;;
    crictl) flags+=" -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" ;;
  esac
  (cd "${dir[$b]}" && go build -trimpath -ldflags "$flags" -o "$out.tmp/$b" "${pkg[$b]}")
  echo ">> built $b in $((SECONDS - start))s" >&2
done
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
