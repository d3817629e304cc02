"""Prints the pinned Python requirements of every integration a MicroPi Home Assistant can load.

Usage: python scripts/ha_requirements.py [FILE | DOMAIN | MANIFEST]...   (run with the Python that
has homeassistant). The list is derived from the installed Home Assistant itself, so a new HA release
brings its own list along:

  - what HA's bootstrap always sets up (`homeassistant.bootstrap`: core, logging/http, frontend, stage 0
    and the default integrations - the base platforms among them, so camera and with it stream);
  - what onboarding sets up when its core-config step finishes (read from HA's onboarding view);
  - `default_config` (a household may turn it on in its own configuration.yaml);
  - the arguments: a FILE holds one domain a line ('#' starts a comment), a MANIFEST (a path ending in
    manifest.json) is a custom integration's (ours live in custom_components/).

Each domain's manifest `dependencies` and `after_dependencies` are followed recursively; requirements
come from the manifests, so they are exactly the versions that HA release pins.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

from homeassistant import bootstrap, components

HA_COMPONENTS = Path(components.__path__[0])


def bootstrap_domains() -> set[str]:
    """The integrations HA's bootstrap sets up on any (non-recovery, non-Supervisor) start."""
    domains = set(bootstrap.CORE_INTEGRATIONS) | set(bootstrap.DEFAULT_INTEGRATIONS)
    for _name, group, _timeout in bootstrap.STAGE_0_INTEGRATIONS:
        domains |= set(group)
    return domains


def onboarding_domains() -> set[str]:
    """The integrations onboarding sets up (a list inside its core-config view, not in a manifest)."""
    source = HA_COMPONENTS / "onboarding" / "views.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "onboard_integrations" for target in node.targets
        ):
            return set(ast.literal_eval(node.value))
    sys.exit(f"ha_requirements: no `onboard_integrations` list in {source}: this HA release moved it; update me")


def manifest(domain: str, custom: dict[str, dict[str, object]]) -> dict[str, object]:
    if domain in custom:
        return custom[domain]
    path = HA_COMPONENTS / domain / "manifest.json"
    if not path.exists():
        sys.exit(f"ha_requirements: {domain!r} is not an integration of this Home Assistant")
    result: dict[str, object] = json.loads(path.read_text())
    return result


def requirements(roots: set[str], custom: dict[str, dict[str, object]]) -> set[str]:
    todo = sorted(roots)
    seen: set[str] = set()
    found: set[str] = set()
    while todo:
        domain = todo.pop()
        if not domain or domain in seen:
            continue
        seen.add(domain)
        data = manifest(domain, custom)
        found.update(data.get("requirements", []))  # type: ignore[arg-type]
        todo += data.get("dependencies", [])  # type: ignore[operator]
        todo += data.get("after_dependencies", [])  # type: ignore[operator]
    return found


def main(args: list[str]) -> None:
    roots = bootstrap_domains() | onboarding_domains() | {"default_config"}
    custom: dict[str, dict[str, object]] = {}
    for arg in args:
        path = Path(arg)
        if path.name == "manifest.json":
            data = json.loads(path.read_text())
            custom[data["domain"]] = data
            roots.add(data["domain"])
        elif path.is_file():
            roots |= {line.split("#")[0].strip() for line in path.read_text().splitlines()}
        else:
            roots.add(arg)
    print("\n".join(sorted(requirements(roots, custom))))


if __name__ == "__main__":
    main(sys.argv[1:])
