// The deployment files: the Jetson compose file is valid and runs the CUDA image on the NVIDIA
// runtime; the CUDA images build node-llama-cpp with deploy/build-cuda.sh and set the same
// CMake options in the stage that builds and the stage that runs (node-llama-cpp finds its
// build by them); every file the Dockerfiles copy exists. There is no Docker engine here, so
// the images themselves are not built.
//
// `docker-compose config` needs docker-compose (apt-get install -y docker-compose; CI installs
// it). Without it that test is pending with the hint; with CI=true it fails instead.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { projectRoot } from "../support/paths.js";

const INSTALL_HINT = "install it: apt-get install -y docker-compose";
const OPTION_PREFIX = "NODE_LLAMA_CPP_CMAKE_OPTION_";

interface RunResult {
  code: number | null;
  output: string;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: projectRoot, env, timeout: 60_000 }, (error, stdout, stderr) => {
      const failure = error as (NodeJS.ErrnoException & { code?: number | string }) | null;
      const code = failure === null ? 0 : typeof failure.code === "number" ? failure.code : null;
      resolve({ code, output: `${failure && typeof failure.code === "string" ? `${failure.code} ` : ""}${stdout}${stderr}` });
    });
  });
}

const read = (file: string) => readFileSync(path.join(projectRoot, file), "utf8");

/** The Dockerfile's stages: instructions (continuation lines joined) after each FROM. */
function stages(dockerfile: string): { from: string; instructions: string[] }[] {
  const instructions = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const result: { from: string; instructions: string[] }[] = [];
  for (const instruction of instructions) {
    if (/^FROM\s/i.test(instruction)) result.push({ from: instruction, instructions: [] });
    else result.at(-1)?.instructions.push(instruction);
  }
  return result;
}

/** NODE_LLAMA_CPP_CMAKE_OPTION_* settings of a stage's ENV instructions. */
function cmakeOptions(instructions: string[]): Record<string, string> {
  const options: Record<string, string> = {};
  for (const instruction of instructions.filter((line) => /^ENV\s/i.test(line))) {
    for (const match of instruction.matchAll(new RegExp(`${OPTION_PREFIX}(\\w+)=(\\S+)`, "g"))) options[match[1]!] = match[2]!;
  }
  return options;
}

