"""docker/k8s/: validated offline against the Kubernetes schemas (kubernetes-validate, strict), and held to
the image (command, port, uid, health endpoints) and to each other (Service → pods, HPA → Deployment)."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import APP_UID, DOCKER, DOCKERFILES, flag_value, healthcheck, image_cmd

K8S = DOCKER / "k8s"
K8S_VERSION = "1.33.0"  # the schemas the manifests must satisfy (pinned; the package bundles them)
MANIFESTS = ("deployment.yaml", "service.yaml", "hpa.yaml")
INSTALL_DEV = "install the dev extra: .venv/bin/pip install -c constraints.txt -e '.[dev]'"


def _kv() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(f"kubernetes-validate is not installed: {INSTALL_DEV}")
    return kubernetes_validate


def _validate(doc: dict[str, Any]) -> None:
    """Raises kubernetes_validate.ValidationError; a kind without a schema is an error too."""
    kv = _kv()
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.SchemaNotFoundError as exc:
        pytest.fail(f"no schema for {doc.get('apiVersion')}/{doc.get('kind')}: {exc}")
    except (kv.utils.VersionNotSupportedError, IndexError):
        pytest.fail(f"kubernetes-validate {kv.utils.__version__} does not bundle the {K8S_VERSION} schemas")


def _docs(name: str, text: str | None = None) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text if text is not None else (K8S / name).read_text()) if d]
    assert docs, name
    return docs


def _all() -> dict[str, dict[str, Any]]:
    """{kind: document} of every manifest (one document of each kind)."""
    found: dict[str, dict[str, Any]] = {}
    for name in MANIFESTS:
        for doc in _docs(name):
            assert doc["kind"] not in found, f"two {doc['kind']}s"
            found[doc["kind"]] = doc
    return found


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def _server(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = _pod(deployment)["containers"]
    return container


@pytest.mark.parametrize("name", MANIFESTS)
def test_manifests_validate_against_the_kubernetes_schemas(name: str) -> None:
    for doc in _docs(name):
        _validate(doc)


def test_a_broken_manifest_fails_validation() -> None:
    kv = _kv()
    text = (K8S / "deployment.yaml").read_text()
    for good, bad in (
        ("livenessProbe:", "livenesProbe:"),  # a misspelt field (strict: unknown fields are errors)
        ("containerPort: 8000", "containerPort: eight-thousand"),  # a wrong type
        ("kind: Deployment", "kind: Deployment\nspec2: {}"),  # an unknown top-level field
        ("        - name: server\n", "        - image: x\n"),  # a container without its required name
    ):
        assert good in text, good
        docs = _docs("deployment.yaml", text.replace(good, bad, 1))
        broken = [d for d in docs if d["kind"] == "Deployment"]
        with pytest.raises(kv.ValidationError):
            _validate(broken[0])


def test_hpa_queue_depth_example_validates_when_uncommented() -> None:
    from stylenorm.server.metrics import Metrics

    text = (K8S / "hpa.yaml").read_text()
    match = re.search(r"^[ \t]*# BEGIN queue-depth example.*?\n(.*?)^[ \t]*# END queue-depth example", text,
                      re.M | re.S)
    assert match, "the commented Pods-metric example is missing"
    block = "\n".join(re.sub(r"^(\s*)# ?", r"\1", line) for line in match.group(1).splitlines())
    (metric,) = yaml.safe_load(block)
    hpa = copy.deepcopy(_docs("hpa.yaml")[0])
    hpa["spec"]["metrics"].append(metric)
    _validate(hpa)
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert f"\n{name} " in Metrics().render().decode(), f"the server exports no {name}"


def test_deployment_runs_the_image_as_built() -> None:
    deployment = _all()["Deployment"]
    pod, server = _pod(deployment), _server(deployment)
    cmd = image_cmd(DOCKERFILES["gpu"])
    # the image's command, on the image's port
    assert "command" not in server and "args" not in server, "the image's CMD must run unchanged"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": int(flag_value(cmd, "--port"))}
    # probes: liveness /healthz, readiness /readyz, and a startup probe long enough to load the models
    probes = {k: server[k]["httpGet"] for k in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] in ("/healthz", "/readyz")
    assert all(p["port"] in ("http", ports["http"]) for p in probes.values())
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    image_start = healthcheck(DOCKERFILES["gpu"])[0]["start-period"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= int(image_start.rstrip("s"))
    # one GPU, requests and limits
    resources = server["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"].get("nvidia.com/gpu", 1) == 1
    for key in ("cpu", "memory"):
        assert key in resources["requests"] and key in resources["limits"]
    # non-root as the image's uid, read-only root with an emptyDir /tmp, no capabilities
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == APP_UID and pod["securityContext"]["runAsGroup"] == APP_UID
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in [*pod.get("initContainers", []), server]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["image"].split(":")[0] == "stylenorm"
    mounts = {m["mountPath"]: m for m in server["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    # the models: the PVC of deployment.yaml, read-only where STYLENORM_MODELS_DIR points
    env = {e["name"]: e for e in server["env"]}
    models = mounts[env["STYLENORM_MODELS_DIR"]["value"]]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim == _all()["PersistentVolumeClaim"]["metadata"]["name"]
    seed = {m["name"] for c in pod["initContainers"] for m in c["volumeMounts"]}
    assert models["name"] in seed, "the init container seeds the models volume"
    # settings: only names the server knows
    from stylenorm.server.settings import Settings

    known = {f"STYLENORM_{n.upper()}" for n in Settings.model_fields}
    assert {n for n in env if n.startswith("STYLENORM_")} <= known
    assert env["STYLENORM_API_KEYS"]["valueFrom"]["secretKeyRef"]["optional"] is True
    # SIGTERM: preStop + the server's drain fit in the grace period
    from stylenorm.server.settings import Settings

    drain = Settings.model_fields["shutdown_grace_s"].default
    pre_stop = server["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > drain + pre_stop
    # the HPA owns the replica count
    assert "replicas" not in deployment["spec"]


def test_service_selects_the_pods() -> None:
    found = _all()
    service, deployment = found["Service"], found["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    names = {p["name"] for p in _server(deployment)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= names


def test_hpa_scales_the_deployment() -> None:
    found = _all()
    hpa, deployment = found["HorizontalPodAutoscaler"], found["Deployment"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        deployment["apiVersion"], deployment["kind"], deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    cpu = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    assert "cpu" in _server(deployment)["resources"]["requests"], "utilization is relative to the request"


def test_kustomization_lists_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)
    assert all((K8S / name).is_file() for name in kustomization["resources"])
    images = {i["name"] for i in kustomization["images"]}
    pod = _pod(_all()["Deployment"])
    assert {c["image"].split(":")[0] for c in [*pod["containers"], *pod["initContainers"]]} <= images


def test_manifest_files_are_the_listed_ones() -> None:
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted([*MANIFESTS, "kustomization.yaml"])
    assert set(_all()) == {"PersistentVolumeClaim", "Deployment", "Service", "HorizontalPodAutoscaler"}


def test_seed_models_script_copies_only_missing_models(tmp_path: Path) -> None:
    """The init container's shell script, run here on two folders standing for /models and /seed."""
    (init,) = _pod(_all()["Deployment"])["initContainers"]
    assert init["command"][:2] == ["sh", "-c"]
    image, volume = tmp_path / "image-models", tmp_path / "volume"
    for name in ("a", "b"):
        (image / name / "styles").mkdir(parents=True)
        (image / name / "card.toml").write_text(f"name = '{name}'\n")
        (image / name / "styles" / "s.png").write_bytes(b"png")
    (volume / "b").mkdir(parents=True)
    (volume / "b" / "card.toml").write_text("name = 'b'  # the operator's own\n")
    script = init["command"][2].replace("/models/", f"{image}/").replace("/seed/", f"{volume}/")
    for _ in range(2):  # a second run (the next pod) changes nothing
        proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                              env={"PATH": os.environ["PATH"], "HOSTNAME": "pod-1"})
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in volume.iterdir()) == ["a", "b"]  # no temporary folders left
        assert (volume / "a" / "styles" / "s.png").read_bytes() == b"png"
        assert "operator" in (volume / "b" / "card.toml").read_text()
        assert not (volume / "b" / "styles").exists()
