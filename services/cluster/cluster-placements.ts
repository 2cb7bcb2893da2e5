import type { ClientOptions } from "@grpc/grpc-js";
import type { Etcd3 } from "etcd3";
import type { ClusterConfig } from "../../common/config/config-types.js";
import type { Logger } from "../../common/logger.js";
import { recordBoxChoice } from "../../common/telemetry/request-tracing.js";
import { PlacementClient } from "../../gen/modelswap/v1/placement.js";
import type { PlacementTarget } from "../router/placement-target.js";
import { BoxDirectory } from "./box-directory.js";
import { claimLoad } from "./claim-load.js";
import { authenticatedPlacementClient } from "../../common/internal-auth/placement-client.js";
import type { InternalSecret } from "../../common/internal-auth/internal-secret.js";
import { connectEtcd } from "./connect-etcd.js";
import { filterBoxes, LOADING_REASONS, pickBox } from "./pick-box.js";

export interface ClusterPlacementsOptions {
  cluster: ClusterConfig;
  /** This process's own placement (`serve`): asked while no registered box has the model (etcd empty or unreachable). */
  local: PlacementTarget | undefined;
  logger: Logger;
  /** Options for the placement clients (telemetry: the trace-context interceptor). */
  clientOptions?: ClientOptions;
  /** The installation's internal secret: every box's placement proves it, and signs its leases with it. */
  internalSecret: InternalSecret;
}

/**
 * A gateway's routing across boxes: watches the registry, picks the box for each request
 * (pickBox), settles in etcd which box loads a cold model (claimLoad), and hands the
 * router that box's placement client. The choice and its reason go on the request's span.
 */
export class ClusterPlacements {
  readonly directory: BoxDirectory;
  private readonly clients = new Map<string, PlacementClient>();

  /** Connects to etcd and starts watching the registry (routing starts on whatever it has read so far). */
  static async start(options: ClusterPlacementsOptions): Promise<ClusterPlacements> {
    return new ClusterPlacements(options, await connectEtcd(options.cluster));
  }

  private constructor(
    private readonly options: ClusterPlacementsOptions,
    private readonly etcd: Etcd3,
  ) {
    this.directory = new BoxDirectory(etcd, options.cluster.prefix, options.logger);
  }

  /** The router's PlacementResolver. */
  readonly resolve = async (model: string, excludeBoxes: ReadonlySet<string>): Promise<PlacementTarget | undefined> => {
    const { cluster, local, logger } = this.options;
    const choice = pickBox(model, this.directory.boxes(), excludeBoxes);
    if (!choice) {
      if (!local || excludeBoxes.has(local.box)) return undefined;
      recordBoxChoice({ box: local.box, address: "local", reason: "local", detail: "no registered box has the model; this box's own placement", candidates: 0 });
      return local;
    }
    let box = choice.box;
    let reason: string = choice.reason;
    let detail = choice.detail;
    if (LOADING_REASONS.has(choice.reason)) {
      // One load for a cold model across gateways: the first claim in etcd names the box.
      const usable = (name: string) => {
        const record = this.directory.get(name);
        return record !== undefined && !excludeBoxes.has(name) && filterBoxes(model, [record], excludeBoxes).length > 0;
      };
      try {
        const claim = await claimLoad(this.etcd, cluster.prefix, choice.model, box.box, usable, Math.max(1, cluster.leaseTtlMs / 1000));
        const holder = this.directory.get(claim.box);
        if (!claim.won && holder && holder.box !== box.box) {
          box = holder;
          reason = "load_claimed";
          detail = `joins the load of ${choice.model} another request started on ${holder.box}`;
        }
      } catch (error) {
        logger.warn("cluster_claim_failed", { model: choice.model, box: box.box, error: (error as Error).message });
      }
    }
    recordBoxChoice({ box: box.box, address: box.address, reason, detail, candidates: choice.candidates });
    // This box's own placement is already dialled; other boxes get a client each, kept.
    return { box: box.box, placement: local && box.box === local.box ? local.placement : this.client(box.address) };
  };

  async stop(): Promise<void> {
    await this.directory.stop();
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    this.etcd.close();
  }

  private client(address: string): PlacementClient {
    let client = this.clients.get(address);
    if (!client) {
      client = authenticatedPlacementClient(address, this.options.internalSecret, this.options.clientOptions);
      this.clients.set(address, client);
    }
    return client;
  }
}