describe("deployment files", () => {
  it("docker-compose accepts the Jetson compose file, and it with the x86-64 CUDA override", async function () {
    const installed = (process.env.PATH ?? "").split(path.delimiter).some((dir) => dir !== "" && existsSync(path.join(dir, "docker-compose")));
    if (!installed) {
      assert.notEqual(process.env.CI, "true", `docker-compose is missing in CI: ${INSTALL_HINT}`);
      console.log(`      (pending: docker-compose is not installed; ${INSTALL_HINT})`);
      this.skip();
    }
    const env = { ...process.env, MODELSWAP_MODELS_DIR: "/mnt/nvme/modelswap/models", CUDA_ARCH: "90" };
    for (const files of [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.cuda.yml"]]) {
      const result = await run("docker-compose", [...files.flatMap((file) => ["-f", file]), "config", "-q"], env);
      assert.equal(result.code, 0, `docker-compose ${files.join(" + ")}: ${result.output}`);
    }
  });

  it("runs the Jetson image on the NVIDIA runtime with models from the NVMe SSD", () => {
    const compose = parse(read("docker-compose.yml")) as {
      services: Record<string, { build?: { dockerfile: string; args?: Record<string, string> }; runtime?: string; volumes?: string[] }>;
      volumes: Record<string, { driver_opts?: { device?: string } }>;
    };
    const modelswap = compose.services.modelswap!;
    assert.equal(modelswap.build?.dockerfile, "deploy/Dockerfile.jetson");
    assert.equal(modelswap.build?.args?.CUDA_ARCH, "87", "Orin's compute capability");
    assert.equal(modelswap.runtime, "nvidia");
    assert.ok(modelswap.volumes?.includes("./deploy/jetson.yaml:/etc/modelswap/modelswap.yaml:ro"));
    assert.match(compose.volumes.models?.driver_opts?.device ?? "", /\/mnt\/nvme\//);
    const jetson = parse(read("deploy/jetson.yaml")) as { defaults: { gpu: string } };
    assert.equal(jetson.defaults.gpu, "cuda", "the Jetson config asks for the CUDA build instead of silently using the CPU");
  });

  for (const dockerfile of ["deploy/Dockerfile.jetson", "deploy/Dockerfile.cuda"]) {
    it(`${dockerfile} builds with deploy/build-cuda.sh and runs with the same CMake options`, () => {
      const [, build, runtime] = stages(read(dockerfile));
      assert.ok(build && runtime, "a node stage, a build stage and a runtime stage");
      assert.ok(build.instructions.includes("RUN deploy/build-cuda.sh --prune"), "the build stage runs deploy/build-cuda.sh");
      assert.ok(runtime.instructions.includes("RUN deploy/build-cuda.sh check"), "the runtime stage checks that node-llama-cpp finds the build");
      const built = cmakeOptions(build.instructions);
      assert.equal(built.CMAKE_CUDA_ARCHITECTURES, "${CUDA_ARCH}");
      assert.deepEqual(cmakeOptions(runtime.instructions), built, "the same NODE_LLAMA_CPP_CMAKE_OPTION_* in both stages");
      assert.match(runtime.instructions.join("\n"), /COPY --from=build \/app\/node_modules \.\/node_modules/);
    });
  }

  it("pins real CUDA base images: JetPack 6 / L4T r36.4 on the Jetson, CUDA 12.6 on x86-64", () => {
    assert.match(read("deploy/Dockerfile.jetson"), /^ARG BUILD_IMAGE=nvcr\.io\/nvidia\/l4t-jetpack:r36\.4\.0$/m);
    assert.match(read("deploy/Dockerfile.jetson"), /^ARG RUNTIME_IMAGE=nvcr\.io\/nvidia\/l4t-cuda:12\.6\.11-runtime$/m);
    assert.match(read("deploy/Dockerfile.cuda"), /^ARG BUILD_IMAGE=nvidia\/cuda:12\.6\.3-devel-ubuntu22\.04$/m);
    assert.match(read("deploy/Dockerfile.cuda"), /^ARG RUNTIME_IMAGE=nvidia\/cuda:12\.6\.3-runtime-ubuntu22\.04$/m);
  });

  it("copies only files that exist into the images (CPU, Jetson, CUDA)", () => {
    for (const dockerfile of ["deploy/Dockerfile", "deploy/Dockerfile.jetson", "deploy/Dockerfile.cuda"]) {
      for (const { instructions } of stages(read(dockerfile))) {
        for (const copy of instructions.filter((line) => /^COPY\s/i.test(line) && !/--from=/.test(line))) {
          const sources = copy.split(/\s+/).slice(1, -1);
          for (const source of sources) assert.ok(existsSync(path.join(projectRoot, source)), `${dockerfile}: ${copy}: ${source} is missing`);
        }
      }
    }
  });

  it("the build script parses (bash -n) and refuses a wrong GPU architecture before building", async () => {
    const syntax = await run("bash", ["-n", "deploy/build-cuda.sh"]);
    assert.equal(syntax.code, 0, syntax.output);
    const wrong = await run("deploy/build-cuda.sh", ["9x"]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.output, /"9x" is not a CUDA architecture: give the compute capability without the dot, like 87/);
  });

  it("finds a CUDA build only with the CMake options it was made with (what runners need in their environment)", async () => {
    // A project with a finished CUDA build in node-llama-cpp's layout, made with sm_87 and a portable CPU part.
    const project = await mkdtemp(path.join(tmpdir(), "modelswap-cuda-build-"));
    try {
      const release = path.join(project, "node_modules/node-llama-cpp/llama/localBuilds/linux-arm64-cuda-hash/Release");
      await mkdir(release, { recursive: true });
      await mkdir(path.join(project, "deploy"));
      await copyFile(path.join(projectRoot, "deploy/verify-cuda.mjs"), path.join(project, "deploy/verify-cuda.mjs"));
      await chmod(path.join(project, "deploy/verify-cuda.mjs"), 0o755);
      await writeFile(path.join(release, "llama-addon.node"), "");
      await writeFile(path.join(release, "..", "buildDone.status"), "");
      await writeFile(
        path.join(release, "_nlcBuildMetadata.json"),
        JSON.stringify({ buildOptions: { customCmakeOptions: { CMAKE_CUDA_ARCHITECTURES: "87", GGML_NATIVE: "OFF" }, gpu: "cuda" } }),
      );
      const withoutOptions = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith(OPTION_PREFIX)));
      const script = path.join(project, "deploy/verify-cuda.mjs");

      const same = await run("node", [script, "dir"], { ...withoutOptions, [`${OPTION_PREFIX}CMAKE_CUDA_ARCHITECTURES`]: "87", [`${OPTION_PREFIX}GGML_NATIVE`]: "OFF" });
      assert.equal(same.code, 0, same.output);
      assert.equal(same.output.trim(), release);

      const missing = await run("node", [script, "dir"], { ...withoutOptions, [`${OPTION_PREFIX}CMAKE_CUDA_ARCHITECTURES`]: "87" });
      assert.equal(missing.code, 1);
      assert.match(missing.output, /no CUDA build was made with this environment's CMake options \(CMAKE_CUDA_ARCHITECTURES=87\); builds here: linux-arm64-cuda-hash with CMAKE_CUDA_ARCHITECTURES=87 GGML_NATIVE=OFF/);
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });
});
