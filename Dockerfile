# One image for every mode: `modelmesh controller`, `modelmesh runtime [mesh|adapter|puller|rest-proxy]`.
# Multi-stage: wheels are built in the first stage, the runtime stage has no compilers and runs as non-root.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelmesh ./modelmesh
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fast]"

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 2000 --no-create-home --shell /usr/sbin/nologin modelmesh
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels modelmesh[fast] && rm -rf /wheels
# The mesh container's preStop hook (mode 755 in git), at the reference's path: modelmesh/mesh/prestop.py
COPY scripts/mesh-stop.sh /opt/kserve/mmesh/stop.sh
USER 2000
# gRPC 8033 (mesh), 8080 (mesh peers / controller metrics), 8085 (adapter SPI), 8008 (REST), 2112 (metrics), 8089 (probes)
EXPOSE 8033 8080 8085 8008 2112 8089
ENTRYPOINT ["modelmesh"]
CMD ["--help"]
