# The mmrag app (CLI + UI). Weaviate runs as its own service (docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 UV_LINK_MODE=copy
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 libcairo2 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
RUN pip install --no-cache-dir "uv>=0.5"
COPY requirements.lock pyproject.toml README.md ./
RUN uv pip install --system --no-cache -r requirements.lock
COPY mmrag ./mmrag
COPY rag_app ./rag_app
COPY indexer ./indexer
COPY finetune ./finetune
COPY ui ./ui
RUN uv pip install --system --no-cache --no-deps .
EXPOSE 8501
CMD ["mmrag", "ui", "--host", "0.0.0.0", "--port", "8501"]
