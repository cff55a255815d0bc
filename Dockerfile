# The stratops operator image: non-root, runs with a read-only root filesystem, no build tools.
#
# The build needs no network: it installs from a wheelhouse (build/wheels) that
# hack/build-image.sh downloads beforehand for the image's Python (3.11). `make image` does both.
# BASE_IMAGE is any Debian-like image with Python 3.11 and its venv module: the default for
# machines that can pull, or one built locally by hack/build-base-image.sh for those that cannot.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
COPY build/wheels /wheels
# pip compiles the .py files while installing: the read-only root filesystem would stop Python
# from writing them at run time. pip, setuptools and the libraries' own test suites are removed:
# nothing installs or runs them at run time (the import check below proves the rest loads).
RUN python3 -m venv /opt/stratops \
 && /opt/stratops/bin/pip install --no-index --find-links /wheels --no-cache-dir stratops \
 && /opt/stratops/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/stratops/lib/python3*/site-packages/numpy /opt/stratops/lib/python3*/site-packages/scipy \
         /opt/stratops/lib/python3*/site-packages/kubernetes -depth -type d \( -name tests -o -name test \) \
         -exec rm -rf {} + \
 && /opt/stratops/bin/python -c "import stratops.handlers, scipy.stats, numpy" \
 && /opt/stratops/bin/stratops --version

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="stratops" \
      org.opencontainers.image.description="Kubernetes operator for the production lifecycle of trading strategies" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/stratops /opt/stratops
ENV PATH=/opt/stratops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A numeric user, so that runAsNonRoot can verify it without an /etc/passwd entry.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081 9443
ENTRYPOINT ["stratops"]
CMD ["operator", "--all-namespaces"]
