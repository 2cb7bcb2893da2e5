
/**
 * The report's plots as Vega-Lite specs over plain rows (the data is embedded, so each spec
 * renders alone). Sizes in MB (10^6 bytes) and milliseconds unless a title says otherwise.
 */

/** A Vega-Lite spec as plain JSON (charts.ts compiles it; the types of vega-lite are too strict for specs built from rows). */
export type ChartSpec = Record<string, unknown>;

const WIDTH = 560;
const HEIGHT = 260;
type Row = Record<string, string | number | boolean | null>;
const values = (rows: readonly Row[]) => ({ values: rows.map((row) => ({ ...row })) });

/** Lines of y over x per series, with an optional horizontal rule (a budget). */
export function lines(
  rows: readonly Row[],
  options: { x: string; xTitle: string | null; y: string; yTitle: string; series: string; rule?: { y: number; label: string }; xType?: "quantitative" | "ordinal"; xSort?: string[]; xDomain?: [number, number] },
): ChartSpec {
  const layers: Record<string, unknown>[] = [
    {
      mark: { type: "line", point: true },
      encoding: {
        x: {
          field: options.x,
          type: options.xType ?? "quantitative",
          title: options.xTitle,
          ...(options.xSort ? { sort: options.xSort } : {}),
          ...(options.xDomain ? { scale: { domain: options.xDomain } } : {}),
        },
        y: { field: options.y, type: "quantitative", title: options.yTitle },
        color: { field: options.series, type: "nominal", title: null },
      },
    },
  ];
  if (options.rule) {
    layers.push(
      { data: values([{ y: options.rule.y }]), mark: { type: "rule", strokeDash: [6, 4], color: "#b00" }, encoding: { y: { field: "y", type: "quantitative" } } },
      {
        data: values([{ y: options.rule.y, label: options.rule.label }]),
        mark: { type: "text", align: "left", dx: 4, dy: -6, color: "#b00", x: 0 },
        encoding: { y: { field: "y", type: "quantitative" }, text: { field: "label" } },
      },
    );
  }
  return { $schema: "https://vega.github.io/schema/vega-lite/v6.json", width: WIDTH, height: HEIGHT, data: values(rows), layer: layers };
}

/** Bars of `y` per `x`, side by side per `group`. */
export function groupedBars(rows: readonly Row[], options: { x: string; xTitle: string | null; y: string; yTitle: string; group: string; width?: number }): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: options.width ?? 240,
    height: HEIGHT,
    data: values(rows),
    mark: "bar",
    encoding: {
      x: { field: options.x, type: "nominal", title: options.xTitle, axis: { labelAngle: 0 } },
      xOffset: { field: options.group },
      y: { field: options.y, type: "quantitative", title: options.yTitle },
      color: { field: options.group, type: "nominal", title: null },
    },
  };
}

/** Stacked bars of `y` per `x`, stacked by `part`. */
export function stackedBars(rows: readonly Row[], options: { x: string; xTitle: string | null; y: string; yTitle: string; part: string }): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 320,
    height: HEIGHT,
    data: values(rows),
    mark: "bar",
    encoding: {
      x: { field: options.x, type: "nominal", title: options.xTitle, axis: { labelAngle: 0 } },
      y: { field: options.y, type: "quantitative", title: options.yTitle, stack: "zero" },
      color: { field: options.part, type: "nominal", title: null },
    },
  };
}

/** Points of y over x per series, with reference lines (y = x / rate) drawn over the x range. */
export function scatterWithRates(
  rows: readonly Row[],
  options: { x: string; xTitle: string | null; y: string; yTitle: string; series: string; rates: { label: string; perMs: number }[]; xMax: number },
): ChartSpec {
  const reference: Row[] = options.rates.flatMap((rate) => [
    { x: 0, y: 0, line: rate.label },
    { x: options.xMax, y: options.xMax / rate.perMs, line: rate.label },
  ]);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: WIDTH,
    height: HEIGHT + 40,
    layer: [
      {
        data: values(reference),
        mark: { type: "line", strokeDash: [6, 4] },
        encoding: {
          x: { field: "x", type: "quantitative", title: options.xTitle },
          y: { field: "y", type: "quantitative", title: options.yTitle },
          strokeDash: { field: "line", type: "nominal", title: "plain reads (reference)" },
          color: { value: "#777" },
        },
      },
      {
        data: values(rows),
        mark: { type: "point", filled: true, size: 70 },
        encoding: {
          x: { field: options.x, type: "quantitative" },
          y: { field: options.y, type: "quantitative" },
          color: { field: options.series, type: "nominal", title: null },
          shape: { field: options.series, type: "nominal", title: null },
        },
      },
    ],
  };
}

