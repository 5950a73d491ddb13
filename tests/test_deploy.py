"""The deployment files: valid for their engines, and consistent with Frontdesk itself.

Kubernetes manifests are validated offline against the API schemas that
``kubernetes-validate`` ships (strict: an unknown field is an error). The
ServiceMonitor is a Prometheus Operator resource, not in those schemas: it is checked
against the part of its CRD's schema this deployment uses (:data:`SERVICE_MONITOR`).
Nothing here needs a cluster, Docker, Caddy or the network.
"""

from __future__ import annotations

import copy
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from frontdesk.runtime.metrics import Metrics
from frontdesk.runtime.settings import Settings
from frontdesk.telephony.edge import BUSY_MESSAGE
from frontdesk.telephony.protocol import busy_twiml
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes release still commonly run, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())

# Measured by the load benchmark at 50 concurrent calls (docs/scaling.md, "Sizing").
CORES_PER_CALL = 0.016
MB_PER_CALL = 1.3
IDLE_MB = 170
# After the drain grace: calls ended politely (each bounded at 30 s), then the
# long-lived actors stopped in order, each time-boxed.
STOP_BUDGET_SECONDS = 60

SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": r"^\d+[smh]$"},
                            "scrapeTimeout": {"type": "string", "pattern": r"^\d+[smh]$"},
                        },
                    },
                },
            },
        },
    },
}
"""The subset of the ServiceMonitor CRD's schema this deployment relies on."""


# ----------------------------------------------------------------------- reading


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())


def manifests() -> list[dict[str, Any]]:
    """Every resource the kustomization applies, in its order."""
    resources = []
    for name in kustomization()["resources"]:
        resources += [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]
    return resources


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        r
        for r in manifests()
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def settings_map() -> dict[str, str]:
    return resource("ConfigMap", "frontdesk-settings")["data"]


def seconds(name: str) -> float:
    return float(settings_map()[name])


def pod_spec() -> dict[str, Any]:
    return resource("StatefulSet")["spec"]["template"]["spec"]


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return only


def container_port(port: str | int) -> int:
    """The container port a probe or Service names, by name or by number."""
    for declared in container()["ports"]:
        if port in (declared["name"], declared["containerPort"]):
            return declared["containerPort"]
    raise AssertionError(f"the container declares no port {port!r}")


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def megabytes(quantity: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMG]i?)?", quantity).groups()
    return float(number) * units.get(unit or "", 1) / 10**6


