#!/usr/bin/env bash
# Builds the operator image offline: downloads a wheelhouse for the image's Python (3.11,
# Linux, this machine's architecture) with the host's pip, then `docker build --network none`.
#
#   hack/build-image.sh [IMAGE]      default stratops:<version>
#   BASE_IMAGE=stratops-base:bookworm hack/build-image.sh     (hack/build-base-image.sh builds it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$root/operator/stratops/__init__.py")
image=${1:-stratops:$version}
base=${BASE_IMAGE:-python:3.11-slim-bookworm}
arch=$(uname -m)
wheels=$root/build/wheels

rm -rf "$wheels" && mkdir -p "$wheels"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$root"
# Binary wheels for CPython 3.11 on glibc Linux, whatever Python runs this script.
"$python" -m pip download --quiet --dest "$wheels" --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  --platform "manylinux_2_28_$arch" --platform "manylinux_2_17_$arch" --platform "manylinux2014_$arch" \
  "$wheels"/stratops-"$version"-*.whl
# SOURCE_LABEL (stratops.testing.images): the hash of the sources, so an unchanged tree is not rebuilt.
docker build --network none --build-arg BASE_IMAGE="$base" ${SOURCE_LABEL:+--label "io.stratops.source=$SOURCE_LABEL"} \
  --tag "$image" "$root" >&2
echo "$image"
