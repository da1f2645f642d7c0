"""The Helm chart, rendered by a real helm binary (no cluster needed).

Every rendered object is validated offline against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields fail), and the security-relevant parts —
the Pod's hardening, RBAC verbs, Role vs ClusterRole — are asserted directly.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from walkme_dic.controllers.run import egress_policy, parse_args
from walkme_dic.egress import POLICY_ENV, EgressPolicy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "walkme-dic"
RELEASE, NAMESPACE = "dic", "walkme-system"
K8S_VERSIONS = ["1.30.0", latest_version()]
# Objects of these kinds come from other projects' CRDs: kubernetes-validate has no schema for them.
NON_CORE_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
ALLOWED_VERBS = {"get", "list", "watch", "create", "patch", "delete"}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watch-namespaces": {"watchNamespaces": ["team-a", "team-b"]},
    "service-monitor": {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s",
                                                       "labels": {"release": "kube-prometheus-stack"}}}},
    "monitoring": {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                               "dashboard": {"enabled": True}}},
    "custom": {
        "image": {"repository": "registry.example.com/dic/walkme-dic", "tag": "0.1.0-rc1", "pullPolicy": "Always"},
        "jobImage": {"digest": "sha256:" + "ab" * 32},
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "nodeSelector": {"kubernetes.io/os": "linux", "node-role.example.com/ops": "true"},
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "operator": {"logFormat": "plain", "verbose": True, "resync": 15},
        "proxy": {"httpsProxy": "http://egress.corp.example:3128", "noProxy": "10.0.0.0/8,.svc,.cluster.local"},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/dic"}},
        "metrics": {"enabled": False},
    },
}


def helm(helm_binary: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(helm_binary), *args], capture_output=True, text=True, check=False, timeout=120)
    if check and done.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def render(helm_binary: Path, tmp_path: Path, values: dict[str, Any], *extra: str) -> list[dict[str, Any]]:
    done = helm(helm_binary, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                "-f", str(values_file(tmp_path, values)), *extra)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def the_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = of_kind(objects, "Deployment")
    return deployment


def repo_crds() -> list[Path]:
    return sorted((REPO / "crds").glob("*.yaml"))


# -- lint and schema ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes_strict(helm_binary: Path, tmp_path: Path, name: str) -> None:
    done = helm(helm_binary, "lint", "--strict", str(CHART), "-f", str(values_file(tmp_path, VALUE_SETS[name])))
    assert "0 chart(s) failed" in done.stdout


def test_default_values_satisfy_the_values_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), schema)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("replicaCount=abc", "/replicaCount"),
        ("replicaCount=-1", "/replicaCount"),
        ("leaderElection.leaseDuration=2", "/leaderElection/leaseDuration"),
        ("watchNamespaces[0]=Team_A", "/watchNamespaces/0"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("operator.logFormat=xml", "/operator/logFormat"),
        ("replicas=1", "additional properties 'replicas' not allowed"),
        ("metrics.prometheusRule.connectionNotReadyFor=15 minutes", "/metrics/prometheusRule/connectionNotReadyFor"),
        ("metrics.prometheusRule.rejectedRowsWarningRatio=2", "/metrics/prometheusRule/rejectedRowsWarningRatio"),
        ("metrics.dashboard.enabled=yes please", "/metrics/dashboard/enabled"),
        ("proxy.httpsProxy=http://proxy with spaces", "/proxy/httpsProxy"),
        ("proxy.socksProxy=x", "additional properties 'socksProxy' not allowed"),
        ("tenancy.secretLabel=no-value-sign", "/tenancy/secretLabel"),
        ("tenancy.ambientIdentity.namespaces[0]=Team_A", "/tenancy/ambientIdentity/namespaces/0"),
        ("probes.perNamespace=0", "/probes/perNamespace"),
        ("egress.allowedCIDRs[0]=everything", "/egress/allowedCIDRs/0"),
        ("egress.plainHttpHosts[0]=http://x", "/egress/plainHttpHosts/0"),
        ("egress.allowAll=true", "additional properties 'allowAll' not allowed"),
    ],
)
def test_values_schema_rejects_bad_values(helm_binary: Path, setting: str, complaint: str) -> None:
    done = helm(helm_binary, "template", RELEASE, str(CHART), "--set", setting, check=False)
    assert done.returncode != 0, f"--set {setting} rendered:\n{done.stdout[:500]}"
    assert complaint in done.stderr


# -- every rendered object is a valid Kubernetes object -------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rendered_manifests_validate_against_kubernetes_schemas(
    helm_binary: Path, tmp_path: Path, name: str,
) -> None:
    objects = render(helm_binary, tmp_path, VALUE_SETS[name], "--include-crds")
    assert objects
    skipped = set()
    for obj in objects:
        ident = (obj["apiVersion"], obj["kind"])
        if ident in NON_CORE_KINDS:
            skipped.add(ident)  # no upstream schema (a prometheus-operator CRD); checked by the tests below
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except SchemaNotFoundError:
                pytest.fail(f"{ident} has no schema in Kubernetes {version}: a typo in apiVersion/kind?")
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version}: {exc}")
    if name == "service-monitor":
        assert skipped == {("monitoring.coreos.com/v1", "ServiceMonitor")}
    if name == "monitoring":
        assert skipped == NON_CORE_KINDS  # the rules are checked by promtool in test_monitoring.py


# -- the operator Pod -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_deployment_is_non_root_read_only_and_unprivileged(helm_binary: Path, tmp_path: Path, name: str) -> None:
    pod = the_deployment(render(helm_binary, tmp_path, VALUE_SETS[name]))["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


def test_deployment_probes_kopf_liveness_endpoint_on_the_pod_ip(helm_binary: Path, tmp_path: Path) -> None:
    deployment = the_deployment(render(helm_binary, tmp_path, {}))
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--liveness=http://$(POD_IP):8080/healthz" in container["args"]
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}  # a kubelet probes the pod IP


@pytest.mark.parametrize("name", VALUE_SETS)
def test_listeners_bind_the_pod_ip_from_the_downward_api(helm_binary: Path, tmp_path: Path, name: str) -> None:
    (container,) = the_deployment(render(helm_binary, tmp_path, VALUE_SETS[name]))["spec"]["template"]["spec"][
        "containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    for arg in container["args"]:  # Kubernetes leaves a $(VAR) that env does not define as written
        for variable in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
            assert variable in env, f"{arg} names ${variable}, which the container's env does not define"
    metrics = [a for a in container["args"] if a.startswith("--metrics-")]
    expected = ["--metrics-port=8000", "--metrics-address=$(POD_IP)"] if name != "custom" else ["--metrics-port=0"]
    assert metrics == expected


def test_deployment_args_and_env_follow_values(helm_binary: Path, tmp_path: Path) -> None:
    (container,) = the_deployment(render(helm_binary, tmp_path, {}))["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "ghcr.io/walkme-dic/walkme-dic:0.1.0"
    assert container["args"][0] == "operator"
    assert not any(a.startswith("--namespace") for a in container["args"])  # all namespaces
    assert {"--metrics-port=8000", "--metrics-address=$(POD_IP)"} <= set(container["args"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WALKME_DIC_JOB_IMAGE"] == container["image"]  # one image for operator and Jobs
    assert not {"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"} & set(env), "no proxy unless one is set"

    (container,) = the_deployment(render(helm_binary, tmp_path, VALUE_SETS["watch-namespaces"])
                                  )["spec"]["template"]["spec"]["containers"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=team-a", "--namespace=team-b",
    ]

    deployment = the_deployment(render(helm_binary, tmp_path, VALUE_SETS["custom"]))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/dic/walkme-dic:0.1.0-rc1"
    assert container["imagePullPolicy"] == "Always"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WALKME_DIC_JOB_IMAGE"] == "registry.example.com/dic/walkme-dic@sha256:" + "ab" * 32
    assert container["resources"] == VALUE_SETS["custom"]["resources"]
    assert pod["nodeSelector"] == VALUE_SETS["custom"]["nodeSelector"]
    assert pod["tolerations"] == VALUE_SETS["custom"]["tolerations"]
    assert {"--log-format=plain", "--verbose", "--resync=15", "--metrics-port=0"} <= set(container["args"])
    assert env["HTTPS_PROXY"] == VALUE_SETS["custom"]["proxy"]["httpsProxy"]
    assert env["NO_PROXY"] == VALUE_SETS["custom"]["proxy"]["noProxy"]
    assert "HTTP_PROXY" not in env, "an empty value sets nothing"


def test_tenancy_and_probe_values_become_operator_flags(helm_binary: Path, tmp_path: Path) -> None:
    (container,) = the_deployment(render(helm_binary, tmp_path, {}))["spec"]["template"]["spec"]["containers"]
    assert not [a for a in container["args"] if a.startswith(("--ambient", "--secret-label"))], \
        "by default no namespace may use ambient identity and any Opaque Secret may be named"
    assert {"--probe-timeout=30", "--probe-workers=16", "--probes-per-namespace=2"} <= set(container["args"])
    values = {"tenancy": {"ambientIdentity": {"namespaces": ["data-eng", "analytics"], "probe": True},
                          "secretLabel": "walkme-dic.io/use=yes"},
              "probes": {"timeoutSeconds": 10, "workers": 4, "perNamespace": 1},
              "runs": {"max": 50, "maxPerNamespace": 5}}
    (container,) = the_deployment(render(helm_binary, tmp_path, values))["spec"]["template"]["spec"]["containers"]
    assert {"--ambient-identity-namespace=data-eng", "--ambient-identity-namespace=analytics",
            "--ambient-identity-probe", "--secret-label=walkme-dic.io/use=yes", "--probe-timeout=10",
            "--probe-workers=4", "--probes-per-namespace=1", "--max-runs=50",
            "--max-runs-per-namespace=5"} <= set(container["args"])
    config, _ = parse_args(  # the flags the chart renders are the operator's own
        [a for a in container["args"][1:] if "$(" not in a and "leader" not in a])
    assert config.tenancy.ambient_namespaces == {"data-eng", "analytics"} and config.tenancy.ambient_probe
    assert config.tenancy.secret_label == ("walkme-dic.io/use", "yes")
    assert (config.probe_timeout_seconds, config.probe_workers, config.probes_per_namespace) == (10, 4, 1)
    assert (config.max_runs, config.max_runs_per_namespace) == (50, 5)


def test_egress_values_reach_the_operator_and_default_to_the_products_rules(helm_binary: Path, tmp_path: Path) -> None:
    def policy(values: dict[str, Any]) -> EgressPolicy:
        (container,) = the_deployment(render(helm_binary, tmp_path, values))["spec"]["template"]["spec"]["containers"]
        (value,) = [e["value"] for e in container["env"] if e["name"] == POLICY_ENV]
        return egress_policy(value)  # what the operator's --egress-policy default reads

    assert policy({}) == EgressPolicy(), "the chart's defaults are the product's defaults"
    values = {"egress": {"plainHttpHosts": ["sftp.partner.example"], "allowedCIDRs": ["10.20.0.5/32"],
                         "deniedCIDRs": ["10.96.0.0/12"], "allowedHosts": ["walkme-proxy.egress.svc"]}}
    chosen = policy(values)
    assert chosen.address_problem("10.20.0.5") is None and chosen.address_problem("10.96.0.1") is not None
    assert chosen.url_problem("http://sftp.partner.example/x") is None
    assert chosen.host_problem("walkme-proxy.egress.svc") is None and chosen.host_problem("db.egress.svc")


# -- RBAC -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_SETS)
def test_rbac_has_no_wildcards_and_only_the_verbs_the_operator_uses(
    helm_binary: Path, tmp_path: Path, name: str,
) -> None:
    objects = render(helm_binary, tmp_path, VALUE_SETS[name])
    roles = of_kind(objects, "ClusterRole") + of_kind(objects, "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{role['kind']}/{role['metadata']['name']}: wildcard in {field}"
            renews = {"update"} if rule["resources"] == ["leases"] else set()  # leader election's Lease
            assert set(rule["verbs"]) <= ALLOWED_VERBS | renews, rule
            assert "nonResourceURLs" not in rule and "resourceNames" not in rule
            if "secrets" in rule["resources"]:
                assert set(rule["verbs"]) == {"get"}, "secrets are read by name: never listed, watched or written"
            if "connections" in rule["resources"] or "integrations" in rule["resources"]:
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, "spec is never written, only status"


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


NAMESPACED_GRANTS = {
    ("integrations.walkme.io", "connections"): {"list", "watch"},
    ("integrations.walkme.io", "integrations"): {"list", "watch"},
    ("integrations.walkme.io", "connections/status"): {"patch"},
    ("integrations.walkme.io", "integrations/status"): {"patch"},
    ("batch", "jobs"): {"list", "watch", "create", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "secrets"): {"get"},
    ("", "events"): {"create"},
}
# kopf always watches CRDs; it lists namespaces only when it serves named namespaces.
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}
NAMESPACE_READ = {("", "namespaces"): {"list", "watch"}}


LEASE_GRANTS = {("coordination.k8s.io", "leases"): {"get", "create", "update"}}


def leader_election_role(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (role,) = [r for r in of_kind(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    return role


def test_all_namespaces_gets_one_cluster_role(helm_binary: Path, tmp_path: Path) -> None:
    objects = render(helm_binary, tmp_path, {})
    assert of_kind(objects, "Role") == [leader_election_role(objects)]
    (role,) = of_kind(objects, "ClusterRole")
    assert grants(role) == NAMESPACED_GRANTS | CRD_READ
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    (account,) = of_kind(objects, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]


def test_watch_namespaces_gets_a_role_per_namespace(helm_binary: Path, tmp_path: Path) -> None:
    objects = render(helm_binary, tmp_path, VALUE_SETS["watch-namespaces"])
    roles = [r for r in of_kind(objects, "Role") if r is not leader_election_role(objects)]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert grants(role) == NAMESPACED_GRANTS
    bindings = [b for b in of_kind(objects, "RoleBinding") if not b["metadata"]["name"].endswith("-leader-election")]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # Cluster-wide, only the reads kopf needs: no Secrets, Jobs or custom resources across the cluster.
    (cluster_role,) = of_kind(objects, "ClusterRole")
    assert grants(cluster_role) == CRD_READ | NAMESPACE_READ
    (cluster_binding,) = of_kind(objects, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_leader_election_role_is_only_the_lease_in_the_release_namespace(helm_binary: Path, tmp_path: Path) -> None:
    objects = render(helm_binary, tmp_path, VALUE_SETS["watch-namespaces"])
    role = leader_election_role(objects)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == LEASE_GRANTS
    (binding,) = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["name"] == role["metadata"]["name"]]
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}


@pytest.mark.parametrize(("replicas", "budgets"), [(0, 0), (1, 0), (2, 1), (3, 1)])
def test_more_than_one_replica_elects_a_leader_and_keeps_one_through_drains(
    helm_binary: Path, tmp_path: Path, replicas: int, budgets: int,
) -> None:
    objects = render(helm_binary, tmp_path, {"replicaCount": replicas, "leaderElection": {"leaseDuration": 30}})
    deployment = the_deployment(objects)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"--leader-elect", "--leader-elect-duration=30"} <= set(container["args"])
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    pdbs = of_kind(objects, "PodDisruptionBudget")
    assert len(pdbs) == budgets
    for pdb in pdbs:
        assert pdb["spec"] == {"minAvailable": 1,
                               "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}


def test_rbac_can_be_left_to_the_user(helm_binary: Path, tmp_path: Path) -> None:
    objects = render(helm_binary, tmp_path, {"rbac": {"create": False}})
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io/")]


# -- metrics --------------------------------------------------------------------------------------


def test_service_monitor_only_when_enabled_and_targets_the_metrics_service(
    helm_binary: Path, tmp_path: Path,
) -> None:
    assert of_kind(render(helm_binary, tmp_path, {}), "ServiceMonitor") == []
    objects = render(helm_binary, tmp_path, VALUE_SETS["service-monitor"])
    (service,) = of_kind(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}]
    (monitor,) = of_kind(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]


def test_metrics_disabled_renders_no_service(helm_binary: Path, tmp_path: Path) -> None:
    objects = render(helm_binary, tmp_path, VALUE_SETS["custom"])
    assert of_kind(objects, "Service") == []


# -- CRDs and versions ----------------------------------------------------------------------------


def test_chart_crds_are_the_generated_crds() -> None:
    generated = repo_crds()
    if not generated:
        pytest.skip("crds/ holds no generated CRDs yet (run `walkme-dic crds`)")
    in_chart = sorted((CHART / "crds").glob("*.yaml"))
    fix = "cp crds/*.yaml charts/walkme-dic/crds/"
    assert [p.name for p in in_chart] == [p.name for p in generated], f"chart CRDs differ from crds/: {fix}"
    for chart_copy, original in zip(in_chart, generated, strict=True):
        assert chart_copy.read_bytes() == original.read_bytes(), f"{chart_copy.name} drifted: {fix}"


def test_chart_app_version_is_the_package_version() -> None:
    import walkme_dic

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == walkme_dic.__version__