def duration_seconds(text: str) -> float:
    """A Go duration as compose and Caddy write them: ``20m``, ``1h30m``, ``90s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


# ------------------------------------------------------------------ API schemas


def validate(manifest: dict[str, Any], version: str) -> None:
    if manifest["kind"] == "ServiceMonitor":
        jsonschema.validate(manifest, SERVICE_MONITOR)
    else:
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_for_the_kubernetes_api(version):
    applied = manifests()
    assert {r["kind"] for r in applied} >= {
        "ConfigMap",
        "Service",
        "StatefulSet",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }
    for manifest in applied:
        validate(manifest, version)


def test_the_kustomization_applies_every_manifest_in_the_folder():
    listed = set(kustomization()["resources"])
    # The adapter's rules are Helm values for its own chart, not a Kubernetes object.
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {
        "kustomization.yaml",
        "prometheus-adapter-values.yaml",
    }
    assert listed == present


@pytest.mark.parametrize(
    ("kind", "mistake"),
    [
        (
            "StatefulSet",
            lambda m: m["spec"]["template"]["spec"]["containers"][0].update(
                readinesProbe=m["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            ),
        ),
        ("Ingress", lambda m: m["spec"]["tls"][0].update(hosts="frontdesk.example.com")),
        ("HorizontalPodAutoscaler", lambda m: m["spec"].update(minReplicas="two")),
        ("ServiceMonitor", lambda m: m["spec"]["endpoints"][0].update(interval="often")),
    ],
)
def test_a_broken_manifest_is_refused(kind, mistake):
    broken = copy.deepcopy(resource(kind))
    mistake(broken)
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        validate(broken, KUBERNETES_VERSIONS[-1])


# ------------------------------------------------------------------ the settings


def test_the_config_map_holds_valid_settings_and_no_secret():
    values = settings_map()
    for key in values:
        assert key.lower() in Settings.model_fields, f"{key} is not a Frontdesk setting"
        annotation = str(Settings.model_fields[key.lower()].annotation)
        assert "SecretStr" not in annotation, f"{key} is a secret: it belongs in the Secret"
    required = {
        "openai_api_key": "sk",
        "deepgram_api_key": "dg",
        "inworld_api_key": "iw",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "token",
        "v2_backend_url": "https://backend.example.com",
    }
    given = {key.lower(): value for key, value in values.items()}
    # The production URL policy resolves host names; parse the values without the network.
    settings = Settings(_env_file=None, **{**required, **given, "app_env": "development"})
    assert str(settings.outbox_path) == values["OUTBOX_PATH"]
    assert values["APP_ENV"] == "production"


def test_the_pod_reads_the_config_map_and_the_secret():
    sources = container()["envFrom"]
    assert {"configMapRef": {"name": "frontdesk-settings"}} in sources
    assert {"secretRef": {"name": "frontdesk-secrets"}} in sources
    assert not any(r["kind"] == "Secret" for r in manifests()), "no secret is shipped"


def test_each_pod_keeps_its_outbox_on_its_own_volume():
    statefulset = resource("StatefulSet")["spec"]
    (claim,) = statefulset["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container()["volumeMounts"]}
    outbox = settings_map()["OUTBOX_PATH"]
    assert outbox.startswith(mounts[claim["metadata"]["name"]].rstrip("/") + "/")
    retention = statefulset["persistentVolumeClaimRetentionPolicy"]
    assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    # The image runs as uid 10001: the volume must be writable by it.
    assert pod_spec()["securityContext"]["fsGroup"] == 10001


# ------------------------------------------------------------- drain and probes


def pre_stop_sleep_seconds() -> float:
    command = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    return float(command[1])


def test_termination_grace_covers_the_drain():
    grace = pod_spec()["terminationGracePeriodSeconds"]
    needed = pre_stop_sleep_seconds() + seconds("SHUTDOWN_GRACE_SECONDS") + STOP_BUDGET_SECONDS
    assert grace >= needed


def test_a_draining_pod_lets_the_longest_call_end_by_itself():
    assert seconds("SHUTDOWN_GRACE_SECONDS") >= seconds("MAX_CALL_SECONDS")
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert grace >= seconds("MAX_CALL_SECONDS") + pre_stop_sleep_seconds()


def test_pre_stop_waits_for_the_endpoint_to_go_and_sends_no_signal():
    command = shlex.join(container()["lifecycle"]["preStop"]["exec"]["command"])
    assert "kill" not in command
    assert 5 <= pre_stop_sleep_seconds() <= 30


def test_probes_ask_the_health_routes_on_the_listening_port():
    listening = int(settings_map()["PORT"])
    probes = {kind: container()[kind]["httpGet"] for kind in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert container_port(probe["port"]) == listening
    web = (ROOT / "actors" / "web.py").read_text()
    for probe in probes.values():
        assert f'add_get("{probe["path"]}"' in web


# ----------------------------------------------------------------- the network


def test_services_select_the_pods_and_the_headless_one_lists_unready_pods():
    pod_labels = resource("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    for service in (resource("Service", "frontdesk"), resource("Service", "frontdesk-pods")):
        assert service["spec"]["selector"].items() <= pod_labels.items()
        for port in service["spec"]["ports"]:
            assert container_port(port["targetPort"]) == int(settings_map()["PORT"])
    headless = resource("Service", "frontdesk-pods")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert resource("StatefulSet")["spec"]["serviceName"] == "frontdesk-pods"
    budget = resource("PodDisruptionBudget")["spec"]
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()


def test_the_ingress_carries_calls_longer_than_the_longest_call():
    ingress = resource("Ingress")
    annotations = ingress["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > seconds(
            "MAX_CALL_SECONDS"
        )
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == urlsplit(settings_map()["PUBLIC_URL"]).hostname
    for path in rule["http"]["paths"]:
        assert path["path"].startswith("/twilio/"), "only Twilio's routes are public"
        assert path["backend"]["service"]["name"] == "frontdesk"
    service_ports = {p["name"] for p in resource("Service", "frontdesk")["spec"]["ports"]}
    assert rule["http"]["paths"][0]["backend"]["service"]["port"]["name"] in service_ports


# ----------------------------------------------------------- metrics and scaling


def exported_gauges() -> set[str]:
    text = Metrics().exposition().decode()
    return {f.name for f in text_string_to_metric_families(text) if f.type == "gauge"}


def test_the_autoscaler_scales_on_a_gauge_frontdesk_exports():
    (metric,) = resource("HorizontalPodAutoscaler")["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert name in exported_gauges()
    rules = yaml.safe_load((KUBERNETES / "prometheus-adapter-values.yaml").read_text())
    (rule,) = rules["rules"]["custom"]
    assert rule["seriesQuery"].startswith(name + "{")
    assert rule["name"]["as"] == name
    assert "by (<<.GroupBy>>)" in rule["metricsQuery"]


def test_the_autoscaler_adds_pods_before_the_others_are_full():
    hpa = resource("HorizontalPodAutoscaler")["spec"]
    (metric,) = hpa["metrics"]
    target = float(metric["pods"]["target"]["averageValue"])
    assert 0 < target < int(settings_map()["MAX_CONCURRENT_CALLS"])
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": resource("StatefulSet")["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2


def test_prometheus_scrapes_every_pod_full_or_not():
    monitor = resource("ServiceMonitor")["spec"]
    headless = resource("Service", "frontdesk-pods")
    assert monitor["selector"]["matchLabels"].items() <= headless["metadata"]["labels"].items()
    assert monitor["selector"]["matchLabels"].get("app.kubernetes.io/component") == "pods"
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in headless["spec"]["ports"]}


def test_resources_cover_the_measured_cost_of_a_full_pod():
    calls = int(settings_map()["MAX_CONCURRENT_CALLS"])
    resources = container()["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert cpu_cores(requests["cpu"]) >= calls * CORES_PER_CALL
    assert megabytes(requests["memory"]) >= IDLE_MB + calls * MB_PER_CALL
    assert cpu_cores(limits["cpu"]) >= cpu_cores(requests["cpu"])
    assert megabytes(limits["memory"]) >= megabytes(requests["memory"])


# ------------------------------------------------------------- one machine: compose


@dataclass
class Directive:
    """One Caddyfile directive: its words and the directives of its block."""

    words: list[str]
    block: list[Directive] = field(default_factory=list)

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.words and d.words[0] == name]


def parse_caddyfile(text: str) -> Directive:
    """Caddyfile syntax: lines of words, backquoted or double-quoted tokens, ``{ }`` blocks."""
    root = Directive(words=[])
    stack = [root]
    token = re.compile(r'`[^`]*`|"(?:[^"\\]|\\.)*"|\{\$[^}]*\}|\{[^\s}]+\}|[^\s]+')
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = [w[1:-1] if w[0] in '`"' else w for w in token.findall(line)]
        if words == ["}"]:
            stack.pop()
            continue
        opens = words[-1] == "{"
        directive = Directive(words=words[:-1] if opens else words)
        stack[-1].block.append(directive)
        if opens:
            stack.append(directive)
    assert stack == [root], "unbalanced braces"
    return root


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def frontdesk_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if n.startswith("frontdesk")}


def site() -> Directive:
    (only,) = parse_caddyfile((DEPLOY / "Caddyfile").read_text()).block
    return only


def test_compose_runs_several_frontdesks_each_with_its_own_outbox():
    services = frontdesk_services()
    assert len(services) >= 2
    volumes = set()
    for service in services.values():
        environment = service["environment"]
        (mount,) = [v for v in service["volumes"] if v.endswith(":/app/data")]
        volumes.add(mount.split(":")[0])
        assert environment["OUTBOX_PATH"].startswith("/app/data/")
        stop = duration_seconds(service["stop_grace_period"])
        assert stop >= float(environment["SHUTDOWN_GRACE_SECONDS"]) + STOP_BUDGET_SECONDS
        assert float(environment["SHUTDOWN_GRACE_SECONDS"]) >= float(
            environment["MAX_CALL_SECONDS"]
        )
    assert len(volumes) == len(services), "two containers must never share one outbox"
    assert volumes <= set(compose()["volumes"])


def test_caddy_proxies_twilio_to_every_frontdesk_with_websockets_and_long_timeouts():
    (twilio,) = [h for h in site().find("handle") if h.words[1:] == ["/twilio/*"]]
    (proxy,) = twilio.find("reverse_proxy")
    services = frontdesk_services()
    (port,) = {s["environment"]["PORT"] for s in services.values()}
    assert sorted(proxy.words[1:]) == sorted(f"{name}:{port}" for name in services)
    settings = {d.words[0]: d.words[1:] for d in proxy.block}
    assert settings["health_uri"] == ["/readyz"]
    longest = max(float(s["environment"]["MAX_CALL_SECONDS"]) for s in services.values())
    # Caddy passes websocket upgrades through by itself; these keep it from cutting them.
    for timeout in ("stream_timeout", "stream_close_delay"):
        assert duration_seconds(settings[timeout][0]) > longest
    assert compose()["services"]["proxy"]["image"].startswith("caddy:2.")
    version = compose()["services"]["proxy"]["image"].split(":")[1]
    assert tuple(map(int, version.split(".")[:2])) >= (2, 7), "stream_timeout needs 2.7"


def test_caddy_keeps_the_health_routes_private_and_answers_busy_when_all_are_full():
    (catch_all,) = [h for h in site().find("handle") if len(h.words) == 1]
    assert catch_all.find("respond")[0].words == ["respond", "404"]
    (errors,) = site().find("handle_errors")
    (answer,) = errors.find("handle")
    (respond,) = answer.find("respond")
    assert respond.words[1] == busy_twiml(BUSY_MESSAGE)
    assert respond.words[2] == "200"
    (matcher,) = errors.find("@voice_unavailable")
    (path,) = matcher.find("path")
    assert path.words == ["path", "/twilio/voice"]
    (expression,) = matcher.find("expression")
    assert "503" in " ".join(expression.words)


def test_the_secrets_never_appear_in_the_deployment_files():
    secret_settings = [
        name.upper()
        for name, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation)
    ]
    assert "TWILIO_AUTH_TOKEN" in secret_settings
    texts = [p.read_text() for p in [*KUBERNETES.glob("*.yaml"), DEPLOY / "compose.yaml"]]
    for text in texts:
        for name in secret_settings:
            assert f"{name}:" not in text and f"{name}=" not in text


# ----------------------------------------------------------------- the guide


def test_the_scaling_guide_quotes_the_files_it_explains():
    guide = (ROOT / "docs" / "scaling.md").read_text()
    grace = pod_spec()["terminationGracePeriodSeconds"]
    assert f"terminationGracePeriodSeconds: {grace}` = {pre_stop_sleep_seconds():.0f}" in guide
    (metric,) = resource("HorizontalPodAutoscaler")["spec"]["metrics"]
    assert f"target of {metric['pods']['target']['averageValue']}" in guide
    assert f"`MAX_CONCURRENT_CALLS: {settings_map()['MAX_CONCURRENT_CALLS']}`" in guide
    assert f"{CORES_PER_CALL:.1%} of a core per call" in guide
    assert f"{MB_PER_CALL} MB of resident memory per call" in guide
    assert f"{IDLE_MB} MB" in guide
    for link in re.findall(r"\]\((\.\./[^)#]+)\)", guide):
        assert (ROOT / "docs" / link).resolve().exists(), link
