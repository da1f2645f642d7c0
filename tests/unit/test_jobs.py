"""Run naming, the Job manifest and reading results (no server)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from walkme_dic.api.connection import ConnectionSpec
from walkme_dic.api.integration import SPOOL_STORAGE_LIMIT, SPOOL_STORAGE_REQUEST
from walkme_dic.api.run import REQUEST_ENV, RejectedRow, SyncRequest, SyncResult
from walkme_dic.controllers.run import job_image
from walkme_dic.egress import POLICY_ENV, EgressPolicy
from walkme_dic.jobs.manifest import JobImage, build_job, proxy_settings
from walkme_dic.jobs.naming import generation_key, requested_key, run_name, schedule_key
from walkme_dic.jobs.results import (
    JobSummary,
    awaiting_pod,
    parse_termination_message,
    read_result,
    summarize_job,
    summarize_pod,
)

REQUEST = SyncRequest.model_validate({
    "integration": {"namespace": "team-a", "name": "users-import", "uid": "u-1", "generation": 3},
    "runId": "users-import-abcde-g3",
    "spec": {
        "direction": "Inbound",
        "connectionRef": {"name": "azure"},
        "walkmeConnectionRef": {"name": "walkme"},
        "source": {"file": {"path": "users.jsonl.gz", "format": "jsonl"}},
        "destination": {"walkme": {"integrationTokenSecretRef": {"name": "tok", "key": "token"},
                                   "userIdProperty": "uuid"}},
        "mapping": {"key": {"source": "id", "destination": "uuid"}},
        "job": {"serviceAccountName": "sync", "nodeSelector": {"pool": "batch"},
                "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]},
    },
    "connection": {"azureBlob": {"accountUrl": "https://acme.blob.core.windows.net", "container": "exports",
                                 "auth": {"secretRef": {"name": "azure-cred", "key": "connectionString"}}}},
    "walkmeConnection": {"walkme": {"auth": {"secretRef": {"name": "walkme-api"}}}},
})


def test_run_names_are_deterministic_unique_per_trigger_and_short() -> None:
    slot = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    name = run_name("users-import", "u-1", schedule_key(slot))
    assert name == run_name("users-import", "u-1", schedule_key(slot))
    assert name.endswith("-s202611251200")
    assert name != run_name("users-import", "u-2", schedule_key(slot))
    others = {run_name("users-import", "u-1", k) for k in (generation_key(3, created=False), requested_key("x"))}
    assert name not in others and len(others) == 2
    long_name = run_name("a" * 250, "u-1", requested_key("now"))
    assert len(long_name) <= 63 and not long_name.startswith("-")


def test_job_is_locked_down_and_owned_by_its_integration() -> None:
    job = build_job(REQUEST, generation_key(3, created=False), JobImage("registry/walkme-dic:1"))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["metadata"]["name"] == REQUEST.run_id
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Integration", "u-1", True)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["serviceAccountName"] == "sync" and pod["nodeSelector"] == {"pool": "batch"}
    assert pod["tolerations"] == [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    assert container["command"] == ["walkme-dic", "sync"]
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 3600


def test_job_mounts_only_secret_references_never_values() -> None:
    job = build_job(REQUEST, generation_key(3, created=False), JobImage("img"))
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["external"]["secret"] == {"secretName": "azure-cred", "defaultMode": 0o440,
                                             "items": [{"key": "connectionString", "path": "connectionString"}]}
    assert volumes["walkme"]["secret"]["secretName"] == "walkme-api"
    assert volumes["integration-token"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert SyncRequest.model_validate_json(env[REQUEST_ENV]) == REQUEST


def test_termination_message_fits_4k_even_with_many_rejections() -> None:
    result = SyncResult(result="Failed", reason="TooManyRejectedRows", message="x" * 5000, rows_rejected=10_000,
                        rejected=[RejectedRow(row=i, reason="column 'email': not an email " * 3)
                                  for i in range(1, 200)])
    text = result.to_termination_message()
    assert len(text.encode()) <= 4096
    parsed = parse_termination_message(text)
    assert parsed is not None and parsed.rows_rejected == 10_000


def test_summaries_read_real_job_and_pod_shapes() -> None:
    job = summarize_job({
        "metadata": {"name": "j", "uid": "ju", "ownerReferences": [{"uid": "u-1", "controller": True}]},
        "status": {"failed": 3, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "limit reached",
             "lastTransitionTime": "2026-11-25T10:08:00Z"}]},
    })
    assert (job.state, job.owner_uid, job.condition_message) == ("Failed", "u-1", "limit reached")
    assert job.completion_time == "2026-11-25T10:08:00Z"  # a failed Job has no completionTime
    message = SyncResult(result="Failed", reason="PermanentError", message="bucket missing").to_termination_message()
    pod = summarize_pod({
        "metadata": {"name": "j-x", "labels": {"batch.kubernetes.io/job-name": "j"}, "creationTimestamp": "t"},
        "status": {"containerStatuses": [
            {"name": "sync", "state": {"terminated": {"exitCode": 1, "message": message}}}]},
    })
    assert pod is not None and pod.exit_code == 1
    assert read_result(job, [pod]).message == "bucket missing"


def test_completed_job_without_result_is_a_failure_with_a_reason() -> None:
    job = JobSummary("j", "ju", "u", "Succeeded", None, None, "", "")
    result = read_result(job, [])
    assert (result.result, result.reason) == ("Failed", "NoResult")
    assert json.loads(result.to_termination_message())["reason"] == "NoResult"


def with_resources(resources: dict[str, dict[str, str]]) -> SyncRequest:
    wire = REQUEST.model_dump(by_alias=True, exclude_none=True)
    wire["spec"]["job"]["resources"] = resources
    return SyncRequest.model_validate(wire)


def storage(request: SyncRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's resources and the /tmp volume of the Job built for ``request``."""
    job = build_job(request, generation_key(3, created=False), JobImage("registry/walkme-dic:1"))
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
    return container["resources"], tmp


