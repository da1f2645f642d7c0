# syntax=docker/dockerfile:1
# walkme-dic: one image for the operator (`walkme-dic operator`, the default) and its sync Jobs
# (`walkme-dic sync`). Build: docker build -t ghcr.io/walkme-dic/walkme-dic:0.1.0 .

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: wheels of the project and every dependency ----------------------------------------
# Every dependency ships binary wheels for linux amd64/arm64, so no compiler (and no apt) is needed.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m pip wheel --wheel-dir /wheels .

# ---- runtime: the installed wheels, nothing else ------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="walkme-dic" \
      org.opencontainers.image.description="WalkMe Data Integration Center as Kubernetes resources: Connections and Integrations reconciled into sync Jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/walkme-dic/walkme-dic" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp
# The wheels are bind-mounted from the builder, installed offline, and never stored in a layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels "walkme-dic==${VERSION}" \
 && rm -rf /root/.cache \
 && walkme-dic --help > /dev/null \
 && python -c "import walkme_dic.controllers.run"
# Numeric non-root user so that `runAsNonRoot: true` can be verified by the kubelet.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["walkme-dic"]
CMD ["operator"]
