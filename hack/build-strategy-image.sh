#!/usr/bin/env bash
# Builds the example strategy's image (examples/strategy-app) on the operator image, offline.
#   hack/build-strategy-image.sh [IMAGE] [STRATOPS_IMAGE]
#   defaults: stratops.local/mean-revert:<version>, stratops:<version> (hack/build-image.sh builds it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/operator/stratops/__init__.py")
image=${1:-stratops.local/mean-revert:$version}
base=${2:-stratops:$version}
docker build --network none --build-arg STRATOPS_IMAGE="$base" --tag "$image" "$root/examples/strategy-app" >&2
echo "$image"
