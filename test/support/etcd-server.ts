import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePortPair, startProcess, type WatchedProcess } from "./processes.js";

/** Debian's etcd-server (installed by .ci/run). */
export const ETCD_BINARY = process.env.MODELSWAP_ETCD_BINARY ?? "/usr/bin/etcd";
export const ETCD_INSTALL_HINT = "install it: apt-get install -y etcd-server";

/** A single-member etcd on loopback for one test: its own data folder and free ports; ended by pid. */
export interface TestEtcd {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  /** Ends the process (SIGTERM, then SIGKILL) and keeps its data. */
  kill(): Promise<void>;
  /** Starts it again on the same ports; `wipe`: with an empty data folder (every key and lease gone). */
  restart(options?: { wipe?: boolean }): Promise<void>;
  /** Ends it and deletes its data. */
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<TestEtcd> {
  const clientPort = await freePortPair();
  const peerPort = clientPort + 1;
  const endpoint = `http://127.0.0.1:${clientPort}`;
  let dataDir = mkdtempSync(path.join(tmpdir(), "modelswap-etcd-"));
  const launch = async (): Promise<WatchedProcess> => {
    const args = [
      "--name", "test",
      "--data-dir", dataDir,
      "--listen-client-urls", endpoint,
      "--advertise-client-urls", endpoint,
      "--listen-peer-urls", `http://127.0.0.1:${peerPort}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peerPort}`,
      "--initial-cluster", `test=http://127.0.0.1:${peerPort}`,
    ];
    const etcd = startProcess(args, process.env, { command: ETCD_BINARY });
    await etcd.waitForLine((line) => (line.includes("ready to serve client requests") ? true : undefined), 20_000);
    return etcd;
  };
  let running = await launch();
  return {
    endpoint,
    kill: () => running.stop(3000),
    async restart(options = {}) {
      await running.stop(3000);
      if (options.wipe) {
        rmSync(dataDir, { recursive: true, force: true });
        dataDir = mkdtempSync(path.join(tmpdir(), "modelswap-etcd-"));
      }
      running = await launch();
    },
    async stop() {
      await running.stop(3000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
