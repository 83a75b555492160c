# The doublelock worker. No Java here: the broker is the compose `kafka` service.
# python:3.11-slim is Debian (glibc), so the manylinux wheels of rocksdict,
# chdb-core and pyarrow install as they are, with no compiler.
# The dashboard's charting library, from the npm registry at build time only.
FROM node:20-slim AS assets
WORKDIR /web
COPY dashboards/web/package.json dashboards/web/package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts

FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DOUBLELOCK_DATA_DIR=/var/lib/doublelock

# A fixed non-root user. The data dir is created and owned here so that a new
# named volume mounted on it starts with this ownership.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/doublelock doublelock \
    && mkdir -p /var/lib/doublelock \
    && chown doublelock:doublelock /var/lib/doublelock

WORKDIR /app

# Dependencies first, read from pyproject.toml alone: a code change then reuses
# this layer instead of reinstalling chdb-core and pyarrow (both large).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
COPY --from=assets /web/node_modules/chart.js/dist/chart.umd.min.js dashboards/static/vendor/
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

USER doublelock

ENTRYPOINT ["doublelock"]
CMD ["worker"]
