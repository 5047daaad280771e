"""deploy/: every overlay renders to manifests the Kubernetes schemas (and CloudNativePG's) accept, wired together."""

from __future__ import annotations

import copy
import re

import pytest

from tests.deploy.manifests import DEPLOY, Doc, cnpg_problems, containers, core_problems, problems, render

TREES = ["base", "overlays/staging", "overlays/production"]
ROLES = ("orflow-server", "orflow-worker", "orflow-proxy")


@pytest.fixture(scope="module", params=TREES)
def docs(request: pytest.FixtureRequest) -> list[Doc]:
    return render(DEPLOY / request.param)


def _named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_manifests_pass_validation(docs: list[Doc]) -> None:
    assert problems(docs) == []
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "Ingress", "Job", "Secret", "PodDisruptionBudget"} <= kinds
    assert {"HorizontalPodAutoscaler", "StatefulSet", "Cluster", "Pooler"} <= kinds


def test_a_deliberately_broken_manifest_fails() -> None:
    docs = render(DEPLOY / "base")
    server = copy.deepcopy(_named(docs, "Deployment")["orflow-server"])
    server["spec"]["replica"] = server["spec"].pop("replicas")  # a misspelt field
    assert core_problems(server)
    cluster = copy.deepcopy(_named(docs, "Cluster")["orflow-db"])
    del cluster["spec"]["instances"]
    pooler = copy.deepcopy(_named(docs, "Pooler")["orflow-db-pooler-rw"])
    pooler["spec"]["pgbouncer"]["poolMode"] = "statement"
    found = cnpg_problems([cluster, pooler])
    assert any("instances" in p for p in found) and any("poolMode" in p for p in found), found


def test_each_role_is_replicated_probed_sized_spread_and_unprivileged(docs: list[Doc]) -> None:
    deployments, pdbs, hpas = (
        _named(docs, "Deployment"),
        _named(docs, "PodDisruptionBudget"),
        _named(docs, "HorizontalPodAutoscaler"),
    )
    for role in ROLES:
        pod = deployments[role]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"] and container["livenessProbe"], role
        assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"], role
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {"kubernetes.io/hostname"}, role
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] != 0, role
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, role
        assert pdbs[role]["spec"]["selector"]["matchLabels"] == deployments[role]["spec"]["selector"]["matchLabels"]
        assert hpas[role]["spec"]["scaleTargetRef"]["name"] == role
        assert 2 <= hpas[role]["spec"]["minReplicas"] <= deployments[role]["spec"]["replicas"], role
    server = deployments["orflow-server"]["spec"]["template"]["spec"]["containers"][0]
    assert server["readinessProbe"]["grpc"]["port"] == 50051  # grpc.health.v1, which the server serves
    proxy = deployments["orflow-proxy"]["spec"]["template"]["spec"]["containers"][0]
    assert proxy["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_services_reach_pods_and_grpc_is_headless(docs: list[Doc]) -> None:
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    ]
    for service in _named(docs, "Service").values():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]
    assert _named(docs, "Service")["orflow-server"]["spec"]["clusterIP"] == "None"
    backend = _named(docs, "Ingress")["orflow-portal"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] in _named(docs, "Service")


def test_secrets_and_database_urls(docs: list[Doc]) -> None:
    """Every Secret named exists here or is CloudNativePG's (<cluster>-app); pools use the Pooler, LISTEN direct."""
    known = set(_named(docs, "Secret")) | {f"{name}-app" for name in _named(docs, "Cluster")}
    poolers = set(_named(docs, "Pooler"))
    for doc in docs:
        for container in containers(doc):
            env = {e["name"]: e for e in container.get("env", [])}
            refs = [e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e]
            refs += [s["secretRef"]["name"] for s in container.get("envFrom", []) if "secretRef" in s]
            assert set(refs) <= known, (doc["metadata"]["name"], refs)
            if "ORFLOW_DATABASE_URL" in env:
                host = re.search(r"@([^:/]+)", env["ORFLOW_DATABASE_URL"]["value"])
                assert host is not None and host.group(1) in poolers
                assert env["ORFLOW_DATABASE_DIRECT_URL"]["valueFrom"]["secretKeyRef"]["key"] == "uri"


def test_postgres_replicates_synchronously(docs: list[Doc]) -> None:
    cluster = _named(docs, "Cluster")["orflow-db"]["spec"]
    assert cluster["instances"] >= 3
    assert cluster["postgresql"]["synchronous"]["number"] >= 1
    assert cluster["postgresql"]["synchronous"]["dataDurability"] == "required"
    assert _named(docs, "Pooler")["orflow-db-pooler-rw"]["spec"]["pgbouncer"]["poolMode"] == "transaction"
    redis = _named(docs, "StatefulSet")["orflow-redis"]["spec"]
    assert "--appendonly" in redis["template"]["spec"]["containers"][0]["args"] and redis["volumeClaimTemplates"]


@pytest.mark.parametrize("overlay", ["overlays/staging", "overlays/production"])
def test_overlays_pin_the_image(overlay: str) -> None:
    for doc in render(DEPLOY / overlay):
        for container in containers(doc):
            tag = container["image"].rpartition(":")[2]
            assert re.fullmatch(r"\d+\.\d+\.\d+(-[\w.]+)?", tag), container["image"]


def test_an_unknown_kustomization_field_is_refused(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "kustomization.yaml"  # type: ignore[operator]
    path.write_text("resources: []\npatches: []\n")
    with pytest.raises(ValueError, match="patches"):
        render(path.parent)
