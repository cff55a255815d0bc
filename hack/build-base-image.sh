#!/usr/bin/env bash
# Builds a minimal Debian base image (Python 3.11 from Debian) with debootstrap and imports it
# into the local Docker engine, for machines that cannot pull from a registry. Users with a
# registry do not need it: the Dockerfile's BASE_IMAGE defaults to python:3.11-slim-bookworm.
#
#   hack/build-base-image.sh [TAG]     (default stratops-base:bookworm; nothing to do if present)
#
# Needs root (debootstrap), debootstrap, a Debian mirror and a running Docker engine.
set -euo pipefail
tag=${1:-stratops-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already present"
  exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# minbase: dpkg, apt and essentials only. python3-venv brings ensurepip, which the image's
# build stage uses to create the virtualenv; ca-certificates lets the operator verify TLS
# of Prometheus, Slack and PagerDuty.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >/dev/null
# Nothing in the image needs documentation, locales or apt's package lists.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/usr/bin/python3"]' - "$tag" >/dev/null
echo "built $tag"
