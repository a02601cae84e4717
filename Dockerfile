# The ARGUS image: worker, gateway and CLI (one image, the command picks the role).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/argus
COPY pyproject.toml README.md ./
COPY argus ./argus
COPY playbooks ./playbooks
RUN pip install --no-cache-dir '.[postgres]'
RUN useradd --create-home argus && mkdir -p /var/lib/argus && chown argus /var/lib/argus
USER argus
ENV ARGUS_STATE_DIR=/var/lib/argus
ENTRYPOINT ["argus"]
CMD ["worker", "--config", "/etc/argus/argus.yaml"]
