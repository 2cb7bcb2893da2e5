// Figures runners report are checked before they enter the ledger or state_file.
import assert from "node:assert/strict";
import { reportChecks } from "../../services/placement/report-checks.js";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const PHYSICAL = 8 * GiB;

describe("runner report checks (pure)", () => {
  it("takes an RSS only as bytes of this box's memory", () => {
    const cases: [number, boolean][] = [
      [100 * MiB, true],
      [0, true],
      [PHYSICAL, true],
      [PHYSICAL + 1, false],
      [2 ** 60, false],
      [-1, false],
      [Number.NaN, false],
      [Number.POSITIVE_INFINITY, false],
      [1.5, false],
    ];
    for (const [bytes, ok] of cases) assert.equal(reportChecks.rss(bytes, PHYSICAL) === undefined, ok, String(bytes));
    assert.match(reportChecks.rss(2 ** 50, PHYSICAL)!, /more than the box's physical memory/);
  });

  it("takes a measured footprint up to twice what was expected plus 1 GiB", () => {
    const cases: [number, number | undefined, number, boolean][] = [
      // measured, estimate, file, plausible
      [120 * MiB, 100 * MiB, 90 * MiB, true],
      [2 * 100 * MiB + GiB, 100 * MiB, 90 * MiB, true],
      [2 * 100 * MiB + GiB + 1, 100 * MiB, 90 * MiB, false],
      [Math.round(1.3 * GiB), undefined, 200 * MiB, true], // no estimate yet: the file stands in
      [40 * GiB, undefined, 200 * MiB, false],
      [0, 100 * MiB, 90 * MiB, true],
      [Number.NaN, 100 * MiB, 90 * MiB, false],
      [-5, 100 * MiB, 90 * MiB, false],
    ];
    for (const [measured, estimatedBytes, fileBytes, ok] of cases) {
      assert.equal(reportChecks.measured(measured, { estimatedBytes, fileBytes }) === undefined, ok, `${measured} vs ${estimatedBytes}/${fileBytes}`);
    }
  });

  it("takes an estimate up to twice the file plus four times the box's memory (overcommitted models map more than RAM)", () => {
    assert.equal(reportChecks.estimate(20 * GiB, { fileBytes: 18 * GiB }, PHYSICAL), undefined);
    assert.equal(reportChecks.estimate(2 * 18 * GiB + 4 * PHYSICAL, { fileBytes: 18 * GiB }, PHYSICAL), undefined);
    assert.match(reportChecks.estimate(2 ** 50, { fileBytes: GiB }, PHYSICAL)!, /more than 2 x the file \+ 4 x physical memory/);
    assert.notEqual(reportChecks.estimate(Number.NaN, { fileBytes: GiB }, PHYSICAL), undefined);
  });

  it("takes durations under a day and progress within 0..1", () => {
    for (const [ms, ok] of [[250, true], [0, true], [-1, false], [Number.NaN, false], [48 * 3600_000, false]] as const) assert.equal(reportChecks.durationMs(ms) === undefined, ok, String(ms));
    for (const [fraction, ok] of [[0.5, true], [1, true], [1.01, false], [Number.NaN, false], [-0.1, false]] as const) assert.equal(reportChecks.progress(fraction) === undefined, ok, String(fraction));
  });
});
