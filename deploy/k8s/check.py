"""make k8s-check: render every overlay and validate what comes out.

1. ``kubectl kustomize`` renders ``overlays/dev`` and ``overlays/production``.
2. Built-in kinds go through ``kubernetes-validate --strict`` (unknown fields are errors).
3. KEDA ScaledObjects go through the vendored schema in ``schemas/`` (same strictness).
4. The project's own rules: every container runs as non-root with a read-only root and
   no capabilities, has resources and a liveness probe (the webs readiness too); every
   worker Deployment has a ScaledObject on its own queue's list, ``<namespace>:<queue>``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
OVERLAYS = ("dev", "production")
SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): HERE / "schemas/scaledobject-keda-v1alpha1.json"}
K8S_VERSION = "1.30.0"


def render(overlay: str) -> list[dict]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(HERE / "overlays" / overlay)],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise SystemExit(f"k8s-check: kubectl kustomize overlays/{overlay} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rules(docs: list[dict]) -> list[str]:
    problems = []
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and "REDIS_NAMESPACE" in d.get("data", {})
    )
    namespace = config["data"]["REDIS_NAMESPACE"]
    lists = {
        d["spec"]["scaleTargetRef"]["name"]: d["spec"]["triggers"][0]["metadata"]["listName"]
        for d in docs
        if d["kind"] == "ScaledObject"
    }
    for d in docs:
        if d["kind"] not in ("Deployment", "Job"):
            continue
        name = f"{d['kind']}/{d['metadata']['name']}"
        pod = d["spec"]["template"]["spec"]
        psc = pod.get("securityContext", {})
        if not psc.get("runAsNonRoot"):
            problems.append(f"{name}: pod securityContext lacks runAsNonRoot")
        for c in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name} container {c['name']}"
            sc = c.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem"):
                problems.append(f"{where}: root filesystem not read-only")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not all dropped")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if not c.get("resources", {}).get("requests") or not c["resources"].get("limits"):
                problems.append(f"{where}: no resource requests and limits")
            if d["kind"] == "Deployment" and "livenessProbe" not in c:
                problems.append(f"{where}: no liveness probe")
            if "gunicorn" in c.get("command", []) and "readinessProbe" not in c:
                problems.append(f"{where}: web without a readiness probe")
        command = pod["containers"][0].get("command", [])
        if command[:1] == ["dramatiq"]:
            queue = next(e["value"] for e in pod["containers"][0]["env"] if e["name"] == "QUEUE")
            want = f"{namespace}:{queue}"
            got = lists.get(d["metadata"]["name"])
            if got != want:
                problems.append(
                    f"{name}: ScaledObject watches {got!r}, its queue's list is {want!r}"
                )
    return problems


def main() -> int:
    failed = False
    for overlay in OVERLAYS:
        docs = render(overlay)
        custom = [d for d in docs if (d["apiVersion"], d["kind"]) in SCHEMAS]
        builtin = [d for d in docs if (d["apiVersion"], d["kind"]) not in SCHEMAS]
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for i, d in enumerate(builtin):
                path = Path(tmp) / f"{i:03d}-{d['kind']}-{d['metadata']['name']}.yaml"
                path.write_text(yaml.safe_dump(d))
                paths.append(str(path))
            out = subprocess.run(
                [
                    str(Path(sys.executable).parent / "kubernetes-validate"),
                    "--strict",
                    "-k",
                    K8S_VERSION,
                    "--quiet",
                    *paths,
                ],
                capture_output=True,
                text=True,
            )
        report = (out.stdout + out.stderr).strip()
        if out.returncode or "WARN" in report:
            print(f"k8s-check: overlays/{overlay}: kubernetes-validate --strict failed:\n{report}")
            failed = True
        for d in custom:
            schema = json.loads(SCHEMAS[(d["apiVersion"], d["kind"])].read_text())
            for err in jsonschema.Draft202012Validator(schema).iter_errors(d):
                path = "/".join(str(p) for p in err.absolute_path)
                name = f"{d['kind']}/{d['metadata']['name']}"
                print(f"k8s-check: overlays/{overlay}: {name} {path}: {err.message}")
                failed = True
        for problem in rules(docs):
            print(f"k8s-check: overlays/{overlay}: {problem}")
            failed = True
        kinds = {}
        for d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        print(
            f"k8s-check: overlays/{overlay}: {len(docs)} objects "
            f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"
            f"{' FAILED' if failed else ' valid'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
