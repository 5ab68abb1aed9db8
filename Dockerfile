# One image for every mode; its entrypoint is the `modelmesh` command:
#   controller Deployment (deploy/manager):  args [controller]
#   runtime pods (made by the controller):   command [modelmesh, runtime, mesh|adapter|puller|rest-proxy]
# Multi-stage: wheels are built in the first stage; the runtime stage has no compilers and runs as
# a numeric non-root user (so `runAsNonRoot: true` can verify it).
FROM python:3.11-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelmesh ./modelmesh
# Every wheel, pinned by its file: the runtime stage installs exactly these, offline.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fast]" \
    && find /wheels -name '*.whl' | sort > /wheels/requirements.txt

FROM python:3.11-slim-bookworm
# openssl: the mesh makes a self-signed certificate for its https metrics endpoint.
# Not pinned: bookworm's security updates replace the version, and a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 2000 --no-create-home --shell /usr/sbin/nologin modelmesh
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --requirement /wheels/requirements.txt && rm -rf /wheels
# The mesh container's preStop hook (mode 755 in git), at the reference's path: modelmesh/mesh/prestop.py
COPY scripts/mesh-stop.sh /opt/kserve/mmesh/stop.sh
# Logs go straight to the container log; HOME is writable (/tmp is an emptyDir in the manifests).
ENV PYTHONUNBUFFERED=1 HOME=/tmp
USER 2000
# gRPC 8033 (mesh), 8080 (mesh peers / controller metrics), 8081 (controller probes), 9443 (webhook),
# 8085 (adapter SPI), 8008 (REST), 2112 (metrics), 8089 (mesh probes), 8090 (mesh /prestop)
EXPOSE 8033 8080 8081 9443 8085 8008 2112 8089 8090
ENTRYPOINT ["modelmesh"]
CMD ["--help"]
