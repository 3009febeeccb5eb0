# The mlrm image: every ML service, the training service and `mlrm up` run from it.
#   docker build -t mlrm:0.1.0 .                       scikit-learn models only
#   docker build -t mlrm:0.1.0-torch --build-arg TORCH=1 .   also MLP, LSTM/GRU, CNN, DBN, autoencoder (CPU torch)
# Kubernetes objects for it: mlrm export kubernetes services/<gateway>.yaml (docs/deployment.md).
#
# No HEALTHCHECK: one image runs several commands on several ports (an ML service on the
# manifest's port, the training service on another), so no single probe fits; Kubernetes
# ignores HEALTHCHECK anyway and probes each container on its own routes (/v2/health/live,
# /v2/health/ready, /v1/health), as the exported Deployments say.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# 1: install the torch extra (CPU wheels from TORCH_INDEX, pinned by constraints.txt).
ARG TORCH=0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY mlrm ./mlrm
COPY training_service ./training_service
# postgresql: the training store several instances share (--store postgresql://...). No dev extra.
RUN python -m venv /opt/mlrm \
    && extras=postgresql index="" \
    && if [ "$TORCH" = "1" ]; then extras="$extras,torch"; index="--extra-index-url $TORCH_INDEX"; fi \
    && /opt/mlrm/bin/pip install --constraint constraints.txt $index ".[$extras]" \
    && /opt/mlrm/bin/mlrm --version

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PATH=/opt/mlrm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMP_NUM_THREADS=1
# uid 10001: what the exported pods run as (runAsUser) and own their volumes with (fsGroup).
RUN groupadd --system --gid 10001 mlrm \
    && useradd --system --uid 10001 --gid mlrm --home-dir /var/lib/mlrm --shell /usr/sbin/nologin mlrm \
    && mkdir -p /var/lib/mlrm/configs \
    && chown -R mlrm:mlrm /var/lib/mlrm
COPY --from=build /opt/mlrm /opt/mlrm
# The config sets and manifests, read-only: a pod's init container copies a set's learned/ from
# here into its volume the first time (python -m mlrm.gateway.seed); service.yaml comes from a ConfigMap.
COPY configs /app/configs
COPY services /app/services
WORKDIR /var/lib/mlrm
USER 10001:10001
EXPOSE 8000 8100
ENTRYPOINT ["mlrm"]
CMD ["--help"]
