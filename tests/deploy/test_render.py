"""Every kustomization renders, and what it renders holds the properties issue 11 asks for."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.conftest import OVERLAYS, TARGETS, Renderer, containers, workloads

SERVICES = ("ingest", "catalog", "review", "retention")


@pytest.mark.parametrize("target", TARGETS)
def test_kustomization_renders(render: Renderer, target: str) -> None:
    assert render(target).docs


@pytest.mark.parametrize("target", ["infra/production", "infra/staging"])
def test_strimzi_resources_use_the_v1_api(render: Renderer, target: str) -> None:
    """Strimzi 1.x serves only kafka.strimzi.io/v1; v1beta2 resources are not applied."""
    strimzi = [d for d in render(target).docs if d["apiVersion"].startswith("kafka.strimzi.io")]
    assert {d["kind"] for d in strimzi} >= {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}
    assert {d["apiVersion"] for d in strimzi} == {"kafka.strimzi.io/v1"}


def test_each_environment_has_its_own_namespace(render: Renderer) -> None:
    seen = set()
    for env, namespace in OVERLAYS.items():
        rendered = render(f"overlays/{env}")
        assert [d["metadata"]["name"] for d in rendered.of_kind("Namespace")] == [namespace]
        namespaced = [d for d in rendered.docs if d["kind"] != "Namespace"]
        assert {d["metadata"].get("namespace") for d in namespaced} == {namespace}
        seen.add(namespace)
    assert len(seen) == len(OVERLAYS)


def _policies(render: Renderer, env: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]
            for d in render(f"overlays/{env}").of_kind("NetworkPolicy")}


@pytest.mark.parametrize("env", OVERLAYS)
def test_every_overlay_denies_by_default(render: Renderer, env: str) -> None:
    policies = _policies(render, env)
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny


@pytest.mark.parametrize("env", OVERLAYS)
def test_forwarded_headers_are_trusted_only_from_the_ingress(
    render: Renderer, env: str,
) -> None:
    """uvicorn trusts X-Forwarded-* from any peer (FORWARDED_ALLOW_IPS=*), so only the ingress
    controller may reach the service ports; Prometheus only the metrics port."""
    rendered = render(f"overlays/{env}")
    [config] = [d for name, d in rendered.config_maps().items() if name.startswith("bwc-config")]
    assert config["FORWARDED_ALLOW_IPS"] == "*"
    policies = _policies(render, env)
    for service in SERVICES:
        rules = policies[f"allow-ingress-{service}"]["ingress"]
        for rule in rules:
            for peer in rule["from"]:
                namespace = peer["namespaceSelector"]["matchLabels"][
                    "kubernetes.io/metadata.name"]
                assert namespace in ("ingress-nginx", "monitoring"), peer
                assert peer["podSelector"]["matchLabels"], f"{service}: a whole namespace"
                if namespace == "monitoring":
                    # Prometheus scrapes; it reaches the service but sets no forwarded headers.
                    assert peer["podSelector"]["matchLabels"] == {
                        "app.kubernetes.io/name": "prometheus"}


@pytest.mark.parametrize("env", OVERLAYS)
def test_review_alone_reaches_the_catalogue_with_a_rotatable_token(
    render: Renderer, env: str,
) -> None:
    """An evidence export reads the audit trail from the catalogue (R7, R8): review's pods,
    and no other, reach the catalogue's port; the URL names its Service; the token is a file
    from a Secret volume mounted without subPath (the kubelet updates it in place, review
    re-reads it: a rotation needs no restart)."""
    rendered = render(f"overlays/{env}")
    policies = _policies(render, env)
    review, catalog = ({"matchLabels": {"app.kubernetes.io/name": name}}
                       for name in ("review", "catalog"))
    port = [{"protocol": "TCP", "port": 8002}]
    egress = policies["allow-egress-review-to-catalog"]
    assert (egress["podSelector"], egress["egress"]) == (review, [
        {"to": [{"podSelector": catalog}], "ports": port}])
    ingress = policies["allow-ingress-catalog-from-review"]
    assert (ingress["podSelector"], ingress["ingress"]) == (catalog, [
        {"from": [{"podSelector": review}], "ports": port}])
    service = rendered.one("Service", "catalog")
    assert [p["port"] for p in service["spec"]["ports"]] == [8002]

    deployment = rendered.one("Deployment", "review")
    [container] = containers(deployment)
    env_values = {e["name"]: e.get("value") for e in container["env"]}
    assert env_values["BWC_REVIEW_CATALOG_URL"] == "http://catalog:8002"
    token_file = env_values["BWC_REVIEW_CATALOG_TOKEN_FILE"]
    [mount] = [m for m in container["volumeMounts"]
               if token_file.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount and mount["readOnly"]
    [volume] = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
                if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "bwc-review-catalog-token"


def test_production_images_are_pinned_by_digest(render: Renderer) -> None:
    for workload in workloads(render("overlays/production")):
        for container in containers(workload):
            assert "@sha256:" in container["image"], container["image"]


@pytest.mark.parametrize("env", OVERLAYS)
def test_file_settings_point_into_mounted_volumes(render: Renderer, env: str) -> None:
    """A CA bundle setting without the bundle mounted crash-loops the pods (issue 11: MinIO's
    certificate is signed by the cluster CA, nothing trusted it)."""
    rendered = render(f"overlays/{env}")
    [config] = [d for name, d in rendered.config_maps().items() if name.startswith("bwc-config")]
    assert config["BWC_S3_CA_FILE"] and config["BWC_S3_ENDPOINT"].startswith("https://")
    # The services; the migrations Job talks to Postgres only.
    for workload in rendered.of_kind("Deployment"):
        for container in containers(workload):
            mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
            for key in ("BWC_S3_CA_FILE", "BWC_KAFKA_SSL_CAFILE"):
                assert any(config[key].startswith(m + "/") for m in mounts), (
                    f"{workload['metadata']['name']}: {key}={config[key]} not in {mounts}")


@pytest.mark.parametrize("env", OVERLAYS)
def test_migrations_run_in_a_job_and_services_only_check(render: Renderer, env: str) -> None:
    rendered = render(f"overlays/{env}")
    [job] = rendered.of_kind("Job")
    [container] = job["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["command"])
    assert command.startswith("bwc migrate")
    assert all(f"--service {s}" in command for s in SERVICES)
    [config] = [d for name, d in rendered.config_maps().items() if name.startswith("bwc-config")]
    assert config["BWC_DATABASE_MIGRATE"] == "false"


@pytest.mark.parametrize("env", OVERLAYS)
def test_scaled_services_have_hpas_and_zone_spread(render: Renderer, env: str) -> None:
    rendered = render(f"overlays/{env}")
    hpas = {d["spec"]["scaleTargetRef"]["name"] for d in rendered.of_kind(
        "HorizontalPodAutoscaler")}
    assert hpas == {"ingest", "catalog", "review"}
    for deployment in rendered.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        # An HPA owns the replica count; a fixed one would be reset on every apply.
        assert ("replicas" in deployment["spec"]) == (name not in hpas), name
        keys = {c["topologyKey"] for c in
                deployment["spec"]["template"]["spec"].get("topologySpreadConstraints", [])}
        if name in hpas:
            assert "topology.kubernetes.io/zone" in keys, name


@pytest.mark.parametrize("env", OVERLAYS)
def test_ingress_for_ingest_fits_chunked_uploads(render: Renderer, env: str) -> None:
    rendered = render(f"overlays/{env}")
    ingresses = {d["metadata"]["name"]: d for d in rendered.of_kind("Ingress")}
    assert set(ingresses) == {"ingest", "review"}
    notes = ingresses["ingest"]["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] in ("0", "128m")
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600


@pytest.mark.parametrize("env", OVERLAYS)
def test_monitoring_pages_only_on_overdue_deletions(render: Renderer, env: str) -> None:
    rendered = render(f"overlays/{env}")
    assert rendered.of_kind("PodMonitor")
    [rule] = rendered.of_kind("PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    paging = [a for a in alerts if a["labels"]["severity"] == "page"]
    assert [a["expr"].strip() for a in paging] == ["max(bwc_retention_overdue) > 0"]


@pytest.mark.parametrize("env", ["production", "staging"])
def test_only_the_owners_write_the_topics(render: Renderer, env: str) -> None:
    """KafkaUsers with SCRAM: only the bwc services' outbox relays write recordings.v1 (not the
    catalogue) and audit.v1 (each service records the accesses it serves); no other identity
    (R7: the audit chain)."""
    writers: dict[str, set[str]] = {}
    for user in render(f"infra/{env}").of_kind("KafkaUser"):
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        for acl in user["spec"]["authorization"]["acls"]:
            if acl["resource"]["type"] == "topic" and "Write" in acl["operations"]:
                assert acl["resource"]["patternType"] == "literal"
                writers.setdefault(acl["resource"]["name"], set()).add(user["metadata"]["name"])
    assert writers == {"recordings.v1": {"bwc-ingest", "bwc-review", "bwc-retention"},
                       "audit.v1": {"bwc-ingest", "bwc-catalog", "bwc-review", "bwc-retention"}}
    [kafka] = render(f"infra/{env}").of_kind("Kafka")
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(item["authentication"]["type"] == "scram-sha-512" and item["tls"]
               for item in listeners)
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
