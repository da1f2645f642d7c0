"""Loading credentials (through the `kubernetes` package) and deciding when to load them again."""

from __future__ import annotations

import base64
import json
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from walkme_dic.kube import ClusterAccess, CredentialsError, Login, load_in_cluster, load_kubeconfig


def kubeconfig(path: Path, user: dict[str, Any], contexts: tuple[str, ...] = ("main",),
               server: str = "http://127.0.0.1:1") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": contexts[0],
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": "c", "user": "u", "namespace": f"ns-{name}"}}
                     for name in contexts],
    }))
    return path


def jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def test_missing_kubeconfig_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=str(tmp_path / "nope")):
        load_kubeconfig(str(tmp_path / "nope"))


def test_unknown_context_names_it(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", {"token": "t"})
    with pytest.raises(CredentialsError, match="context staging"):
        load_kubeconfig(str(config), "staging")


def test_context_picks_its_namespace(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config", {"token": "t"}, contexts=("main", "other"))
    assert load_kubeconfig(str(config)).default_namespace == "ns-main"
    assert load_kubeconfig(str(config), "other").default_namespace == "ns-other"


@pytest.mark.parametrize(("user", "method"), [
    ({"token": "abc"}, "token"),
    ({"tokenFile": "token"}, "token file token"),
    ({"username": "admin", "password": "pw"}, "basic auth"),
    ({}, "no credentials"),
])
def test_method_is_named_for_log_lines(tmp_path: Path, user: dict[str, Any], method: str) -> None:
    (tmp_path / "token").write_text("from-file\n")
    login = load_kubeconfig(str(kubeconfig(tmp_path / "config", user)))
    assert login.method == method


def test_token_file_newline_is_not_part_of_the_header(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    login = load_kubeconfig(str(kubeconfig(tmp_path / "config", {"tokenFile": "token"})))
    assert login.headers() == {"Authorization": "Bearer from-file"}


def test_basic_auth_keeps_its_scheme(tmp_path: Path) -> None:
    login = load_kubeconfig(str(kubeconfig(tmp_path / "config", {"username": "admin", "password": "pw"})))
    assert login.headers()["Authorization"] == "Basic " + base64.b64encode(b"admin:pw").decode()


def test_failing_exec_plugin_is_a_clear_error(tmp_path: Path) -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": sys.executable,
                     "args": ["-c", "import sys; sys.exit('no SSO session: run login first')"]}}
    with pytest.raises(CredentialsError, match=f"exec plugin {sys.executable} gave no credential"):
        load_kubeconfig(str(kubeconfig(tmp_path / "config", user)))


@pytest.mark.parametrize("lifetime", [timedelta(hours=1), timedelta(minutes=2), timedelta(seconds=10)])
def test_jwt_expiry_sets_renewal_before_it(tmp_path: Path, lifetime: timedelta) -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + lifetime
    login = load_kubeconfig(str(kubeconfig(tmp_path / "config", {"token": jwt({"exp": int(expires.timestamp())})})))
    assert login.renew_at is not None
    margin = expires - login.renew_at
    assert timedelta(0) < margin <= min(timedelta(minutes=1), lifetime / 5) + timedelta(seconds=1)
    assert not login.stale()


@pytest.mark.parametrize("token", ["opaque-token", jwt({"sub": "no-exp"}), "a.b.c", jwt({"exp": "soon"})])
def test_tokens_without_a_readable_expiry_are_renewed_on_401_only(tmp_path: Path, token: str) -> None:
    assert load_kubeconfig(str(kubeconfig(tmp_path / "config", {"token": token}))).renew_at is None


def test_in_cluster_needs_the_service_env(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("not checked here")
    with pytest.raises(CredentialsError, match="Service host/port is not set"):
        load_in_cluster(tmp_path, environ={})
    login = load_in_cluster(tmp_path, environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                               "KUBERNETES_SERVICE_PORT": "443"})
    assert (login.server, login.token, login.default_namespace) == ("https://10.0.0.1:443", "t", None)


def test_login_repr_never_shows_the_token() -> None:
    assert "s3cret" not in repr(Login(server="https://x", method="token", token="s3cret"))


class Source:
    """A credential source whose answer the test changes, counting loads."""

    def __init__(self, token: str) -> None:
        self.token, self.loads = token, 0

    def __call__(self) -> Login:
        self.loads += 1
        return Login(server="https://api.example", method="token file /sa/token", token=self.token)


def test_refusal_loads_again_once_for_all_who_saw_it(caplog: pytest.LogCaptureFixture) -> None:
    source = Source("old")
    access = ClusterAccess(source)
    seen = access.current()
    source.token = "new"
    fresh = access.refused(seen)
    assert fresh.token == "new" and access.refused(seen) is fresh and source.loads == 2
    assert not caplog.records


def test_refused_credentials_that_load_the_same_are_named_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "walkme_dic.kube")
    access = ClusterAccess(Source("still-old"))
    login = access.current()
    for _ in range(3):
        login = access.refused(login)
    (record,) = caplog.records
    assert "https://api.example" in record.getMessage() and "token file /sa/token" in record.getMessage()
    assert "still-old" not in record.getMessage()


def test_stale_credentials_are_loaded_before_use() -> None:
    class Expiring(Source):
        def __call__(self) -> Login:
            self.loads += 1
            return Login(server="https://api.example", method="exec plugin x", token=f"t{self.loads}",
                         renew_at=datetime.now(UTC) - timedelta(seconds=1) if self.loads == 1 else None)

    access = ClusterAccess(Expiring("unused"))
    assert access.current().token == "t1"
    assert access.current().token == "t2"
    assert access.current().token == "t2"
