"""deploy/: every manifest parses, refers to what exists, and agrees with the code it deploys."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from shared.settings import Settings
from shared.topics import Topics
from tests.settings_env import setting_env_names
from tierflow.stack import PROCESSES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
GROUPS = {"scoring": "scoring_group", "engagement": "engagement_group", "feedback": "feedback_group"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def base() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = documents(KUBERNETES / "base" / "kustomization.yaml")[0]
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in documents(KUBERNETES / "base" / resource):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in found, f"{key} defined twice"
            found[key] = doc
    return found


def test_every_manifest_parses_and_names_its_kind() -> None:
    files = sorted(KUBERNETES.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        for doc in documents(path):
            assert doc.get("apiVersion"), path
            assert doc.get("kind"), path
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], path


def test_kustomizations_refer_only_to_files_that_exist() -> None:
    for path in KUBERNETES.rglob("kustomization.yaml"):
        kustomization = documents(path)[0]
        for resource in kustomization.get("resources", []):
            assert (path.parent / resource).exists(), f"{path}: {resource}"
        for patch in kustomization.get("patches", []):
            if "path" in patch:
                assert (path.parent / patch["path"]).exists(), f"{path}: {patch['path']}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders kustomize; not installed")
@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kustomize_renders_every_overlay(overlay: str) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES / overlay)], check=True, capture_output=True, text=True
    ).stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]
    assert kinds.count("Deployment") == len(PROCESSES)
    assert kinds.count("KafkaTopic") == len(Topics().all())


def test_each_service_runs_from_one_image_with_probes_resources_and_a_service(
    base: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name in PROCESSES:
        deployment = base[("Deployment", f"tierflow-{name}")]
        pod = deployment["spec"]["template"]
        container = pod["spec"]["containers"][0]
        assert container["command"] == ["tierflow", "serve", name]
        assert container["ports"][0]["containerPort"] == Settings().port_of(name)
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        service = base[("Service", f"tierflow-{name}")]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]


def test_configuration_names_only_real_settings() -> None:
    known = setting_env_names()
    for path in KUBERNETES.rglob("*.yaml"):
        for doc in documents(path):
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "tierflow-config":
                assert set(doc["data"]) <= known, f"{path}: {set(doc['data']) - known}"


def test_topics_are_the_contracts_replicated_for_durability(
    base: dict[tuple[str, str], dict[str, Any]],
) -> None:
    topics = {
        doc["spec"]["topicName"]: doc["spec"] for (kind, _), doc in base.items() if kind == "KafkaTopic"
    }
    assert set(topics) == set(Topics().all())
    for name, spec in topics.items():
        assert spec["replicas"] >= 3
        assert spec["config"]["min.insync.replicas"] == 2
        # The cluster keeps each topic as long as `tierflow topics` creates it to keep it.
        for key, value in Topics().config_of(name).items():
            assert str(spec["config"][key]) == value, f"{name}: {key}"


def test_duplicate_markers_outlive_the_longest_topic_retention() -> None:
    """A record a consumer group re-reads from the start of its topic is recognised, not refused."""
    settings = Settings()
    longest = max(int(Topics().config_of(name)["retention.ms"]) for name in Topics().all())
    assert settings.applied_events_horizon.total_seconds() * 1000 > longest


def test_workers_scale_on_their_own_group_and_never_beyond_the_partitions(
    base: dict[tuple[str, str], dict[str, Any]],
) -> None:
    partitions = {
        doc["spec"]["topicName"]: doc["spec"]["partitions"]
        for (k, _), doc in base.items()
        if k == "KafkaTopic"
    }
    settings = Settings()
    for service, group_setting in GROUPS.items():
        scaled = base[("ScaledObject", f"tierflow-{service}")]["spec"]
        assert ("Deployment", scaled["scaleTargetRef"]["name"]) in base
        trigger = scaled["triggers"][0]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == getattr(settings, group_setting)
        assert scaled["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]]


def _exposed_metric_names() -> set[str]:
    for module in ("services.scoring.metrics", "services.engagement.metrics", "services.ingest.metrics",
                   "shared.metrics", "shared.outbox"):  # fmt: skip
        importlib.import_module(module)
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix for family in REGISTRY.collect() for suffix in suffixes.get(family.type, ("",))
    }


def test_the_dashboard_uses_only_metrics_tierflow_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tierflow-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"tierflow_[a-z_]+", expr)}
    exported = _exposed_metric_names()
    assert used - exported == set()
    needed = {
        "tierflow_consumer_lag", "tierflow_events_applied_total", "tierflow_tier_changes_total",
        "tierflow_outbox_backlog", "tierflow_outreach_expired_total", "tierflow_dead_lettered_total",
    }  # fmt: skip
    assert needed <= used
