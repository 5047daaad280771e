"""Reading deploy/: the Kustomize tree rendered for the fields we use, and the checks the suite runs on it.

No kustomize binary exists here, so `render` applies the few transformations
the overlays use (resources, namespace, images, replicas, labels) itself and
refuses any other kustomization field, so an overlay cannot silently use one
the checks would skip. Core kinds are validated by kubernetes-validate
(strict: a misspelt field fails); CloudNativePG's kinds by `cnpg_problems`,
the fields their CRD schemas (postgresql.cnpg.io_clusters.yaml /
_poolers.yaml, v1) require, written from reading those schemas.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.30"
CNPG_KINDS = {("postgresql.cnpg.io/v1", "Cluster"), ("postgresql.cnpg.io/v1", "Pooler")}
_KNOWN_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "labels"}

Doc = dict[str, Any]


def render(directory: Path) -> list[Doc]:
    """The documents `kustomize build directory` would give, for the fields OR Flow's overlays use."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - _KNOWN_FIELDS
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer does not apply: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in kustomization["resources"]:
        path = directory / entry
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    docs = copy.deepcopy(docs)
    for doc in docs:
        _apply(doc, kustomization)
    return docs


def _apply(doc: Doc, kustomization: Doc) -> None:
    if "namespace" in kustomization:
        doc["metadata"]["namespace"] = kustomization["namespace"]
    for label in kustomization.get("labels", []):
        doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for replica in kustomization.get("replicas", []):
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == replica["name"]:
            doc["spec"]["replicas"] = replica["count"]
    for container in containers(doc):
        for image in kustomization.get("images", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template") or {}
    return list(template.get("spec", {}).get("containers", [])) if doc["kind"] != "Pooler" else []


def core_problems(doc: Doc) -> list[str]:
    """kubernetes-validate's complaints about one core-kind document (strict: unknown fields too)."""
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata'].get('name')}: {exc.message} at {list(exc.path)}"]
    return []


def _at(doc: Doc, path: str) -> Any:
    value: Any = doc
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# From the v1 schemas: top-level `required: [metadata, spec]`; Cluster spec `required: [instances]`
# (integer, minimum 1); postgresql.synchronous `required: [method, number]`, method in {any, first};
# dataDurability in {required, preferred}; Pooler spec `required: [cluster, pgbouncer]`, cluster
# `required: [name]`; pgbouncer.poolMode in {session, transaction}; type in {rw, ro, r}; parameters are
# strings; and "Pooler name should never match with any cluster name within the same namespace".
def cnpg_problems(docs: list[Doc]) -> list[str]:
    """What the CloudNativePG CRD schemas would refuse in our Cluster and Pooler documents."""
    problems: list[str] = []
    clusters = {d["metadata"]["name"] for d in docs if d["kind"] == "Cluster"}
    for doc in (d for d in docs if (d.get("apiVersion"), d.get("kind")) in CNPG_KINDS):
        where = f"{doc['kind']}/{_at(doc, 'metadata.name')}"
        missing = [f"{where}: missing {key}" for key in ("metadata", "spec") if not isinstance(doc.get(key), dict)]
        if missing:
            problems += missing
            continue
        problems += [f"{where}: {p}" for p in (_cluster(doc) if doc["kind"] == "Cluster" else _pooler(doc, clusters))]
    return problems


def _cluster(doc: Doc) -> list[str]:
    problems = []
    instances = _at(doc, "spec.instances")
    if not isinstance(instances, int) or instances < 1:
        problems.append(f"spec.instances must be an integer >= 1, not {instances!r}")
    sync = _at(doc, "spec.postgresql.synchronous")
    if sync is not None:
        if sync.get("method") not in ("any", "first") or not isinstance(sync.get("number"), int):
            problems.append("spec.postgresql.synchronous needs method (any|first) and an integer number")
        if sync.get("dataDurability", "required") not in ("required", "preferred"):
            problems.append("spec.postgresql.synchronous.dataDurability must be required or preferred")
    return problems


def _pooler(doc: Doc, clusters: set[str]) -> list[str]:
    problems = []
    cluster = _at(doc, "spec.cluster.name")
    if not isinstance(cluster, str) or not cluster:
        problems.append("spec.cluster.name is required")
    elif cluster not in clusters:
        problems.append(f"spec.cluster.name {cluster!r} names no Cluster here")
    if doc["metadata"]["name"] in clusters:
        problems.append("a Pooler must not have a Cluster's name")
    pgbouncer = _at(doc, "spec.pgbouncer")
    if not isinstance(pgbouncer, dict):
        return [*problems, "spec.pgbouncer is required"]
    if pgbouncer.get("poolMode", "session") not in ("session", "transaction"):
        problems.append("spec.pgbouncer.poolMode must be session or transaction")
    if _at(doc, "spec.type") not in (None, "rw", "ro", "r"):
        problems.append("spec.type must be rw, ro or r")
    if not all(isinstance(v, str) for v in pgbouncer.get("parameters", {}).values()):
        problems.append("spec.pgbouncer.parameters values must be strings")
    return problems


def problems(docs: list[Doc]) -> list[str]:
    """Everything wrong with a rendered set: core kinds by schema, CNPG kinds by our reading of theirs."""
    found = cnpg_problems(docs)
    for doc in docs:
        if (doc.get("apiVersion"), doc.get("kind")) not in CNPG_KINDS:
            found += core_problems(doc)
    return found
