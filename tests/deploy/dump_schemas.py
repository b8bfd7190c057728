"""Write the JSON schemas the deploy checks validate serveConfigV2 against.

Run with the MAIN venv (it imports quorum and Ray, which the side venv cannot):

    .venv/bin/python tests/deploy/dump_schemas.py          # rewrite
    .venv/bin/python tests/deploy/dump_schemas.py --check  # exit 1 if a schema is stale, 2 if no quorum

* schemas/quorum-config.schema.json -- QuorumConfig.model_json_schema() (cluster/config.py): the
  inline `args.config` of the Serve application. Regenerate whenever QuorumConfig changes, then
  `bash scripts/deploy_check.sh --regen` (values.schema.json embeds parts of it).
* schemas/ray-serve-deploy.schema.json -- Ray Serve's ServeDeploySchema (the serveConfigV2 format)
  of the pinned Ray version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def schemas() -> dict[str, Any]:
    from ray.serve.schema import ServeDeploySchema

    from quorum.cluster.config import QuorumConfig

    return {
        "quorum-config.schema.json": QuorumConfig.model_json_schema(),
        "ray-serve-deploy.schema.json": ServeDeploySchema.model_json_schema(),
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    try:
        dumped = schemas()
    except ImportError as exc:  # the main venv is not set up (or quorum does not import right now)
        print(f"cannot import quorum/ray here: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, schema in dumped.items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        path = SCHEMAS / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"stale: {', '.join(stale)}; run: .venv/bin/python tests/deploy/dump_schemas.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