/** A heatmap of `value` over two nominal axes, the value printed in each cell. */
export function heatmap(rows: readonly Row[], options: { x: string; y: string; value: string; valueTitle: string; text: string }): ChartSpec {
  const axis = { type: "nominal", title: null, axis: { labelAngle: -30 } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: 360,
    height: 300,
    data: values(rows),
    encoding: { x: { field: options.x, ...axis }, y: { field: options.y, type: "nominal", title: null } },
    layer: [
      { mark: "rect", encoding: { color: { field: options.value, type: "quantitative", title: options.valueTitle, scale: { scheme: "redyellowgreen", domainMid: 0 } } } },
      { mark: { type: "text", fontSize: 10 }, encoding: { text: { field: options.text } } },
    ],
  };
}

/** Cumulative count over time, with a shaded interval (a load). */
export function timelineWithInterval(rows: readonly Row[], options: { x: string; y: string; xTitle: string | null; yTitle: string; start: number; end: number; label: string }): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: WIDTH,
    height: HEIGHT,
    layer: [
      {
        data: values([{ start: options.start, end: options.end, label: options.label }]),
        mark: { type: "rect", color: "#fdd49e", opacity: 0.7 },
        encoding: { x: { field: "start", type: "quantitative", scale: { zero: false } }, x2: { field: "end" } },
      },
      {
        data: values([{ start: options.start, label: options.label }]),
        mark: { type: "text", align: "left", baseline: "top", dx: 4, dy: 4, y: 0, color: "#a63603" },
        encoding: { x: { field: "start", type: "quantitative" }, text: { field: "label" } },
      },
      {
        data: values(rows),
        mark: { type: "line", interpolate: "step-after" },
        encoding: {
          x: { field: options.x, type: "quantitative", title: options.xTitle, scale: { zero: false } },
          y: { field: options.y, type: "quantitative", title: options.yTitle },
        },
      },
    ],
  };
}

/** Residency per model as bars over time (loading / resident / unloading), above memory lines with the budget. */
export function residencyAndMemory(
  intervals: readonly Row[],
  memory: readonly Row[],
  options: { budgetMb: number; models: string[]; seconds: number },
): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    vconcat: [
      {
        width: WIDTH,
        height: Math.max(120, 18 * options.models.length),
        data: values(intervals),
        mark: "bar",
        encoding: {
          y: { field: "model", type: "nominal", title: null, sort: options.models },
          x: { field: "start", type: "quantitative", title: "time (s)", scale: { domain: [0, options.seconds] } },
          x2: { field: "end" },
          color: { field: "state", type: "nominal", title: "residency", scale: { domain: ["loading", "resident", "unloading"], range: ["#fdae6b", "#3182bd", "#bdbdbd"] } },
        },
      },
      lines(memory, { x: "t", xTitle: "time (s)", xDomain: [0, options.seconds], y: "mb", yTitle: "MB", series: "series", rule: { y: options.budgetMb, label: `budget ${Math.round(options.budgetMb)} MB` } }),
    ],
    resolve: { scale: { color: "independent" } },
  };
}

/** Each value as a point per category, with the category's median as a tick. */
export function distribution(rows: readonly Row[], options: { category: string; value: string; valueTitle: string; log: boolean }): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    width: WIDTH,
    height: 160,
    data: values(rows),
    layer: [
      {
        mark: { type: "point", opacity: 0.6 },
        encoding: {
          x: { field: options.value, type: "quantitative", title: options.valueTitle, scale: options.log ? { type: "log" } : {} },
          y: { field: options.category, type: "nominal", title: null },
          yOffset: { field: "jitter", type: "quantitative" },
          color: { field: options.category, type: "nominal", legend: null },
        },
      },
      {
        mark: { type: "tick", color: "black", thickness: 2, size: 30 },
        encoding: { x: { aggregate: "median", field: options.value, type: "quantitative" }, y: { field: options.category, type: "nominal" } },
      },
    ],
  };
}

/** Two panels side by side: points with labels, y over a log x axis. */
export function labelledPoints(rows: readonly Row[], options: { x: string; xTitle: string | null; ys: { field: string; title: string }[]; label: string }): ChartSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: values(rows),
    hconcat: options.ys.map((y) => ({
      width: 260,
      height: 220,
      layer: [
        { mark: { type: "line", point: true }, encoding: { x: { field: options.x, type: "quantitative", title: options.xTitle, scale: { type: "log" } }, y: { field: y.field, type: "quantitative", title: y.title } } },
        { mark: { type: "text", dy: -10, fontSize: 10 }, encoding: { x: { field: options.x, type: "quantitative" }, y: { field: y.field, type: "quantitative" }, text: { field: options.label } } },
      ],
    })),
  };
}
