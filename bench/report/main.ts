/**
 * The research plan's answers: runs its nine tests on this machine against real stacks (the
 * three scenario configs in deploy/, scaled by one factor to this box) and writes
 * report/index.html (one section per question, with plots) and report/report.json (raw figures).
 *
 *   npm run bench:report -- [--quick] [--scale F] [--gpu cpu|auto|cuda] [--out report] [--forge-dir DIR]
 *       [--models-dir models] [--seed 1] [--time-limit S] [--render JSON] [--verbose] [--events]
 *
 * --quick: tiny models (scale 0.01), few requests: about a minute; the test suite runs it once.
 * --render JSON: only renders the HTML again from a report.json. --events: prints every residency event.
 * Every process it starts ends with it (time limit, error, SIGINT included).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { stopAllStacks } from "../lib/local-stack.js";
import { fmt, positiveInt } from "../lib/report.js";
import { runBounded } from "../lib/run-bounded.js";
import { chooseScale, describeBox } from "./box.js";
import { renderCharts } from "./charts.js";
import { renderHtml } from "./html.js";
import { buildSections } from "./questions.js";
import { plannedSteps, runPlan, type ReportData } from "./run-plan.js";
import type { RunContext } from "./run-context.js";

const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const HELP =
  "npm run bench:report -- [--quick] [--scale F] [--gpu cpu|auto|cuda] [--out report] [--forge-dir DIR] [--models-dir models]\n" +
  "  [--seed 1] [--time-limit SECONDS] [--render report/report.json] [--verbose] [--events]\n";

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    scale: { type: "string" },
    gpu: { type: "string" },
    out: { type: "string", default: path.join(PROJECT_ROOT, "report") },
    "forge-dir": { type: "string", default: process.env.MODELSWAP_REPORT_DIR ?? path.join(os.homedir(), ".cache/modelswap/report") },
    "models-dir": { type: "string", default: path.join(PROJECT_ROOT, "models") },
    seed: { type: "string", default: "1" },
    "time-limit": { type: "string" },
    render: { type: "string" },
    verbose: { type: "boolean", default: false },
    events: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
  strict: true,
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const quick = flags.quick!;
const outDir = path.resolve(flags.out!);
const scaleOverride = flags.scale === undefined ? undefined : Number(flags.scale);
if (scaleOverride !== undefined && !(scaleOverride > 0 && scaleOverride <= 1)) throw new Error(`--scale must be a number in (0, 1] (got "${flags.scale}")`);
const timeLimitS = flags["time-limit"] === undefined ? (quick ? 300 : 3600) : positiveInt(flags["time-limit"], "--time-limit");

async function writeReport(data: ReportData): Promise<void> {
  const sections = buildSections(data);
  const charts = await renderCharts(sections);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, "report.json"), JSON.stringify({ ...data, sections }, null, 1));
  writeFileSync(path.join(outDir, "index.html"), renderHtml(data, sections, charts));
  process.stdout.write(`\nreport: ${path.join(outDir, "index.html")} (raw figures: ${path.join(outDir, "report.json")})\n`);
  for (const section of sections) process.stdout.write(`Q${section.number}. ${section.answer}\n`);
}

async function main(): Promise<void> {
  if (flags.render) {
    await writeReport(JSON.parse(readFileSync(path.resolve(flags.render), "utf8")) as ReportData);
    return;
  }
  const box = describeBox();
  const scale = chooseScale(box, { quick, override: scaleOverride });
  const gpu = flags.gpu ?? (box.gpu ? "auto" : "cpu");
  const started = performance.now();
  process.stdout.write(
    `bench:report on ${box.hostname}: ${box.cpuModel}, ${box.cores} cores, ${fmt(box.physicalBytes / 1024 ** 3)} GiB, GPU ${box.gpu ?? "none"}; load average ${box.loadAverageAtStart}\n` +
      `scale factor ${scale.factor} (${scale.why}): the plan's model sizes, budgets and contexts x ${scale.factor}; gpu: ${gpu}\n`,
  );

  const tty = process.stderr.isTTY === true;
  const bar = new cliProgress.SingleBar(
    { format: "{bar} {value}/{total} | {duration_formatted} | {step}", stream: process.stderr, hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  );
  const total = plannedSteps(quick);
  let done = 0;
  if (tty) bar.start(total, 0, { step: "starting" });
  const context: RunContext = {
    quick,
    factor: scale.factor,
    seed: positiveInt(flags.seed!, "--seed"),
    step: (name) => {
      done++;
      if (tty) bar.update(Math.min(done, total), { step: name });
      else process.stderr.write(`[${done}/${total} ${fmt((performance.now() - started) / 1000, 0)} s] ${name}\n`);
    },
    note: (line) => {
      process.stderr.write(tty ? `\r\x1b[K${line}\n` : `${line}\n`);
      if (tty) bar.update(Math.min(done, total));
    },
  };
  let data: ReportData;
  try {
    data = await runPlan(
      box,
      scale,
      { projectRoot: PROJECT_ROOT, forgeDir: path.resolve(flags["forge-dir"]!), modelsDir: path.resolve(flags["models-dir"]!), gpu, onForge: (file) => context.note(`forging ${file}`) },
      context,
      { verbose: flags.verbose!, logEvents: flags.events! },
    );
    context.step("rendering the report");
  } finally {
    if (tty) bar.stop();
  }
  await writeReport(data);
  process.stdout.write(`done in ${fmt((performance.now() - started) / 1000, 0)} s\n`);
}

runBounded(main, { timeLimitS, cleanup: stopAllStacks });
