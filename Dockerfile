# The image of the webhook (`connect-inject serve`, the default command) and of both controllers
# (the chart runs `connect-inject endpoints-controller` and `connect-inject controller` from it):
# a slim Python, a non-root user, no build tools, nothing written at run time (the chart mounts the
# root filesystem read-only).
# Build with `make image` (tag consul-connect-inject:<version>, the chart's default image).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY generator ./generator
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-compile . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
 && /opt/venv/bin/python -m compileall -q /opt/venv
# The engine's data files: chart defaults, values schema, built-in Jinja templates.
COPY chart/values.yaml /opt/connect-inject/chart/values.yaml
COPY values-schema.yaml /opt/connect-inject/values-schema.yaml
COPY templates /opt/connect-inject/templates

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/connect-inject /opt/connect-inject
ENV PATH=/opt/venv/bin:$PATH \
    CONNECT_INJECT_HOME=/opt/connect-inject \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that Kubernetes' runAsNonRoot can check it; the chart runs the pod as the same user.
USER 10001:10001
# 8080: HTTPS webhook (POST /mutate); 9443: the config-entry webhooks; 9445: plain-HTTP /healthz,
# /readyz, /metrics.
EXPOSE 8080 9443 9445
ENTRYPOINT ["connect-inject", "serve"]
CMD ["--listen", ":8080", "--health-listen", ":9445", "--tls-cert-dir", "/etc/connect-injector/certs"]
