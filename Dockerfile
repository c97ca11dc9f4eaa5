# One image for every TierFlow service; the command picks which one runs.
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY tierflow ./tierflow
RUN pip install . && useradd --system --uid 10001 tierflow

USER tierflow
ENV TIERFLOW_HOST=0.0.0.0
EXPOSE 8001 8002 8003 8004
CMD ["tierflow", "serve", "ingest"]