def test_the_spool_directory_gets_disk_by_default_and_cannot_fill_the_node() -> None:
    resources, tmp = storage(REQUEST)
    assert resources == {"requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": SPOOL_STORAGE_REQUEST},
                         "limits": {"memory": "512Mi", "ephemeral-storage": SPOOL_STORAGE_LIMIT}}
    assert tmp == {"name": "tmp", "emptyDir": {"sizeLimit": SPOOL_STORAGE_LIMIT}}


SPEC_STORAGE = {
    "request and limit": ({"ephemeral-storage": "20Gi"}, {"ephemeral-storage": "40Gi"}, "40Gi"),
    "limit only (Kubernetes requests the limit)": ({}, {"ephemeral-storage": "500Mi"}, "500Mi"),
    "request only: no limit, none of ours": ({"ephemeral-storage": "30Gi"}, {}, None),
}


@pytest.mark.parametrize(("requests", "limits", "size_limit"), SPEC_STORAGE.values(), ids=SPEC_STORAGE.keys())
def test_spec_job_resources_decide_the_spool_disk(requests: dict[str, str], limits: dict[str, str],
                                                  size_limit: str | None) -> None:
    resources, tmp = storage(with_resources({"requests": {"cpu": "1", **requests}, "limits": limits}))
    assert resources == {"requests": {"cpu": "1", **requests}, "limits": limits}, "taken as given, nothing added"
    assert tmp["emptyDir"] == ({"sizeLimit": size_limit} if size_limit else {})


def test_other_resources_in_the_spec_keep_the_default_spool_disk() -> None:
    resources, tmp = storage(with_resources({"requests": {"cpu": "2"}, "limits": {"cpu": "4", "memory": "1Gi"}}))
    assert resources == {"requests": {"cpu": "2", "ephemeral-storage": SPOOL_STORAGE_REQUEST},
                         "limits": {"cpu": "4", "memory": "1Gi", "ephemeral-storage": SPOOL_STORAGE_LIMIT}}
    assert tmp["emptyDir"] == {"sizeLimit": SPOOL_STORAGE_LIMIT}


