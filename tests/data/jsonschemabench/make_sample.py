"""Rebuild ``sample.jsonl`` from a checkout of github.com/guidance-ai/jsonschemabench (``maskbench/data``).

    python make_sample.py /path/to/jsonschemabench [per_subset]

Deterministic: per subset, the schemas with at least one test case whose file is under 24 kB, sorted by name,
every k-th taken to reach ``per_subset``. Each line keeps the subset, the file name, the schema and its tests.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

MAX_BYTES = 24_000


def main() -> None:
    root = Path(sys.argv[1]) / "maskbench" / "data"
    per_subset = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(root.glob("*.json")):
        if path.stat().st_size <= MAX_BYTES:
            groups[path.name.split("---")[0] if "---" in path.name else path.name.rsplit("_", 1)[0]].append(path)
    out = Path(__file__).with_name("sample.jsonl")
    with out.open("w") as f:
        for subset, paths in sorted(groups.items()):
            chosen = []
            for path in paths:
                data = json.loads(path.read_text())
                if data.get("tests"):
                    chosen.append((path, data))
            step = max(1, len(chosen) // per_subset)
            for path, data in chosen[::step][:per_subset]:
                tests = [{"valid": t["valid"], "data": t["data"]} for t in data["tests"]]
                f.write(json.dumps({"subset": subset, "file": path.name, "schema": data["schema"], "tests": tests},
                                   ensure_ascii=False) + "\n")
    print(out, out.stat().st_size)


if __name__ == "__main__":
    main()
