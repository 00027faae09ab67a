"""Cluster configurations (cluster/): launcher YAMLs against Ray's own autoscaler schema, KubeRay
manifests' structure, and every `taast` command in them against the real argument parser.

No docker, no cloud, no Kubernetes: parsing and schema validation only (well under a second).
"""
from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import pytest
import yaml

from taast_ray.cli import parse_args
from taast_ray.config import config_from_dict

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
LAUNCHER = ["aws.yaml", "gcp.yaml"]
KUBERAY = CLUSTER / "kuberay"
SUBCOMMANDS = ("select", "run", "cycle", "ingest", "synth", "demo")
# a `taast <subcommand> ...` invocation inside a command or a usage comment, up to a quote or EOL
TAAST_CMD = re.compile(r"(?<![\w./-])taast\s+(?:%s)\b[^\"'\n]*" % "|".join(SUBCOMMANDS))


def _load(name: str) -> dict:
    return yaml.safe_load((CLUSTER / name).read_text())


def _prepared(config: dict) -> dict:
    """What `ray up` validates: the config merged with the provider's defaults.yaml, no cloud calls."""
    from ray.autoscaler._private.util import prepare_config

    return prepare_config(copy.deepcopy(config))


def _ray_schema() -> dict:
    import json

    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _validate(config: dict) -> None:
    """The file as written against ray-schema.json (prepare_config would crash on some wrong
    types before reaching the schema), then what `ray up` runs: prepare_config + validate_config."""
    import jsonschema
    from ray.autoscaler._private.util import validate_config

    jsonschema.validate(config, _ray_schema())
    validate_config(_prepared(config))


def _parse_taast(command: str):
    """Parse one `taast ...` command line with the real CLI parser; argparse errors fail the test."""
    argv = shlex.split(command)
    assert argv[0] == "taast", command
    try:
        return parse_args(argv[1:])
    except SystemExit as exc:  # argparse reports unknown options / missing arguments this way
        pytest.fail(f"not a valid taast command ({exc.code}): {command}")


def _taast_commands(text: str) -> list[str]:
    return [m.group(0).strip() for m in TAAST_CMD.finditer(text)]


# ---------------------------------------------------------------------------------------------
# cluster launcher (AWS, GCP)


@pytest.fixture(scope="module")
def ray_schema():
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    assert path.is_file(), path
    return path


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_config_passes_ray_schema(name, ray_schema):
    _validate(_load(name))


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_validation_catches_broken_configs(name):
    import jsonschema

    good = _load(name)
    broken = [
        lambda c: c.__setitem__("max_workers", "ten"),                     # wrong type
        lambda c: c.__setitem__("idle_timeout_minutes", "five"),
        lambda c: c["available_node_types"]["gpu_worker"].__setitem__("min_workers", "0"),
        lambda c: c["available_node_types"]["gpu_worker"]["resources"].__setitem__("GPU", -1),
        lambda c: c["available_node_types"]["gpu_worker"].pop("node_config"),  # required
        lambda c: c.__setitem__("setup_commands", "pip install taast-ray"),    # not a list
        lambda c: c.__setitem__("unknown_top_level_field", 1),                 # no extra fields
        lambda c: c["docker"].__setitem__("imagee", "typo"),
    ]
    for i, mutate in enumerate(broken):
        config = copy.deepcopy(good)
        mutate(config)
        with pytest.raises(jsonschema.ValidationError):
            _validate(config)
    config = copy.deepcopy(good)
    config["head_node_type"] = "no_such_type"
    with pytest.raises((ValueError, KeyError)):
        _validate(config)
    config = copy.deepcopy(good)
    config["available_node_types"]["gpu_worker"]["min_workers"] = config["max_workers"] + 1
    with pytest.raises(ValueError):
        _validate(config)


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_node_types(name):
    config = _load(name)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU", None) == 0, "no model actors on the head"
    assert "GPU" not in head["resources"]
    gpu = [t for n, t in types.items() if n != config["head_node_type"] and t["resources"].get("GPU", 0) >= 1]
    assert gpu, "an autoscaling GPU worker type"
    for node_type in gpu:
        assert node_type["min_workers"] == 0 < node_type["max_workers"] <= config["max_workers"]
    cpu = [t for n, t in types.items() if n != config["head_node_type"] and not t["resources"].get("GPU")]
    assert all(t["min_workers"] == 0 for t in cpu)
    assert isinstance(config["idle_timeout_minutes"], (int, float)) and config["idle_timeout_minutes"] > 0
    assert config["upscaling_speed"] > 0
    assert config["docker"]["image"] and "EDIT" in config["docker"]["image"]
    assert any("taast-ray[gpu]" in c for c in config["setup_commands"])
    assert config["provider"]["type"] == name.split(".")[0]
    # every start command is a Ray command, and the worker joins the head's GCS port
    assert any("ray start --head" in " ".join(c.split()) for c in config["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP:6379" in c for c in config["worker_start_ray_commands"])


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_user_fields_are_marked(name):
    text = (CLUSTER / name).read_text()
    config = yaml.safe_load(text)
    lines = {key: [ln for ln in text.splitlines() if ln.strip().startswith(f"{key}:")]
             for key in ("cluster_name", "max_workers", "image", "region")}
    for key, found in lines.items():
        assert found and all("EDIT" in ln for ln in found), f"{name}: {key} needs an EDIT marker"
    if config["provider"]["type"] == "gcp":
        assert "EDIT" in config["provider"]["project_id"]
        assert "EDIT" in next(ln for ln in text.splitlines() if "availability_zone:" in ln)


@pytest.mark.parametrize("name", LAUNCHER)
def test_launcher_taast_commands_parse(name):
    config = _load(name)
    text = (CLUSTER / name).read_text()
    commands = _taast_commands(text)  # usage comments and any command list
    for key, value in config.items():
        if key.endswith("commands"):
            for line in value:
                commands += _taast_commands(line)
    assert any(c.startswith("taast run") for c in commands), f"{name}: documents no `taast run`"
    for command in commands:
        _parse_taast(command)


# ---------------------------------------------------------------------------------------------
# KubeRay


def _docs(name: str) -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all((KUBERAY / name).read_text()) if d]
    return {d["kind"]: d for d in docs}