PROXY_ENVIRONS = {
    "none": ({"PATH": "/bin"}, [], []),
    "upper and lower case": (
        {"HTTPS_PROXY": "http://egress:3128", "no_proxy": "10.0.0.0/8,.svc", "http_proxy": "egress:3128"},
        [("HTTPS_PROXY", "http://egress:3128"), ("http_proxy", "egress:3128"), ("no_proxy", "10.0.0.0/8,.svc")], []),
    "empty value kept (it unsets a proxy)": ({"HTTP_PROXY": ""}, [("HTTP_PROXY", "")], []),
    "user and password": ({"HTTPS_PROXY": "http://svc:s3cr3t@egress:3128", "NO_PROXY": ".svc"},
                          [("NO_PROXY", ".svc")], ["HTTPS_PROXY"]),
    "a token as user name": ({"https_proxy": "https://t0ken@egress"}, [], ["https_proxy"]),
    "credentials without a scheme": ({"HTTP_PROXY": "svc:s3cr3t@egress:3128"}, [], ["HTTP_PROXY"]),
}


@pytest.mark.parametrize(("environ", "passed", "withheld"), PROXY_ENVIRONS.values(), ids=PROXY_ENVIRONS.keys())
def test_the_operators_proxy_settings_reach_every_job_but_never_credentials(
        environ: dict[str, str], passed: list[tuple[str, str]], withheld: list[str]) -> None:
    settings = proxy_settings(environ)
    assert list(settings.passed) == passed and list(settings.withheld) == withheld
    job = build_job(REQUEST, generation_key(3, created=False), JobImage("img", proxy=settings.passed))
    env = [(e["name"], e["value"]) for e in job["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert [(name, value) for name, value in env if name.lower().endswith("_proxy")] == passed
    assert "s3cr3t" not in json.dumps(job) and "t0ken" not in json.dumps(job)


def test_the_operator_passes_on_its_proxy_and_warns_about_the_ones_it_withholds(
        caplog: pytest.LogCaptureFixture) -> None:
    environ = {"HTTPS_PROXY": "http://svc:s3cr3t@egress:3128", "NO_PROXY": ".svc", "HOME": "/tmp"}
    with caplog.at_level(logging.WARNING, logger="walkme_dic.operator"):
        image = job_image("img", "Always", environ, EgressPolicy())
    assert image == JobImage("img", "Always", (("NO_PROXY", ".svc"),))
    assert "HTTPS_PROXY" in caplog.text and "s3cr3t" not in caplog.text


def job_policy(request: SyncRequest, image: JobImage) -> EgressPolicy:
    job = build_job(request, generation_key(3, created=False), image)
    (value,) = [e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"] == POLICY_ENV]
    return EgressPolicy.model_validate_json(value)


def test_jobs_carry_the_admins_egress_rules_and_the_metadata_server_only_for_ambient_identity() -> None:
    rules = EgressPolicy(denied_cidrs=("10.96.0.0/12",))
    with_secret = job_policy(REQUEST, JobImage("img", egress=rules))
    assert with_secret == rules, "a run with Secret credentials gets exactly the admin's rules"
    assert with_secret.address_problem("169.254.169.254") and with_secret.host_problem("metadata.google.internal")
    ambient = REQUEST.model_copy(update={"connection": ConnectionSpec.model_validate(
        {"azureBlob": {"accountUrl": "https://acme.blob.core.windows.net", "container": "exports",
                       "auth": {"workloadIdentity": {}}}})})
    opened = job_policy(ambient, JobImage("img", egress=rules))
    assert opened.address_problem("169.254.169.254") is None and opened.host_problem("metadata.google.internal") is None
    assert opened.address_problem("10.96.0.1") and opened.address_problem("127.0.0.1"), "nothing else is opened"
    proxied = job_policy(REQUEST, JobImage("img", proxy=(("HTTPS_PROXY", "http://squid.egress.svc:3128"),
                                                          ("NO_PROXY", "*.internal")), egress=rules))
    assert proxied.host_problem("squid.egress.svc") is None, "the Job may reach the proxy the operator gave it"
    assert proxied.host_problem("db.egress.svc") and proxied.host_problem("x.internal")


FAILED_JOB = JobSummary("j", "ju", "u-1", "Failed", "2026-11-25T10:00:00Z", "2026-11-25T10:09:00Z",
                        "BackoffLimitExceeded", "Job has reached the specified backoff limit")
KILLED = {"name": "sync", "state": {"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
                                                     "message": "The container could not be located when the pod "
                                                                "was terminated"}}}
EVICTIONS = {  # the kubelet's own words, with the container statuses it leaves
    "ephemeral storage": ("Pod ephemeral local storage usage exceeds the total limit of containers 8Gi. ", [KILLED],
                          True),
    "emptyDir sizeLimit": ('Usage of EmptyDir volume "tmp" exceeds the limit "8Gi". ', [KILLED], True),
    "memory pressure": ("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. ",
                        [KILLED], False),
    "before the container started": ("The node had condition: [DiskPressure]. ", [], False),
}


def evicted_pod(name: str, message: str, containers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"batch.kubernetes.io/job-name": "j"},
                         "creationTimestamp": f"2026-11-25T10:0{name[-1]}:00Z"},
            "status": {"phase": "Failed", "reason": "Evicted", "message": message, "containerStatuses": containers}}


