import { readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments, parse } from "yaml";

export interface KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Kinds that live outside namespaces (kustomize leaves their namespace unset). */
const CLUSTER_SCOPED = new Set(["Namespace", "RuntimeClass", "ClusterRole", "ClusterRoleBinding", "StorageClass", "PersistentVolume"]);
/** The kustomization fields this renderer applies; any other field fails the render instead of being ignored. */
const SUPPORTED_FIELDS = new Set(["apiVersion", "kind", "namespace", "labels", "resources"]);

/**
 * Renders a kustomization the way `kubectl kustomize` does for the fields it uses: the
 * listed resource files (every YAML document in each), the namespace set on namespaced
 * objects, and `labels` pairs added to every object's metadata (not to selectors, as
 * kustomize's `labels` without includeSelectors).
 */
export function renderKustomization(folder: string): KubernetesObject[] {
  const kustomization = parse(readFileSync(path.join(folder, "kustomization.yaml"), "utf8")) as Record<string, unknown>;
  for (const field of Object.keys(kustomization)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`kustomization.yaml: field "${field}" is not rendered by this test's renderer; extend it`);
  }
  if (kustomization.apiVersion !== "kustomize.config.k8s.io/v1beta1" || kustomization.kind !== "Kustomization") {
    throw new Error("kustomization.yaml must be apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization");
  }
  const namespace = kustomization.namespace as string | undefined;
  const labels = Object.assign({}, ...((kustomization.labels as { pairs: Record<string, string> }[] | undefined) ?? []).map((entry) => entry.pairs)) as Record<string, string>;
  const objects: KubernetesObject[] = [];
  for (const resource of kustomization.resources as string[]) {
    for (const document of parseAllDocuments(readFileSync(path.join(folder, resource), "utf8"))) {
      if (document.errors.length > 0) throw new Error(`${resource}: ${document.errors[0]!.message}`);
      const object = document.toJS() as KubernetesObject | null;
      if (object === null) continue;
      object.metadata = { ...object.metadata, labels: { ...object.metadata.labels, ...labels } };
      if (namespace && !CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = namespace;
      objects.push(object);
    }
  }
  return objects;
}
