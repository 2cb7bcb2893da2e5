import { parse, View } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Section } from "./questions.js";

/**
 * Vega-Lite specs rendered to SVG in this process: vega-lite compiles each to a Vega spec, a
 * headless vega View (renderer "none") writes the SVG. No browser or canvas is involved.
 */

export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const { spec: vegaSpec } = compile({ config: { font: "sans-serif", view: { stroke: "#ddd" }, legend: { labelLimit: 360 } }, ...spec } as unknown as TopLevelSpec);
  const view = new View(parse(vegaSpec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** SVGs of every section's charts, in order: key `${section.number}:${index}`. */
export async function renderCharts(sections: readonly Section[]): Promise<Map<string, string>> {
  const svgs = new Map<string, string>();
  for (const section of sections) {
    for (const [index, chart] of section.charts.entries()) svgs.set(`${section.number}:${index}`, await renderSvg(chart.spec));
  }
  return svgs;
}
