"""How the node agent runs one container as a local process: bubblewrap gives it a mount namespace in
which the host's root is read-only, /dev, /proc, /run and /tmp are its own, and each volume sits at its
mountPath (a Secret at /var/run/secrets/…, the termination log at /dev/termination-log); then
``setpriv`` drops to the container's uid/gid with no capabilities, as runAsUser asks.

Pure functions: the argv is built from the container, the resolved volume folders and the process's
identity, so a test can read what a Pod becomes without running it.

Every container's root filesystem is read-only, whatever ``readOnlyRootFilesystem`` says: the root is
this machine's own, and a Pod writes only to its volumes (what our chart and Jobs ask for anyway).
A non-root uid cannot pass through a folder such as /root (mode 700); where this checkout, its
virtualenv or the interpreter live under one, that folder is shown as a tmpfs holding only them.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TMPFS_ROOTS = (Path("/run"), Path("/tmp"), Path("/dev"))


class SandboxUnavailable(RuntimeError):
    """bubblewrap or setpriv is missing: what to install."""


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: tuple[int, ...] = ()


def tools() -> tuple[str, str]:
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap is None or setpriv is None:
        raise SandboxUnavailable("the node agent runs containers with bubblewrap and setpriv: "
                                 "apt-get install -y bubblewrap util-linux (scripts/test.sh does it as root)")
    return bwrap, setpriv


def _hidden_ancestor(path: Path) -> Path | None:
    """The highest folder above ``path`` that others cannot enter (e.g. /root, mode 700)."""
    for ancestor in reversed(path.parents):
        if ancestor != Path("/") and not ancestor.stat().st_mode & stat.S_IXOTH:
            return ancestor
    return None


def _ours(folder: Path) -> bool:
    """A folder of the sandbox's own tmpfs (/run, /tmp, /dev) or one the host lacks: bwrap makes it."""
    return folder not in TMPFS_ROOTS and (any(folder.is_relative_to(r) for r in TMPFS_ROOTS) or not folder.exists())


def needed_trees() -> list[Path]:
    """What a container of this checkout's image must see: the interpreter, the virtualenv, the checkout."""
    return sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), REPO})


def argv(command: list[str], mounts: list[Mount], identity: Identity, workdir: str = "/") -> list[str]:
    """``command`` inside its sandbox (see the module's docstring)."""
    bwrap, setpriv = tools()
    options = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--perms", "0755", "--tmpfs", "/run",
               "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[Path] = set()
    for mount in mounts:
        target = Path(os.path.realpath(mount.target))  # /var/run/… is /run/…: mount points go in our tmpfs
        for folder in [p for p in reversed(target.parents) if p not in made and _ours(p)]:
            options += ["--perms", "0755", "--dir", str(folder)]  # bwrap would make them 0700
            made.add(folder)
        options += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), str(target)]
    for tree in needed_trees():
        if tree.is_relative_to("/tmp") or tree.is_relative_to("/run"):  # hidden by a tmpfs or a volume: shown again
            options += ["--ro-bind", str(tree), str(tree)]
        elif identity.uid != 0 and (hidden := _hidden_ancestor(tree)) is not None:
            shown = hidden / tree.relative_to(hidden).parts[0]
            options += ["--perms", "0755", "--tmpfs", str(hidden), "--ro-bind", str(shown), str(shown),
                        "--remount-ro", str(hidden)]
    options += ["--chdir", workdir, "--die-with-parent"]
    drop = [setpriv, f"--reuid={identity.uid}", f"--regid={identity.gid}",
            f"--groups={','.join(map(str, identity.groups))}" if identity.groups else "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"] if identity.uid != 0 else []
    return [bwrap, *options, *drop, *command]
