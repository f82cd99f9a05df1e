# The one image every orgsync service runs: workers, migrate, demo.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY services services
COPY pipelines pipelines
COPY schema schema
RUN pip install --no-cache-dir '.[sim]'
ENTRYPOINT ["orgsync"]
CMD ["--help"]
