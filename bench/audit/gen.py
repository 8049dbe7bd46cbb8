#!/usr/bin/env python3
"""Writes N Kubernetes manifests for bench/audit: a directory of one file per object
(DIR/manifests/NNNN.yaml) and the same objects as one multi-document stream (DIR/all.yaml), as
`helm template` prints them. A mix of kinds (Deployment, StatefulSet, DaemonSet, Job, CronJob,
Pod), namespaces with and without enforce labels, passing and failing pods."""
import os
import sys

DIGEST = "sha256:" + "0123456789abcdef" * 4


def manifest(i):
    kind = ["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"][i % 6]
    ns = f"team-{i % 10}"
    bad = i % 3 == 0
    image = f"registry.example/app-{i}:1.{i}" + ("" if bad else f"@{DIGEST}")
    sc = (
        "privileged: true\n    allowPrivilegeEscalation: true"
        if bad
        else "allowPrivilegeEscalation: false\n    readOnlyRootFilesystem: true\n"
        "    capabilities: {drop: [ALL]}"
    )
    pod = f"""securityContext:
  runAsNonRoot: true
  seccompProfile: {{type: RuntimeDefault}}
volumes:
- name: tmp
  emptyDir: {{}}
containers:
- name: app
  image: {image}
  ports:
  - containerPort: 8080
  volumeMounts:
  - {{name: tmp, mountPath: /tmp}}
  resources:
    limits: {{cpu: 500m, memory: 256Mi}}
  securityContext:
    {sc}
- name: sidecar
  image: registry.example/sidecar:2.0@{DIGEST}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: {{drop: [ALL]}}"""

    def at(depth):  # the pod spec indented for a template `depth` mappings deep
        pad = " " * (2 * depth)
        return "\n".join(pad + line for line in pod.split("\n"))

    api = {"Pod": "v1", "Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    head = f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: w-{i}\n  namespace: {ns}\n  labels: {{app: w-{i}}}\n"
    if kind == "Pod":
        return head + "spec:\n" + at(1) + "\n"
    if kind == "CronJob":
        return (head + "spec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n"
                "        spec:\n" + at(5) + "\n")
    return (head + f"spec:\n  selector: {{matchLabels: {{app: w-{i}}}}}\n  template:\n"
            f"    metadata: {{labels: {{app: w-{i}}}}}\n    spec:\n" + at(3) + "\n")


def namespace(j):
    labels = "  labels:\n    pod-security.kubernetes.io/enforce: restricted\n" if j % 2 else ""
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{j}\n{labels}"


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    d = os.path.join(out, "manifests")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    docs = [namespace(j) for j in range(10)] + [manifest(i) for i in range(n - 10)]
    for i, doc in enumerate(docs):
        with open(os.path.join(d, f"{i:04}.yaml"), "w") as f:
            f.write(doc)
    with open(os.path.join(out, "all.yaml"), "w") as f:
        f.write("---\n".join(docs))


main()