def _check_ray_cluster_spec(spec: dict) -> None:
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]
    assert isinstance(head["rayStartParams"], dict)
    assert str(head["rayStartParams"].get("num-cpus")) == "0", "no model actors on the head"
    for container in head["template"]["spec"]["containers"]:
        assert container["image"]
        assert "nvidia.com/gpu" not in container.get("resources", {}).get("limits", {})
    groups = spec["workerGroupSpecs"]
    assert len({g["groupName"] for g in groups}) == len(groups)
    gpu_groups = []
    for group in groups:
        assert isinstance(group["rayStartParams"], dict), group["groupName"]
        assert 0 <= group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["image"] for c in containers)
        gpus = [int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) for c in containers]
        if any(gpus):
            gpu_groups.append(group)
            assert group["minReplicas"] == 0 < group["maxReplicas"]
    assert gpu_groups, "a GPU worker group with nvidia.com/gpu in its limits"
    assert any(not any(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                       for c in g["template"]["spec"]["containers"]) for g in groups), "a CPU worker group"
    _check_shared_volume(spec)


def _check_shared_volume(spec: dict) -> None:
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
        mounts = {m["mountPath"]: m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        assert mounts.get("/shared") in claims, "every pod mounts the shared run directory at /shared"


def test_raycluster_manifest():
    docs = _docs("raycluster.yaml")
    cluster = docs["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["name"]
    _check_ray_cluster_spec(cluster["spec"])
    pvc = docs["PersistentVolumeClaim"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    for pod in [cluster["spec"]["headGroupSpec"]] + cluster["spec"]["workerGroupSpecs"]:
        for v in pod["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_rayjob_manifest(tmp_path):
    docs = _docs("rayjob.yaml")
    job = docs["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    _check_ray_cluster_spec(spec["rayClusterSpec"])

    args = _parse_taast(spec["entrypoint"])
    assert args.command == "run" and args.resume
    assert args.config == "/config/run.yaml" and args.out.startswith("/shared/")

    # /config/run.yaml comes from the ConfigMap, mounted on the head (where the driver runs)
    head = spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    config_volumes = {v["name"]: v["configMap"]["name"] for v in head["volumes"] if "configMap" in v}
    mounts = {m["mountPath"]: m["name"] for c in head["containers"] for m in c.get("volumeMounts", [])}
    configmap = docs["ConfigMap"]
    assert config_volumes[mounts["/config"]] == configmap["metadata"]["name"]
    run_yaml = configmap["data"][Path(args.config).name]
    config_from_dict(yaml.safe_load(run_yaml)).validate()  # a typo'd field fails here


def test_taast_command_check_catches_typos():
    with pytest.raises(pytest.fail.Exception):
        _parse_taast("taast run --config /config/run.yaml --output /shared/run --resume")
    with pytest.raises(pytest.fail.Exception):
        _parse_taast("taast run --config /config/run.yaml --resume")  # --out is required
    assert _taast_commands('x "taast run --out a --resume" taast-ray taast selection') == ["taast run --out a --resume"]


# ---------------------------------------------------------------------------------------------
# Dockerfile


def test_dockerfile_installs_gpu_extra():
    text = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^ARG RAY_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"rayproject/ray:\d+\.\d+\.\d+-py3\d+-(gpu|cu\d+)", base), base
    assert re.search(r"^FROM \$\{RAY_IMAGE\}", text, re.M)
    assert "EDIT" in text
    assert re.search(r'pip install "\.\[gpu\]"', text)
    import tomllib

    pyproject = tomllib.loads((CLUSTER.parent / "pyproject.toml").read_text())
    assert any(d.startswith("faiss-gpu") for d in pyproject["project"]["optional-dependencies"]["gpu"])
