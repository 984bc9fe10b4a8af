FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8000
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY schema ./schema
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --no-cache-dir .

RUN useradd --create-home ledgerline
USER ledgerline
EXPOSE 8000
CMD ["ledgerline", "serve"]
