import { fmt } from "../lib/report.js";
import type { Section } from "./questions.js";
import type { ReportData } from "./run-plan.js";

/** The report as one self-contained HTML page: the plots are inline SVG, nothing is fetched. */

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const GiB = 1024 ** 3;

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .tests, .notes { color: #555; font-size: 0.92em; }
.answer { font-size: 1.08em; background: #f3f7fc; border-left: 4px solid #3182bd; padding: 0.6em 0.9em; }
.not-answerable .answer { background: #fdf3e7; border-left-color: #e6550d; }
table { border-collapse: collapse; margin: 0.8em 0; width: 100%; font-size: 0.93em; }
th, td { text-align: left; vertical-align: top; padding: 0.3em 0.6em; border-bottom: 1px solid #eee; }
th { width: 34%; color: #444; font-weight: 600; }
.guess th { width: 50%; }
figure { margin: 1.2em 0; } figcaption { font-size: 0.92em; color: #444; margin-bottom: 0.4em; }
figure svg { max-width: 100%; height: auto; }
nav ol { columns: 2; font-size: 0.95em; }
code { background: #f4f4f4; padding: 0 0.25em; }
`;

export function renderHtml(data: ReportData, sections: readonly Section[], svgs: ReadonlyMap<string, string>): string {
  const box = data.box;
  const scenarios = data.scenarios
    .map(
      (scenario) =>
        `<tr><th>${escape(scenario.id)} (<code>${escape(scenario.file)}</code>)</th><td>budget ${fmt(scenario.budgetBytes / 1e6, 0)} MB (plan: ${fmt(scenario.planBudgetBytes / GiB, 1)} GiB); ` +
        scenario.models.map((model) => `${escape(model.name)} ${fmt(model.fileBytes / 1e6, 1)} MB${model.real ? " (real file)" : ""}`).join(", ") +
        `</td></tr>`,
    )
    .join("\n");
  const body = sections.map((section) => renderSection(section, svgs)).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>modelswap: the research plan's answers${data.quick ? " (quick run)" : ""}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>modelswap: the research plan's ten questions${data.quick ? " (quick run)" : ""}</h1>
<p class="meta">Measured ${escape(data.generatedAt)} on <strong>${escape(box.hostname)}</strong>: ${escape(box.cpuModel)}, ${box.cores} cores, ${fmt(box.physicalBytes / GiB, 1)} GiB memory,
GPU: ${escape(box.gpu ?? "none")}; Node ${escape(box.node)}, Linux ${escape(box.kernel)}; load average at start ${escape(box.loadAverageAtStart)}.
Models on <code>${escape(data.gpu)}</code>, one thread per runner.</p>
<p class="meta"><strong>Scale factor ${data.scale.factor}</strong> (${escape(data.scale.why)}): every model size from the plan, every budget and context is multiplied by it;
the budget also keeps room for the runner processes (${fmt(data.runnerAllowanceBytes / 2 ** 20, 0)} MiB each x (1 - factor)), whose own memory does not shrink with the models.
Models are random-weight stand-ins of the plan's sizes (forge) unless marked real. Wall-clock figures move with other load on the machine.</p>
<table>${scenarios}</table>
<nav><ol>${sections.map((section) => `<li><a href="#q${section.number}">${escape(section.question)}</a>${section.answerable ? "" : " (not answerable here)"}</li>`).join("")}</ol></nav>
${body}
<h2>Raw figures</h2>
<p class="notes"><a href="report.json">report.json</a> holds every measurement behind this page (per request, per load, per sample). Phases: ${data.phases.map((phase) => `${escape(phase.name)} ${fmt(phase.ms / 1000, 0)} s`).join(", ")}.</p>
</body>
</html>
`;
}

function renderSection(section: Section, svgs: ReadonlyMap<string, string>): string {
  const figures = section.figures.map((figure) => `<tr><th>${escape(figure.label)}</th><td>${escape(figure.value)}</td></tr>`).join("");
  const charts = section.charts
    .map((chart, index) => `<figure><figcaption>${escape(chart.title)}</figcaption>${svgs.get(`${section.number}:${index}`) ?? ""}</figure>`)
    .join("\n");
  return `<section id="q${section.number}" class="${section.answerable ? "answered" : "not-answerable"}">
<h2>${section.number}. ${escape(section.question)}</h2>
<p class="tests">${escape(section.tests)}</p>
<p class="answer">${escape(section.answer)}</p>
<table class="guess"><tr><th>The plan's guess</th><th>Measured here</th></tr><tr><td>${escape(section.guess.plan)}</td><td>${escape(section.guess.measured)}</td></tr></table>
${figures ? `<table>${figures}</table>` : ""}
${charts}
${section.notes.length ? `<ul class="notes">${section.notes.map((note) => `<li>${escape(note)}</li>`).join("")}</ul>` : ""}
</section>`;
}
