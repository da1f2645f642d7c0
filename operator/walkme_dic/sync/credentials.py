"""Credentials of a run: `<dir>/<role>/<key>` files (Kubernetes Secret volumes) read into mappings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from walkme_dic.api.run import CREDENTIAL_ROLES


@dataclass(frozen=True)
class CredentialSet:
    """Secret key -> value, per role (external, walkme, integration-token)."""

    roles: dict[str, dict[str, str]] = field(default_factory=dict)

    def role(self, name: str) -> Mapping[str, str]:
        return self.roles.get(name, {})

    def values(self) -> Iterator[str]:
        for keys in self.roles.values():
            yield from keys.values()


def load_credentials(directory: Path | None) -> CredentialSet:
    roles: dict[str, dict[str, str]] = {}
    for role in CREDENTIAL_ROLES:
        folder = directory / role if directory else None
        if folder is None or not folder.is_dir():
            continue
        roles[role] = {
            entry.name: entry.read_text().strip("\n")
            for entry in sorted(folder.iterdir())
            if not entry.name.startswith(".") and entry.is_file()
        }
    return CredentialSet(roles)
