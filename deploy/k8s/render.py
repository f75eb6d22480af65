"""A minimal ``kustomize build`` for Parley's own kustomizations (no kustomize binary needed).

The overlays are ordinary kustomize (``kustomize build deploy/k8s/overlays/prod`` gives the same
objects); this renderer lets ``make test`` build them offline and check the result. It supports
exactly the fields Parley's kustomization.yaml files use, and refuses any other, so nothing is
silently ignored:

- ``resources``: YAML files (several documents each) and directories holding a kustomization;
- ``namespace``: set on every namespaced object;
- ``images``: ``name`` → ``newName`` / ``newTag`` on every container image of that name;
- ``replicas``: ``name`` → ``count`` on the Deployment of that name;
- ``patches``: ``path`` entries, each file one or more strategic-merge patches matched by kind and
  ``metadata.name`` (a patch matching nothing is an error). Kubernetes' own kinds merge like
  kustomize's strategic merge for what Parley patches: maps recursively, ``null`` deletes a key,
  lists of maps that all have a ``name`` merge by name (containers, env, ports, volumes), other
  lists are replaced. Custom resources (Strimzi, KEDA, MongoDB) get JSON merge patch
  semantics (RFC 7386: lists replaced whole), as kustomize does for kinds it has no schema of.

    .venv/bin/python deploy/k8s/render.py deploy/k8s/overlays/dev > dev.yaml
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "namespace", "resources", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
#: API groups of Kubernetes' own kinds (core has no group)
BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}


class RenderError(ValueError):
    """A kustomization this renderer cannot build faithfully."""


def load_docs(path: Path) -> list[Doc]:
    """Every non-empty YAML document of ``path``."""
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def is_built_in(doc: Doc) -> bool:
    """Whether ``doc`` is one of Kubernetes' own kinds (not a custom resource)."""
    api = doc.get("apiVersion", "")
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    return group in BUILT_IN_GROUPS


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and "name" in v for v in value)


def merge(target: Any, patch: Any, *, strategic: bool) -> Any:
    """``patch`` merged onto ``target`` (a new object; neither is changed)."""
    if not isinstance(patch, dict) or not isinstance(target, dict):
        if strategic and _named_list(target) and _named_list(patch):
            out = [copy.deepcopy(t) for t in target]
            index = {t["name"]: i for i, t in enumerate(out)}
            for item in patch:
                if item["name"] in index:
                    out[index[item["name"]]] = merge(out[index[item["name"]]], item, strategic=True)
                else:
                    out.append(copy.deepcopy(item))
            return out
        return copy.deepcopy(patch)
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif key in out:
            out[key] = merge(out[key], value, strategic=strategic)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _containers(doc: Doc) -> list[Doc]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def build(directory: str | Path) -> list[Doc]:
    """The objects ``kustomize build directory`` gives, for the fields listed above."""
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.exists():
        raise RenderError(f"{directory} has no kustomization.yaml")
    (k,) = load_docs(kfile)
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{kfile}: fields this renderer does not support: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in k.get("resources", []):
        path = directory / entry
        docs += build(path) if path.is_dir() else load_docs(path)
    by_id = {}
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in by_id:
            raise RenderError(f"{kfile}: {key} appears twice")
        by_id[key] = doc
    for entry in k.get("patches", []):
        if set(entry) != {"path"}:
            raise RenderError(f"{kfile}: only `patches: - path: file` is supported, not {sorted(entry)}")
        for patch in load_docs(directory / entry["path"]):
            key = (patch["kind"], patch["metadata"]["name"])
            if key not in by_id:
                raise RenderError(f"{kfile}: patch {key} ({entry['path']}) matches no resource")
            merged = merge(by_id[key], patch, strategic=is_built_in(patch))
            docs[docs.index(by_id[key])] = merged
            by_id[key] = merged
    for entry in k.get("replicas", []):
        key = ("Deployment", entry["name"])
        if key not in by_id:
            raise RenderError(f"{kfile}: replicas for {entry['name']}, which is no Deployment")
        by_id[key]["spec"]["replicas"] = entry["count"]
    for image in k.get("images", []):
        for doc in docs:
            for c in _containers(doc):
                name, _, tag = c["image"].partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag or 'latest')}"
    if "namespace" in k:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = k["namespace"]
    return docs


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: render.py <kustomization directory>", file=sys.stderr)
        return 2
    sys.stdout.write(yaml.safe_dump_all(build(argv[0]), sort_keys=False, width=120))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
