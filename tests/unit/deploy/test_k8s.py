"""deploy/k8s: the kustomize base and overlays, rendered offline (deploy/k8s/render.py).

Kubernetes' own kinds are validated against the Kubernetes JSON schemas that the
``kubernetes-validate`` package ships (no network); the operators' resources (Strimzi Kafka,
KafkaNodePool, KafkaTopic; KEDA ScaledObject; MongoDBCommunity) by the structural checks below,
since no registry package ships their CRD schemas. KafkaTopics must equal what
deploy/k8s/generate_topics.py writes from shared/topics.py's catalogue.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from shared.topics import CATALOGUE, all_topics

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
sys.path.insert(0, str(ROOT))


def _module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"k8s_{name}", K8S / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _module("render")
generate_topics = _module("generate_topics")

KUBERNETES_VERSION = "1.31.0"
TARGETS = ["base", "overlays/dev", "overlays/prod"]
SERVICES = ["intake", "investigation", "negotiation", "followup", "supervision"]
APIS = {"intake": 8001, "investigation": 8002, "negotiation": 8003, "followup": 8004, "supervision": 8005}
OPERATOR_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "ScaledObject", "MongoDBCommunity"}
PLACEHOLDER = "CHANGE-ME"


@pytest.fixture(scope="module", params=TARGETS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render.build(K8S / request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are checked here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# ------------------------------------------------------------------ generated topics


def test_committed_topic_files_equal_the_generator_output() -> None:
    for path, text in generate_topics.outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run deploy/k8s/generate_topics.py"


def test_every_catalogue_topic_and_dead_letter_topic_is_a_kafka_topic(rendered: Any) -> None:
    _, docs = rendered
    topics = of_kind(docs, "KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics.values()) == sorted(all_topics())
    for name in CATALOGUE:
        assert topics[generate_topics.resource_name(name)]["spec"]["partitions"] >= 1


# ------------------------------------------------------------------ the renderer


def test_renderer_merges_like_strategic_merge_for_built_ins_and_json_merge_for_crds() -> None:
    base = {"spec": {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}]}],
                     "keep": 1, "drop": 2, "list": [1, 2]}}
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}]}],
                      "drop": None, "list": [3]}}
    merged = render.merge(base, patch, strategic=True)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]}]
    assert merged["spec"]["list"] == [3] and "drop" not in merged["spec"] and merged["spec"]["keep"] == 1
    json_merged = render.merge(base, patch, strategic=False)
    assert json_merged["spec"]["containers"] == patch["spec"]["containers"]


def test_renderer_refuses_what_it_does_not_support(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(render.RenderError, match="commonLabels"):
        render.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: []\npatches: [{path: p.yaml}]\n")
    (tmp_path / "p.yaml").write_text("kind: Deployment\nmetadata: {name: nothing}\n")
    with pytest.raises(render.RenderError, match="matches no resource"):
        render.build(tmp_path)


def test_overlays_change_what_they_say() -> None:
    dev, prod = render.build(K8S / "overlays/dev"), render.build(K8S / "overlays/prod")
    assert of_kind(dev, "ConfigMap")["parley-config"]["data"]["PARLEY_ENVIRONMENT"] == "development"
    assert of_kind(prod, "ConfigMap")["parley-config"]["data"]["PARLEY_ENVIRONMENT"] == "production"
    assert of_kind(dev, "KafkaNodePool")["dual-role"]["spec"]["replicas"] == 1
    assert of_kind(dev, "MongoDBCommunity")["parley-mongo"]["spec"]["members"] == 1
    assert of_kind(prod, "Deployment")["intake-api"]["spec"]["replicas"] == 3
    assert {d["metadata"].get("namespace") for d in dev if d["kind"] != "Namespace"} == {"parley-dev"}
    image = of_kind(prod, "Deployment")["intake-worker"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.example.com/parley/parley:") and not image.endswith(":latest")
    investigation = of_kind(dev, "Deployment")["investigation-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert investigation["resources"]["requests"]["cpu"] == "100m"
    assert investigation["resources"]["limits"]["memory"] == "1Gi"   # kept from the base
    assert investigation["securityContext"]["readOnlyRootFilesystem"] is True


# ------------------------------------------------------------------ Kubernetes schemas


def test_built_in_resources_are_valid_against_the_kubernetes_schemas(rendered: Any) -> None:
    _, docs = rendered
    checked = 0
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue
        assert render.is_built_in(doc), f"{doc['kind']} is neither built in nor checked structurally"
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked >= 30


def test_the_schema_validation_catches_a_mistake() -> None:
    deployment = of_kind(render.build(K8S / "base"), "Deployment")["intake-api"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["periodSecond"] = 5
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


# ------------------------------------------------------------------ Parley's pods


def test_a_deployment_per_worker_and_api_with_the_right_command(rendered: Any) -> None:
    _, docs = rendered
    deployments = of_kind(docs, "Deployment")
    expected = {f"{s}-worker" for s in SERVICES} | {f"{s}-api" for s in APIS}
    assert set(deployments) == expected
    for service in SERVICES:
        (c,) = deployments[f"{service}-worker"]["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", f"services.{service}", "worker"]
    for service, port in APIS.items():
        (c,) = deployments[f"{service}-api"]["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["python", "-m", f"services.{service}", "api", "--host", "0.0.0.0",
                                "--port", str(port)]
        assert c["ports"] == [{"name": "http", "containerPort": port}]


def test_every_deployment_has_probes_resources_and_a_locked_down_security_context(rendered: Any) -> None:
    _, docs = rendered
    for name, d in of_kind(docs, "Deployment").items():
        pod = d["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/app/var"]], f"{name}: faust's datadir needs a writable var/"
            assert "emptyDir" in volumes[mounts["/tmp"]], name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), name
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                p = c[probe]
                if name.endswith("-api"):
                    assert p["httpGet"] == {"path": "/health", "port": "http"}, name
                else:
                    command = " ".join(p["exec"]["command"])
                    port = next(e for e in of_kind(docs, "ConfigMap")["parley-config"]["data"].items()
                                if e[0] == "PARLEY_METRICS_PORT")[1]
                    assert f"127.0.0.1:{port}/metrics" in command, name


def test_every_pod_reads_config_and_the_secrets_it_needs(rendered: Any) -> None:
    _, docs = rendered
    secrets = of_kind(docs, "Secret")
    for name, d in of_kind(docs, "Deployment").items():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": "parley-config"}}]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
        assert {"PARLEY_MONGO_URL", "PARLEY_CRYPTO_KEYS"} <= set(env), name
        assert ("PARLEY_AUTH_SECRET" in env) == name.endswith("-api"), name
        for ref in env.values():
            if ref["name"] != "parley-mongo-connection":  # written by the MongoDB operator
                assert ref["key"] in secrets[ref["name"]]["stringData"], name


def test_secrets_are_templates_without_values(rendered: Any) -> None:
    _, docs = rendered
    secrets = of_kind(docs, "Secret")
    assert {"parley-auth", "parley-crypto", "parley-mongo-password"} <= set(secrets)
    for name, s in secrets.items():
        assert "data" not in s, name
        assert set(s["stringData"].values()) == {PLACEHOLDER}, name


def test_every_deployment_has_a_disruption_budget(rendered: Any) -> None:
    _, docs = rendered
    budgets = list(of_kind(docs, "PodDisruptionBudget").values())
    for name, d in of_kind(docs, "Deployment").items():
        matching = [b for b in budgets if selects(b["spec"]["selector"], pod_labels(d))]
        assert len(matching) == 1, name
        spec = matching[0]["spec"]
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec), name
        if spec.get("minAvailable") is not None:
            assert spec["minAvailable"] < d["spec"]["replicas"], f"{name}: the budget would block every drain"


def test_apis_have_services_and_hpas_workers_have_neither(rendered: Any) -> None:
    _, docs = rendered
    deployments, services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {f"{s}-api" for s in APIS}
    assert set(services) == {f"{s}-api" for s in APIS}
    for service, port in APIS.items():
        svc = services[f"{service}-api"]
        assert selects({"matchLabels": svc["spec"]["selector"]}, pod_labels(deployments[f"{service}-api"]))
        assert svc["spec"]["ports"][0]["port"] == port and svc["spec"]["type"] == "ClusterIP"
        assert hpas[f"{service}-api"]["spec"]["minReplicas"] <= hpas[f"{service}-api"]["spec"]["maxReplicas"]


# ------------------------------------------------------------------ KEDA


def test_every_worker_scales_on_its_own_consumer_groups_lag(rendered: Any) -> None:
    _, docs = rendered
    scaled = of_kind(docs, "ScaledObject")
    kafka = of_kind(docs, "Kafka")["parley-kafka"]
    topics = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(docs, "KafkaTopic").values()}
    prefix = of_kind(docs, "ConfigMap")["parley-config"]["data"].get("PARLEY_KAFKA_TOPIC_PREFIX", "")
    assert set(scaled) == {f"{s}-worker" for s in SERVICES}
    for service in SERVICES:
        so = scaled[f"{service}-worker"]
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        assert so["spec"]["scaleTargetRef"] == {"name": f"{service}-worker"}
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == f"{prefix}parley-{service}"  # shared/kafka/faust_app.py
        assert meta["bootstrapServers"] == f"{kafka['metadata']['name']}-kafka-bootstrap:9092"
        assert int(meta["lagThreshold"]) > 0
        assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata values are strings"
        # more pods than the busiest consumed topic has partitions would sit idle
        consumed = [t for t, spec in CATALOGUE.items() if service in spec.consumers]
        assert so["spec"]["maxReplicaCount"] <= max(topics[t] for t in consumed), service


# ------------------------------------------------------------------ Strimzi, MongoDB


def test_kafka_cluster_and_topics_fit_together(rendered: Any) -> None:
    _, docs = rendered
    (kafka,) = of_kind(docs, "Kafka").values()
    pools = of_kind(docs, "KafkaNodePool")
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    listeners = {lst["name"]: lst for lst in kafka["spec"]["kafka"]["listeners"]}
    assert {"name", "port", "type", "tls"} <= set(listeners["plain"]) and listeners["plain"]["port"] == 9092
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    brokers = sum(p["spec"]["replicas"] for p in pools.values() if "broker" in p["spec"]["roles"])
    for p in pools.values():
        assert p["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert kafka["spec"]["kafka"]["config"]["default.replication.factor"] <= brokers
    for t in of_kind(docs, "KafkaTopic").values():
        assert t["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert 1 <= t["spec"]["replicas"] <= brokers
        assert t["spec"]["config"]["min.insync.replicas"] <= t["spec"]["replicas"]
        assert t["spec"]["partitions"] >= 1


def test_mongodb_replica_set_and_its_user(rendered: Any) -> None:
    _, docs = rendered
    (mongo,) = of_kind(docs, "MongoDBCommunity").values()
    spec = mongo["spec"]
    assert mongo["apiVersion"] == "mongodbcommunity.mongodb.com/v1"
    assert spec["type"] == "ReplicaSet" and spec["members"] >= 1 and spec["version"]
    assert spec["security"]["authentication"]["modes"] == ["SCRAM"]
    (user,) = spec["users"]
    assert {"name", "db", "passwordSecretRef", "roles", "scramCredentialsSecretName"} <= set(user)
    assert user["passwordSecretRef"]["name"] in of_kind(docs, "Secret")
    assert user["connectionStringSecretName"] == "parley-mongo-connection"
    assert {r["db"] for r in user["roles"]} == {f"parley_{s}" for s in SERVICES}
    assert {r["name"] for r in user["roles"]} == {"readWrite"}


# ------------------------------------------------------------------ network policies


def test_network_policies_cover_every_pod_and_open_only_the_apis(rendered: Any) -> None:
    _, docs = rendered
    policies = list(of_kind(docs, "NetworkPolicy").values())
    for name, d in of_kind(docs, "Deployment").items():
        labels = pod_labels(d)
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        deny = [p for p in mine if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert deny, f"{name}: no default-deny policy selects it"
        ingress = [rule for p in mine for rule in p["spec"].get("ingress", [])]
        if name.endswith("-worker"):
            assert ingress == [], f"{name}: workers take no ingress"
        else:
            assert ingress and all(r["ports"] == [{"protocol": "TCP", "port": "http"}] for r in ingress), name
        egress = [rule for p in mine for rule in p["spec"].get("egress", [])]
        ports = {port["port"] for rule in egress for port in rule["ports"]}
        assert ports == {53, 9092, 9093, 27017}, f"{name}: egress only to DNS, Kafka and MongoDB"
        for rule in egress:
            assert rule.get("to"), f"{name}: an egress rule without destinations opens everything"
