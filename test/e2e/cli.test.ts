import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { storiesModel } from "../support/paths.js";
import { CLI_MAIN, cli, freePortPair, startProcess, type WatchedProcess } from "../support/processes.js";

/** What a user types in a terminal: `modelswap serve`, then the client commands against it. */
describe("the modelswap CLI against a running server", function () {
  this.timeout(90_000);
  let directory: string;
  let server: WatchedProcess;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    directory = mkdtempSync(path.join(tmpdir(), "modelswap-cli-"));
    const port = await freePortPair();
    const config = path.join(directory, "config.yaml");
    writeFileSync(
      config,
      [
        `listen: 127.0.0.1:${port}`,
        "budget: 1GiB",
        "placement: {listen: 127.0.0.1:0}",
        "models:",
        `  - {name: stories, path: "${storiesModel}", context: 512, threads: 1, aliases: [tiny], tasks: [story], preload: true}`,
      ].join("\n"),
    );
    env = { ...process.env, MODELSWAP_LOG: "silent", MODELSWAP_ADDRESS: `127.0.0.1:${port}` };
    server = startProcess([CLI_MAIN, "serve", "-c", config], env);
    await server.waitForLine((line) => (line.startsWith("modelswap serving on") ? true : undefined));
  });
  after(async () => {
    await server?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  it("generate streams a story to stdout and its timings to stderr", async () => {
    const result = await cli(["generate", "-m", "tiny", "-n", "40", "--temperature", "0", "Once upon a time"], env);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\b(the|was|a|and)\b/);
    assert.match(result.stderr, /\[stories: (length|stop); 5 prompt( \(\d cached\))? \+ \d+ completion tokens; queue .*, load .*, TTFT .*, total .*, [\d.]+ tokens\/s\]/);
    // the same prompt again: the runner's prompt cache kept all but the last token, which is evaluated again
    const again = await cli(["generate", "-m", "tiny", "-n", "8", "--temperature", "0", "Once upon a time"], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /; 5 prompt \(4 cached\) \+ 8 completion tokens;/);
  });

  it("models and ps show the catalog, memory and runners", async () => {
    const models = await cli(["models"], env);
    assert.equal(models.code, 0, models.stderr);
    assert.match(models.stdout, /^NAME\s+ALIASES\s+TASKS\s+STATE/m);
    assert.match(models.stdout, /^stories\s+tiny\s+story\s+resident/m);
    const ps = await cli(["ps"], env);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /^stories\s+resident\s+[\d.]+ \w?i?B\s+[\d.]+ \w?i?B\s+1\s+0\s+0/m);
    assert.match(ps.stdout, /budget 1\.0 GiB, resident [\d.]+ \w+, policy cost/);
    assert.match(ps.stdout, /^RUNNER\s+PID\s+STATE\s+KIND\s+MODELS\s+RSS/m);
  });

  it("watch streams residency events as admin commands act", async () => {
    const watch = startProcess([CLI_MAIN, "watch"], env);
    await watch.waitForLine((line) => (line.startsWith("watching residency events") ? true : undefined));
    try {
      // act: unload, then load again, while watching
      const unload = await cli(["unload", "stories"], env);
      assert.equal(unload.code, 0, unload.stderr);
      await watch.waitForLine((line) => (/unloaded\s+stories\s+\(admin unload\)/.test(line) ? true : undefined), 20_000);
      const load = await cli(["load", "stories"], env);
      assert.equal(load.code, 0, load.stderr);
      assert.match(load.stdout, /stories is resident/);
      await watch.waitForLine((line) => (/loaded\s+stories/.test(line) ? true : undefined), 20_000);
    } finally {
      await watch.stop();
    }
  });

  it("says what is wrong and exits non-zero on mistakes", async () => {
    const unknown = await cli(["generate", "-m", "nope", "hello"], env);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /model "nope" is not in the catalog; known models: stories/);
    const usage = await cli(["generate", "hello"], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /needs -m MODEL or --task TASK/);
    const help = await cli(["--help"], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /serve -c FILE/);
  });

  it("forge writes a random-weight GGUF of the asked size", async () => {
    const out = path.join(directory, "forged.gguf");
    const result = await cli(["forge", "--size", "8MB", "--out", out], env);
    assert.equal(result.code, 0, result.stderr);
    const bytes = statSync(out).size;
    assert.ok(Math.abs(bytes - 8e6) / 8e6 < 0.05, `forged ${bytes} bytes`);
  });
});