@pytest.mark.parametrize(("message", "containers", "disk"), EVICTIONS.values(), ids=EVICTIONS.keys())
def test_an_evicted_run_says_so_and_why(message: str, containers: list[dict[str, Any]], disk: bool) -> None:
    pods = [summarize_pod(evicted_pod(f"j-{n}", message, containers)) for n in (1, 2, 3)]
    assert all(pod is not None and pod.finished for pod in pods)
    result = read_result(FAILED_JOB, [pod for pod in pods if pod is not None])
    assert (result.result, result.reason) == ("Failed", "Evicted")
    assert result.message.startswith(f"the node evicted the run's pod j-3: {message.strip()}")
    assert ("raise it in spec.job.resources" in result.message) is disk
    assert not awaiting_pod(FAILED_JOB, [pod for pod in pods if pod is not None], datetime.now(UTC),
                            timedelta(minutes=5)), "an eviction is an end: no wait for a termination message"


def test_a_result_written_after_an_eviction_wins() -> None:
    evicted = summarize_pod(evicted_pod("j-1", EVICTIONS["ephemeral storage"][0], [KILLED]))
    message = SyncResult(result="Failed", reason="PermanentError", message="bucket missing").to_termination_message()
    retried = summarize_pod({"metadata": {"name": "j-2", "labels": {"batch.kubernetes.io/job-name": "j"},
                                          "creationTimestamp": "2026-11-25T10:02:00Z"},
                             "status": {"containerStatuses": [
                                 {"name": "sync", "state": {"terminated": {"exitCode": 1, "message": message}}}]}})
    assert evicted is not None and retried is not None
    assert read_result(FAILED_JOB, [evicted, retried]).reason == "PermanentError"
    assert summarize_pod(evicted_pod("j-1", "", [])).eviction == "no reason given"


def test_a_job_that_met_its_success_criteria_waits_for_its_pod_before_completion_time() -> None:
    """The real Job controller writes SuccessCriteriaMet before completionTime (bench/operator_scale.py saw
    runs end as NoResult): its transition time counts as the finish, so a late Pod is still waited for."""
    job = summarize_job({"metadata": {"name": "j", "uid": "ju"}, "status": {"startTime": "2026-11-25T10:00:00Z",
                         "conditions": [{"type": "SuccessCriteriaMet", "status": "True",
                                         "lastTransitionTime": "2026-11-25T10:01:00Z"}]}})
    assert (job.state, job.completion_time) == ("Succeeded", "2026-11-25T10:01:00Z")
    just_after = datetime(2026, 11, 25, 10, 1, 5, tzinfo=UTC)
    assert awaiting_pod(job, [], just_after, timedelta(seconds=30))
    assert not awaiting_pod(job, [], just_after + timedelta(minutes=1), timedelta(seconds=30))
