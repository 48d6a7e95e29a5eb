# syntax=docker/dockerfile:1.7
# Stage 1: build the wheel with the compiled kernels (needs a compiler and Python headers).
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN pip install --no-cache-dir "uv==0.9.30"
COPY requirements.lock ./
RUN uv venv /opt/kervan && uv pip install --python /opt/kervan/bin/python -r requirements.lock
COPY pyproject.toml setup.py README.md ./
COPY core ./core
COPY native ./native
COPY service ./service
# Cython and numpy come from the [build-system] pins; the kernels compile into the wheel.
RUN uv build --wheel --out-dir /wheels . \
    && uv pip install --python /opt/kervan/bin/python --no-deps /wheels/*.whl

# Stage 2: slim runtime, no compiler, non-root.
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/kervan/bin:$PATH \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    KERVAN_HOST=0.0.0.0 \
    KERVAN_PORT=8000 \
    KERVAN_DATA_DIR=/var/lib/kervan \
    KERVAN_DATABASE_URL=sqlite+aiosqlite:////var/lib/kervan/kervan.db
RUN groupadd --system kervan && useradd --system --gid kervan --home /var/lib/kervan kervan \
    && mkdir -p /var/lib/kervan && chown kervan:kervan /var/lib/kervan
COPY --from=build /opt/kervan /opt/kervan
USER kervan
WORKDIR /var/lib/kervan
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["kervan"]
CMD ["serve"]
