// The Kubernetes manifests (deploy/k8s, kustomize) for k3s on Jetsons: every object the
// kustomization renders is valid against the Kubernetes schemas (kubernetes-models'
// validators), and the pieces fit together as a user applying them needs.
import assert from "node:assert/strict";
import path from "node:path";
import { ConfigMap, Namespace, Service } from "kubernetes-models/v1";
import { DaemonSet, Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { RuntimeClass } from "kubernetes-models/node.k8s.io/v1";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { parse } from "yaml";
import { parseConfig } from "../../common/config/parse-config.js";
import { projectRoot } from "../support/paths.js";
import { renderKustomization, type KubernetesObject } from "../support/render-kustomization.js";

/** The schema validator for each kind the manifests may use. */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/Namespace": Namespace,
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/DaemonSet": DaemonSet,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "node.k8s.io/v1/RuntimeClass": RuntimeClass,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
};

// Loose views of the rendered objects, for the cross-checks.
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  runtimeClassName?: string;
  nodeSelector?: Record<string, string>;
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string; type?: string }; configMap?: { name: string } }[];
}
interface Workload {
  spec: { selector: { matchLabels: Record<string, string> }; serviceName?: string; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

describe("Kubernetes manifests (deploy/k8s, kustomize, k3s on Jetsons)", () => {
  const objects = renderKustomization(path.join(projectRoot, "deploy", "k8s"));
  const find = <T>(kind: string, name: string) => {
    const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
    assert.ok(found, `the kustomization renders ${kind}/${name}`);
    return found as unknown as KubernetesObject & T;
  };
  const modelswap = () => find<Workload>("DaemonSet", "modelswap");
  const container = () => modelswap().spec.template.spec.containers[0]!;

  it("renders only objects that are valid against the Kubernetes schemas", () => {
    assert.ok(objects.length >= 10, `${objects.length} objects`);
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      assert.ok(Model, `no schema validator listed for ${object.apiVersion} ${object.kind}`);
      assert.doesNotThrow(() => new Model(object as never).validate(), `${object.kind}/${object.metadata.name}`);
    }
    const namespaced = objects.filter((object) => object.kind !== "Namespace" && object.kind !== "RuntimeClass");
    assert.ok(namespaced.every((object) => object.metadata.namespace === "modelswap"));
  });

  it("the schema validation does catch a broken manifest", () => {
    const broken = structuredClone(modelswap()) as unknown as { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
    broken.spec.template.spec.containers[0]!.ports[0]!.containerPort = "fifty thousand";
    assert.throws(() => new DaemonSet(broken as never).validate(), /containerPort must be integer/);
  });

  it("runs one modelswap per GPU node on the NVIDIA runtime, with models from the node's NVMe", () => {
    const pod = modelswap().spec.template.spec;
    assert.equal(pod.runtimeClassName, "nvidia");
    assert.equal(find<{ handler: string }>("RuntimeClass", "nvidia").handler, "nvidia");
    assert.deepEqual(pod.nodeSelector, { "modelswap.dev/box": "true" });
    assert.deepEqual(modelswap().spec.selector.matchLabels, modelswap().spec.template.metadata.labels);
    const models = pod.volumes!.find((volume) => volume.name === "models")!;
    assert.equal(models.hostPath?.path, "/mnt/nvme/modelswap/models");
    assert.deepEqual(container().volumeMounts!.find((mount) => mount.name === "models"), { name: "models", mountPath: "/models", readOnly: true });
    assert.deepEqual(container().args, ["serve", "-c", "/etc/modelswap/modelswap.yaml"]);
    const env = new Map(container().env!.map((entry) => [entry.name, entry]));
    assert.equal(env.get("NODE_NAME")?.valueFrom?.fieldRef?.fieldPath, "spec.nodeName");
    assert.equal(env.get("POD_IP")?.valueFrom?.fieldRef?.fieldPath, "status.podIP");
    assert.equal(env.get("NVIDIA_VISIBLE_DEVICES")?.value, "all");
  });

  it("serves a config that registers each box (named after its node, at its pod IP) in the etcd it deploys", () => {
    const config = find<{ data: Record<string, string> }>("ConfigMap", "modelswap-config");
    const mount = container().volumeMounts!.find((entry) => entry.mountPath === "/etc/modelswap")!;
    assert.equal(modelswap().spec.template.spec.volumes!.find((volume) => volume.name === mount.name)?.configMap?.name, "modelswap-config");
    const parsed = parseConfig(parse(config.data["modelswap.yaml"]!), "/etc/modelswap", {
      NODE_NAME: "orin-1",
      POD_IP: "10.42.0.17",
      MODELSWAP_ADMIN_KEY: "a".repeat(32),
      MODELSWAP_INFER_KEY: "i".repeat(32),
    });
    assert.deepEqual(parsed.cluster, { etcd: ["http://etcd-0.etcd:2379"], box: "orin-1", advertise: "10.42.0.17:50052", leaseTtlMs: 5000, prefix: "modelswap/" });
    // The etcd endpoint is the StatefulSet's first pod behind its headless Service.
    const etcd = find<Workload>("StatefulSet", "etcd");
    const etcdService = find<{ spec: { clusterIP: string; selector: Record<string, string>; ports: { port: number }[] } }>("Service", "etcd");
    assert.equal(etcd.spec.serviceName, "etcd");
    assert.equal(etcdService.spec.clusterIP, "None");
    assert.deepEqual(etcdService.spec.selector, etcd.spec.template.metadata.labels);
    assert.ok(etcdService.spec.ports.some((port) => port.port === 2379));
    // Ports the config listens on are the ports the pod declares.
    const declared = new Set(container().ports!.map((port) => port.containerPort));
    for (const listen of [parsed.listen, parsed.http!.listen, parsed.placement.listen]) assert.ok(declared.has(Number(listen.split(":").at(-1))), listen);
  });

  it("puts a gateway Service in front of every box and sends traces to Jaeger", () => {
    const gateway = find<{ spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] } }>("Service", "modelswap");
    assert.deepEqual(gateway.spec.selector, modelswap().spec.template.metadata.labels);
    const named = new Set(container().ports!.map((port) => port.name));
    for (const port of gateway.spec.ports) assert.ok(named.has(port.targetPort), `targetPort ${port.targetPort}`);
    const jaeger = find<Workload>("Deployment", "jaeger");
    const jaegerService = find<{ spec: { selector: Record<string, string>; ports: { port: number }[] } }>("Service", "jaeger");
    assert.deepEqual(jaegerService.spec.selector, jaeger.spec.template.metadata.labels);
    assert.ok(jaegerService.spec.ports.some((port) => port.port === 4317));
    const endpoint = container().env!.find((entry) => entry.name === "OTEL_EXPORTER_OTLP_ENDPOINT")?.value;
    assert.equal(endpoint, "http://jaeger:4317");
  });

  it("opens placement and the runners only to modelswap pods (NetworkPolicy)", () => {
    const policy = find<{ spec: { podSelector: { matchLabels: Record<string, string> }; ingress: { from?: unknown[]; ports?: { port: number }[] }[] } }>("NetworkPolicy", "modelswap");
    assert.deepEqual(policy.spec.podSelector.matchLabels, modelswap().spec.template.metadata.labels);
    const open = policy.spec.ingress.filter((rule) => rule.from === undefined).flatMap((rule) => rule.ports!.map((port) => port.port));
    assert.ok(!open.includes(50052), "placement is not open to everyone");
    assert.deepEqual(open.sort(), [50051, 8080, 9464, 9465].sort());
  });
});
