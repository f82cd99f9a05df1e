# The one image every orgsync service in compose.yaml runs: migrate, keys, worker, scheduler
# and exporter. It installs the wheel (as `pip install orgsync` would), not the source tree,
# so the migrations and JSON Schemas come from the package. The simulated AWS (moto) is left
# out unless asked for: `docker build --build-arg EXTRAS=sim .` (compose's demo service does).
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services services
COPY pipelines pipelines
COPY schema schema
COPY orgsync orgsync
RUN pip wheel --no-deps --wheel-dir /dist .

FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=wheel /dist /dist
# pyicu (nickname confusables) compiles against the system ICU; the compiler is removed after
RUN apt-get update \
    && apt-get install -y --no-install-recommends libicu-dev pkg-config g++ \
    && wheel="$(ls /dist/orgsync-*.whl)" \
    && pip install "orgsync${EXTRAS:+[$EXTRAS]} @ file://${wheel}" \
    && apt-get purge -y --auto-remove g++ pkg-config \
    && rm -rf /dist /var/lib/apt/lists/* \
    && useradd --system --home-dir /app orgsync \
    && mkdir -p /keys /app/.orgsync \
    && chown orgsync /keys /app /app/.orgsync
WORKDIR /app
USER orgsync
# worker metrics (ORGSYNC_WORKER_METRICS_PORT), the exporter and the web console
EXPOSE 9191 9464 8080
ENTRYPOINT ["orgsync"]
CMD ["--help"]
