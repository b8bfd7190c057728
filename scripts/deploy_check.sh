#!/usr/bin/env bash
# Deploy checks of the Helm chart (helm/quorum) and the plain manifests (k8s/), in one command:
#
#   bash scripts/deploy_check.sh            # check (extra arguments go to pytest)
#   bash scripts/deploy_check.sh --regen    # rewrite the generated files, then check
#
# Helm (through helm-sdkpy, which needs Python >= 3.12), kubernetes-validate and checkov live in a
# side venv, .venv-deploy, created here on first use and refreshed only when the pinned tools change
# (a stamp file). The checks are tests/deploy (pytest): Helm render + lint of the default, cpu-dev and
# gpu values, strict Kubernetes schema validation, the RayService/ServiceMonitor CRD schemas, Ray
# Serve's and quorum's config schemas, checkov, render tests of key values, values.schema.json and
# k8s/ freshness. With the main venv present it also checks that tests/deploy/schemas (dumped from
# QuorumConfig and Ray Serve) are current.
#
# Generated files (--regen): tests/deploy/schemas/{quorum-config,ray-serve-deploy}.schema.json (needs
# the main venv), helm/quorum/values.schema.json, k8s/base and k8s/overlays.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-deploy
MAIN_PY=.venv/bin/python
REQUIREMENTS=(
  "helm-sdkpy==0.1.32"
  "kubernetes-validate==1.37.0"
  "checkov==3.3.30"
  "jsonschema==4.26.0"
  "PyYAML==6.0.3"
  "pytest>=9,<10"
  "pytest-timeout>=2.4"
  "pytest-asyncio>=1.5,<2"
)
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Helm's client-side rate limit would otherwise pause discovery against the stand-in API server.
export HELM_QPS=500 HELM_BURST_LIMIT=1000
# Keep Helm's own config/cache/data out of the home directory.
export HELM_CONFIG_HOME="$PWD/$VENV/helm/config" HELM_CACHE_HOME="$PWD/$VENV/helm/cache" \
  HELM_DATA_HOME="$PWD/$VENV/helm/data"

find_python312() {
  local candidate
  for candidate in "${PYTHON312:-}" python3.12 python3.13; do
    if [[ -n "$candidate" ]] && "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  # pyenv installs that are not on PATH (this machine image ships 3.12 and 3.13 that way).
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    if [[ -x "$candidate" ]]; then
      echo "$candidate"
      return
    fi
  done
  echo "deploy_check: needs Python >= 3.12 for helm-sdkpy (set PYTHON312=/path/to/python3.12)" >&2
  return 1
}

stamp="$VENV/.deploy-deps-$(printf '%s\n' "${REQUIREMENTS[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" || ! -x "$VENV/bin/python" ]]; then
  started=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    python312="$(find_python312)"
    echo "deploy_check: creating $VENV with $python312"
    "$python312" -m venv "$VENV"
  fi
  # (This machine's pip config names local mirror folders that may not exist: drop that noise.)
  "$VENV/bin/python" -m pip install --quiet "${REQUIREMENTS[@]}" 2> >(grep -v 'is ignored: it is neither' >&2)
  rm -f "$VENV"/.deploy-deps-*
  touch "$stamp"
  echo "deploy_check: $VENV ready in $((SECONDS - started))s"
fi

if [[ "${1:-}" == "--regen" ]]; then
  shift
  if [[ -x "$MAIN_PY" ]]; then
    "$MAIN_PY" tests/deploy/dump_schemas.py
  else
    echo "deploy_check: no $MAIN_PY (make setup): tests/deploy/schemas left as they are" >&2
  fi
  "$VENV/bin/python" helm/quorum/generate_schema.py
  "$VENV/bin/python" -m tests.deploy.k8s_manifests
fi

# QuorumConfig / Ray Serve schemas dumped from the main venv still current?
if [[ -x "$MAIN_PY" ]]; then
  rc=0
  "$MAIN_PY" tests/deploy/dump_schemas.py --check || rc=$?
  if [[ $rc -eq 1 ]]; then
    echo "deploy_check: run 'bash scripts/deploy_check.sh --regen' (QuorumConfig or Ray Serve changed)" >&2
    exit 1
  elif [[ $rc -ne 0 ]]; then
    echo "deploy_check: warning: could not check tests/deploy/schemas against the main venv" >&2
  fi
else
  echo "deploy_check: warning: no $MAIN_PY, tests/deploy/schemas not checked against QuorumConfig" >&2
fi

exec "$VENV/bin/python" -m pytest tests/deploy "$@"
