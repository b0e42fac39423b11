"""Run inside a backend environment at install time: import its plugins and print what they register, as JSON.

``python -m localai.install.backends.probe``. The server stores the answer in ``metadata.json`` so it never has to
import anything from the environment itself.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def probe() -> dict[str, Any]:
    import localai
    from localai.registry.backends import Registry
    from localai.registry.plugins import make_plugin_manager

    pm = make_plugin_manager()
    registry = Registry(pm)
    backends = []
    for b in registry.backends.values():
        backends.append({
            "name": b.name,
            "aliases": list(b.aliases),
            "capabilities": list(b.capabilities),
            "formats": list(b.formats),
            "description": b.description,
            "options": [o.to_dict() for o in b.options],
            "yaml_fields": list(b.yaml_fields),
            "distribution": b.distribution,
            "version": b.version,
            "plugin": b.plugin,
            "unavailable": b.unavailable,  # the plugin's own check, run where its engine lives
        })
    return {
        "backends": backends,
        "plugins": {i.name: {"distribution": i.distribution, "version": i.version, "error": i.error} for i in pm.infos.values()},
        "errors": list(registry.errors),
        "prefix": sys.prefix,
        "python_version": ".".join(map(str, sys.version_info[:3])),
        "localai_version": localai.__version__,
    }


def main() -> None:
    json.dump(probe(), sys.stdout, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
