/**
 * Builds llama.cpp's `llama-server` once, offline, from the llama.cpp source that node-llama-cpp
 * ships (`node_modules/node-llama-cpp/llama/gitRelease.bundle`), into a cache folder outside the
 * repository; later calls reuse the binary. About 12 minutes on 2 cores.
 *
 *   node dist/bench/lib/llama-server-build.js     # build (or find) it and print its path
 *
 * Folder: $MODELSWAP_LLAMA_SERVER_DIR, else ~/.cache/modelswap/llama-server-<release tag>.
 * Every process it starts runs in its own process group, which `stopLlamaServerBuild` ends.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const LLAMA_DIR = path.join(PROJECT_ROOT, "node_modules/node-llama-cpp/llama");

const CMAKE_FLAGS = [
  "-DCMAKE_BUILD_TYPE=Release",
  "-DBUILD_SHARED_LIBS=OFF", // one self-contained binary in the cache folder
  "-DLLAMA_USE_PREBUILT_UI=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
  "-DLLAMA_CURL=OFF",
  "-DGGML_NATIVE=ON",
];

/** The llama.cpp release tag node-llama-cpp ships (names the cache folder). */
export function llamaCppReleaseTag(): string {
  const info = JSON.parse(readFileSync(path.join(LLAMA_DIR, "llama.cpp.info.json"), "utf8")) as { tag?: unknown };
  if (typeof info.tag !== "string" || !/^[\w.-]+$/.test(info.tag)) throw new Error(`no usable "tag" in ${LLAMA_DIR}/llama.cpp.info.json`);
  return info.tag;
}

export function llamaServerCacheDir(): string {
  return process.env.MODELSWAP_LLAMA_SERVER_DIR ?? path.join(os.homedir(), ".cache/modelswap", `llama-server-${llamaCppReleaseTag()}`);
}

export function llamaServerBinary(dir = llamaServerCacheDir()): string {
  return path.join(dir, "build/bin/llama-server");
}

const buildProcesses = new Set<ChildProcess>();

/** Ends every process the build started (each runs in its own process group). */
export function stopLlamaServerBuild(): void {
  for (const child of buildProcesses) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

/** Runs one command to completion in its own process group; its output lines go to `onLine`. */
function runStep(command: string, args: string[], cwd: string, deadline: number, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    buildProcesses.add(child);
    let tail: string[] = [];
    let pending = "";
    const take = (chunk: Buffer) => {
      const lines = (pending + chunk.toString("utf8")).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        tail = [...tail.slice(-39), line];
        onLine(line);
      }
    };
    child.stdout!.on("data", take);
    child.stderr!.on("data", take);
    const timer = setTimeout(() => {
      stopLlamaServerBuild();
      reject(new Error(`${command} ${args.join(" ")} ran past the build's time limit`));
    }, Math.max(0, deadline - Date.now()));
    child.on("error", (error) => {
      clearTimeout(timer);
      buildProcesses.delete(child);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      buildProcesses.delete(child);
      if (code === 0) resolve();
      else reject(new Error(`${command} ${args.join(" ")} failed (${signal ?? `exit ${code}`}); last output:\n${tail.join("\n")}`));
    });
  });
}

/**
 * The path of a built `llama-server`, building it first when the cache folder has none.
 * `log` gets progress lines (cmake's percentages, not every compiler line).
 */
export async function ensureLlamaServer(options: { timeLimitS: number; jobs?: number; log?: (line: string) => void }): Promise<string> {
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = llamaServerCacheDir();
  const binary = llamaServerBinary(dir);
  if (existsSync(binary)) return binary;
  const deadline = Date.now() + options.timeLimitS * 1000;
  mkdirSync(dir, { recursive: true });
  // One build at a time per folder: another process's build in progress is waited for.
  const lock = path.join(dir, "build.pid");
  for (let waited = false; lockHolder(lock) !== undefined; waited = true) {
    if (!waited) log(`llama-server: process ${lockHolder(lock)} is building it in ${dir}; waiting`);
    if (Date.now() > deadline) throw new Error(`the llama-server build of process ${lockHolder(lock)} ran past the time limit`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  if (existsSync(binary)) return binary;
  writeFileSync(lock, String(process.pid));
  try {
    return await build(dir, binary, deadline, options.jobs ?? 2, log);
  } finally {
    rmSync(lock, { force: true });
  }
}

/** The pid in the lock file when that process is alive. */
function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(lock, "utf8"));
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function build(dir: string, binary: string, deadline: number, jobs: number, log: (line: string) => void): Promise<string> {
  const source = path.join(dir, "src");
  const build = path.join(dir, "build");
  if (!existsSync(path.join(source, "CMakeLists.txt"))) {
    rmSync(source, { recursive: true, force: true });
    log(`llama-server: cloning ${path.join(LLAMA_DIR, "gitRelease.bundle")} into ${source}`);
    await runStep("git", ["clone", "--quiet", path.join(LLAMA_DIR, "gitRelease.bundle"), source], dir, deadline, () => {});
  }
  log(`llama-server: configuring (cmake ${CMAKE_FLAGS.join(" ")})`);
  await runStep("cmake", ["-S", source, "-B", build, ...CMAKE_FLAGS], dir, deadline, () => {});
  log(`llama-server: building with -j${jobs} (about 12 minutes on 2 cores; reused after, in ${dir})`);
  let lastPercent = -1;
  let lastLogAt = 0;
  await runStep("cmake", ["--build", build, "--target", "llama-server", "--config", "Release", `-j${jobs}`], dir, deadline, (line) => {
    const match = /^\[\s*(\d+)%\]/.exec(line);
    if (!match) return;
    const percent = Number(match[1]);
    if (percent !== lastPercent && (Date.now() - lastLogAt > 15_000 || percent - lastPercent >= 10)) {
      lastPercent = percent;
      lastLogAt = Date.now();
      log(`llama-server: ${percent}% ${line.replace(/^\[\s*\d+%\]\s*/, "").slice(0, 100)}`);
    }
  });
  if (!existsSync(binary)) throw new Error(`the build finished without ${binary}`);
  log(`llama-server: built ${binary}`);
  return binary;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    process.once(signal, () => {
      stopLlamaServerBuild();
      process.exit(130);
    });
  ensureLlamaServer({ timeLimitS: 3600 }).then(
    (binary) => console.log(binary),
    (error: unknown) => {
      stopLlamaServerBuild();
      console.error(error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
