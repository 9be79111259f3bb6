# The code location image: serves `clickstream_assets.definitions` over gRPC to the webserver
# and daemon, and is the image every run worker (Kubernetes job / ECS task) starts from.
# The webserver and daemon may run this same image (the run coordinator in deploy/dagster.yaml
# lives in this package), with a different command. See docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/home

# Run workers write a range run's materializations to PostgreSQL in batches of this many
# events instead of one statement (and two connections) each; read by the run process, so it
# is set in the image every run starts from. Measured in bench/backfill.py (docs/deploy.md).
ENV DAGSTER_EVENT_BATCH_SIZE=200

WORKDIR /opt/dagster/app

# Dependencies first (cached layer), then the package itself; no test extras in production.
COPY setup.py pyproject.toml ./
COPY clickstream_assets ./clickstream_assets
RUN pip install . \
    && mkdir -p "$DAGSTER_HOME" \
    && useradd --system --uid 10001 --home-dir /opt/dagster dagster \
    && chown -R dagster /opt/dagster

# The instance config; credentials arrive as env vars (DAGSTER_PG_*) from the platform's
# secret store, never baked into the image.
COPY deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
COPY workspace.yaml ./

USER dagster
EXPOSE 4000

# Code server. Webserver: `dagster-webserver -h 0.0.0.0 -p 3000 -w workspace.yaml`;
# daemon: `dagster-daemon run -w workspace.yaml` (workspace pointing at this server's host).
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "clickstream_assets.definitions", "--location-name", "clickstream"]
