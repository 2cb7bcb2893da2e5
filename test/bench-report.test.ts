import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { projectRoot } from "./support/paths.js";

/**
 * `npm run bench:report -- --quick` end to end, once: real stacks and runner processes on tiny
 * forged models. It asserts that the report answers every question of the research plan (or
 * says why it cannot here), backs each answer with figures and plots from the run, and renders
 * its plots; not what the figures are.
 */

interface ReportSection {
  number: number;
  question: string;
  answerable: boolean;
  answer: string;
  figures: { label: string; value: string }[];
  guess: { plan: string; measured: string };
  charts: { title: string }[];
}

describe("bench:report --quick", function () {
  this.timeout(300_000);
  const out = mkdtempSync(path.join(tmpdir(), "modelswap-report-"));
  const forgeDir = mkdtempSync(path.join(tmpdir(), "modelswap-report-models-"));
  let output = "";
  let exitCode: number | null = null;

  before(async () => {
    const child = spawn(process.execPath, [path.join(projectRoot, "dist/bench/report/main.js"), "--quick", "--out", out, "--forge-dir", forgeDir], {
      cwd: projectRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    exitCode = await new Promise<number | null>((resolve) => child.on("close", resolve));
  });

  after(() => {
    rmSync(out, { recursive: true, force: true });
    rmSync(forgeDir, { recursive: true, force: true });
  });

  it("runs to the end and prints the scale factor and every answer", () => {
    assert.equal(exitCode, 0, output.slice(-4000));
    assert.match(output, /scale factor 0\.01 \(--quick\)/);
    for (let question = 1; question <= 10; question++) assert.match(output, new RegExp(`^Q${question}\\. \\S`, "m"));
  });

  it("answers each of the ten questions with figures from the run, or says why it cannot here", () => {
    const report = JSON.parse(readFileSync(path.join(out, "report.json"), "utf8")) as { sections: ReportSection[]; scale: { factor: number } };
    assert.deepEqual(report.sections.map((section) => section.number), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const section of report.sections) {
      const at = `question ${section.number} (${section.question})`;
      assert.ok(section.answer.length > 20, `${at} has an answer`);
      assert.ok(section.guess.plan && section.guess.measured, `${at} sets the plan's guess beside the measurement`);
      if (section.answerable) {
        assert.ok(section.figures.length > 0, `${at} has figures`);
        assert.ok(section.charts.length > 0, `${at} has a plot`);
        assert.doesNotMatch(section.answer, /\bNaN\b|undefined|Infinity/, `${at}: the answer's figures were measured`);
      } else {
        assert.match(section.answer, /^Not answerable on this machine: \S/, `${at} says why it is not answerable`);
      }
    }
  });

  it("writes an HTML page with one section per question and the plots as SVG", () => {
    const html = readFileSync(path.join(out, "index.html"), "utf8");
    const report = JSON.parse(readFileSync(path.join(out, "report.json"), "utf8")) as { sections: ReportSection[] };
    for (const section of report.sections) {
      const start = html.indexOf(`<section id="q${section.number}"`);
      assert.ok(start >= 0, `section ${section.number} is in the page`);
      const end = html.indexOf("</section>", start);
      const svgs = html.slice(start, end).match(/<svg[\s\S]*?<\/svg>/g) ?? [];
      assert.equal(svgs.length, section.charts.length, `section ${section.number} renders each of its plots`);
      for (const svg of svgs) assert.match(svg, /<path|<rect|<line/, `a plot of section ${section.number} draws marks`);
    }
  });
});
