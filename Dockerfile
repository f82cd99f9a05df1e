# The one image every orgsync service in compose.yaml runs: migrate, keys, worker, scheduler,
# exporter and the demo (the `sim` extra brings moto for it).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services services
COPY pipelines pipelines
COPY schema schema
RUN pip install '.[sim]' \
    && useradd --system --home-dir /app orgsync \
    && mkdir -p /keys /app/.orgsync \
    && chown orgsync /keys /app /app/.orgsync
USER orgsync
# worker metrics (ORGSYNC_WORKER_METRICS_PORT), the exporter and the web console
EXPOSE 9191 9464 8080
ENTRYPOINT ["orgsync"]
CMD ["--help"]
