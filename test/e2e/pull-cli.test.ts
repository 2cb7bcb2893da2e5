import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { forgeModel } from "../../forge/forge-model.js";
import { startModelServer, type ModelServer } from "../support/model-server.js";
import { projectRoot, storiesModel } from "../support/paths.js";
import { startProcess } from "../support/processes.js";

const BIN = path.join(projectRoot, "bin", "modelswap.js");
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const stories = readFileSync(storiesModel);

function modelswap(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A user pulls models with the CLI (`node bin/modelswap.js pull …`) from a model host on loopback. */
describe("modelswap pull", function () {
  this.timeout(120_000);
  let server: ModelServer;
  let directory: string;

  beforeEach(async () => {
    server = await startModelServer();
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-pull-cli-"));
  });
  afterEach(async () => {
    await server.close();
    rmSync(directory, { recursive: true, force: true });
  });

  it("downloads a URL into --dir and verifies --sha256", async () => {
    server.serve("/stories260K.gguf", { bytes: stories });
    const result = await modelswap(["pull", `${server.url}/stories260K.gguf`, "--dir", directory, "--sha256", sha256(stories)]);
    assert.equal(result.code, 0, result.stderr);
    const file = path.join(directory, "stories260K.gguf");
    assert.match(result.stdout, new RegExp(`^pulled ${server.url}/stories260K\\.gguf -> ${file} \\(1\\.1 MiB in [\\d.]+ s, SHA-256 ${sha256(stories)} verified\\)\\n$`));
    assert.equal(sha256(readFileSync(file)), sha256(stories));
  });

  it("pulls the catalog's hf: models into the config's models_dir (HF_ENDPOINT on loopback)", async () => {
    server.manifest("ggml-org", "stories-GGUF", "Q8_0", "stories260K-Q8_0.gguf");
    server.serve("/ggml-org/stories-GGUF/resolve/main/stories260K-Q8_0.gguf", { bytes: stories });
    const config = path.join(directory, "config.yaml");
    writeFileSync(config, ["models_dir: ./store", "models:", "  - {name: stories, path: 'hf:ggml-org/stories-GGUF:Q8_0'}"].join("\n"));
    const result = await modelswap(["pull", "-c", config], { ...process.env, HF_ENDPOINT: `${server.url}/` });
    assert.equal(result.code, 0, result.stderr);
    const file = path.join(directory, "store", "hf_ggml-org_stories.Q8_0.gguf");
    assert.match(result.stdout, new RegExp(`^pulled hf:ggml-org/stories-GGUF:Q8_0 -> ${file} `));
    assert.equal(sha256(readFileSync(file)), sha256(stories));
  });

  it("says what went wrong: 404, a checksum mismatch, no quantisation", async () => {
    const missing = await modelswap(["pull", `${server.url}/missing.gguf`, "--dir", directory]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, `error: ${server.url}/missing.gguf answered 404 Not Found: check the address\n`);

    server.serve("/stories260K.gguf", { bytes: stories });
    const mismatch = await modelswap(["pull", `${server.url}/stories260K.gguf`, "--dir", directory, "--sha256", "f".repeat(64)]);
    assert.equal(mismatch.code, 1);
    assert.match(mismatch.stderr, /SHA-256 of the download is 270cba1b[0-9a-f]+, expected f{64}; the file was deleted/);
    assert.ok(!existsSync(path.join(directory, "stories260K.gguf")));

    const vague = await modelswap(["pull", "hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF", "--dir", directory]);
    assert.equal(vague.code, 1);
    assert.match(vague.stderr, /must say which quantisation to pull, e\.g\. hf:Qwen\/Qwen2\.5-0\.5B-Instruct-GGUF:Q4_K_M/);
  });

  it("stops on Ctrl-C keeping what arrived, and the same command finishes the download", async () => {
    const forged = await forgeModel({ sizeBytes: 12_000_000, outPath: path.join(directory, "source.gguf"), weightType: "q8_0" });
    const big = readFileSync(forged.path);
    const target = path.join(directory, "pulled");
    server.serve("/big.gguf", { bytes: big, stallRangesFrom: Math.floor(big.length / 2) });
    const pull = startProcess([BIN, "pull", `${server.url}/big.gguf`, "--dir", target], process.env);
    const exited = new Promise<number | null>((resolve) => pull.child.once("exit", resolve));
    // the download hangs on the second half: the user presses Ctrl-C
    await server.waitForRequest((request) => request.stalled);
    pull.child.kill("SIGINT");
    assert.equal(await exited, 130, pull.stderr.join("\n"));
    assert.match(pull.stderr.join("\n"), new RegExp(`interrupted at \\d+ of ${big.length} bytes; the same command resumes it`));
    assert.ok(!existsSync(path.join(target, "big.gguf")), "no file that looks complete");

    server.serve("/big.gguf", { bytes: big });
    const again = await modelswap(["pull", `${server.url}/big.gguf`, "--dir", target, "--sha256", sha256(big)]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(sha256(readFileSync(path.join(target, "big.gguf"))), sha256(big));
  });
});
