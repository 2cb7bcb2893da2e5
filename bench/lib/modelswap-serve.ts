import { credentials } from "@grpc/grpc-js";
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { AdminClient } from "../../gen/modelswap/v1/admin.js";
import { InferenceClient } from "../../gen/modelswap/v1/inference.js";
import { commandLine, isAlive, processTree, signalTree } from "./process-tree.js";

const CLI_MAIN = fileURLToPath(new URL("../../cli/main.js", import.meta.url));

/**
 * `modelswap serve -c FILE` as a user starts it (its own process group): the gateway in the
 * serve process, placement in a child it supervises, runners under placement. A bench that
 * measures what modelswap costs as deployed measures this tree.
 */
export interface ServeProcess {
  pid: number;
  address: string;
  inference: InferenceClient;
  admin: AdminClient;
  /** Every live process of the deployment, serve first. */
  pids(): number[];
  stop(): Promise<void>;
}

/** Every serve still running, so that a bench's time limit or an error can stop them all. */
export const runningServes = new Set<ServeProcess>();
export const stopAllServes = () => Promise.all([...runningServes].map((serve) => serve.stop()));

/** What a process of a modelswap deployment is, from its command line. */
export function modelswapRole(pid: number): string {
  const line = commandLine(pid);
  if (line.includes("runner/main.js")) return "runner";
  if (/\splacement(\s|$)/.test(line)) return "placement";
  if (/\sserve(\s|$)/.test(line)) return "serve (gateway)";
  return line.split(" ")[0] ?? "?";
}

/**
 * Writes `config` (a config document; JSON is YAML) to `configPath` and starts serve on it;
 * resolves once the gateway serves. Logs are silenced unless `verbose`.
 */
export async function startServe(config: Record<string, unknown>, configPath: string, options: { verbose?: boolean; startTimeoutMs?: number } = {}): Promise<ServeProcess> {
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const env = { ...process.env, ...(options.verbose ? {} : { MODELSWAP_LOG: "silent" }) };
  const child: ChildProcess = spawn(process.execPath, [CLI_MAIN, "serve", "-c", configPath, "--log-format", "json"], {
    detached: true,
    stdio: ["ignore", "pipe", options.verbose ? "inherit" : "ignore"],
    env,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not start modelswap serve");
  let exited = false;
  child.once("exit", () => (exited = true));
  const output: string[] = [];
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`modelswap serve did not start within ${options.startTimeoutMs ?? 60_000} ms:\n${output.join("\n")}`)), options.startTimeoutMs ?? 60_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      if (options.verbose) console.log(`    serve: ${line}`);
      const match = /^modelswap serving on (\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`modelswap serve exited with code ${code} before it served:\n${output.join("\n")}`));
    });
  });
  const inference = new InferenceClient(address, credentials.createInsecure());
  const admin = new AdminClient(address, credentials.createInsecure());
  const serve: ServeProcess = {
    pid,
    address,
    inference,
    admin,
    pids: () => processTree(pid),
    stop: async () => {
      runningServes.delete(serve);
      inference.close();
      admin.close();
      const tree = processTree(pid);
      try {
        process.kill(pid, "SIGTERM"); // serve stops placement, which stops its runners
      } catch {
        // gone
      }
      const until = Date.now() + 8000;
      while (Date.now() < until && (!exited || tree.some(isAlive))) await new Promise((resolve) => setTimeout(resolve, 50));
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // group gone
      }
      signalTree(tree.filter(isAlive), "SIGKILL");
    },
  };
  runningServes.add(serve);
  return serve;
}

