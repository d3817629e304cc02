"""Prints the pinned Python requirements of Home Assistant integrations and of all they depend on.

Usage: python scripts/ha_requirements.py FILE_OR_DOMAIN...   (run with the Python that has homeassistant)
A FILE argument holds one domain a line ('#' starts a comment). Requirements come from the
integrations' own manifest.json, so they are exactly the versions that HA release pins.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from homeassistant import components


def manifest(domain: str) -> dict[str, object]:
    path = Path(components.__path__[0]) / domain / "manifest.json"
    if not path.exists():
        sys.exit(f"ha_requirements: {domain!r} is not an integration of this Home Assistant")
    result: dict[str, object] = json.loads(path.read_text())
    return result


def main(args: list[str]) -> None:
    todo: list[str] = []
    for arg in args:
        path = Path(arg)
        if path.is_file():
            todo += [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        else:
            todo.append(arg)
    seen: set[str] = set()
    requirements: set[str] = set()
    while todo:
        domain = todo.pop()
        if not domain or domain in seen:
            continue
        seen.add(domain)
        data = manifest(domain)
        requirements.update(data.get("requirements", []))  # type: ignore[arg-type]
        todo += data.get("dependencies", [])  # type: ignore[operator]
    print("\n".join(sorted(requirements)))


if __name__ == "__main__":
    main(sys.argv[1:])
