// A load measured from the runner's readings before and after it, counted once. On a Jetson
// the GPU's memory is the box's DRAM: node-llama-cpp's getVramState reports the unified pool
// (MemTotal - MemAvailable), whose growth already holds the runner's anonymous RSS growth;
// adding RSS and pool growth would count those bytes twice. On a discrete GPU, RSS and VRAM
// are separate memories charged to separate budgets (budget, gpu_budget).
import assert from "node:assert/strict";
import { measureLoad, type LoadMeasurement, type LoadReading } from "../../services/runner/load-measurement.js";
import { processMemory } from "../../services/runner/process-memory.js";

const MiB = 1024 * 1024;

/** A runner with its spare-process footprint, on a box already using 3.5 GB. */
const BEFORE: LoadReading = { rssBytes: 180 * MiB, anonymousRssBytes: 120 * MiB, deviceUsedBytes: 3500 * MiB };

interface Row {
  story: string;
  unified: boolean;
  /** Growth over the load, MiB: RSS, of which anonymous, and the device's used bytes ("no GPU backend": reads 0 before and after). */
  rss: number;
  anon: number;
  device: number | "no GPU backend";
  expected: { host: number; device: number; charged: number; gpuCharged: number };
}

const rows: Row[] = [
  // Jetson Orin (unified memory). A 500 MB model: weights 500 + KV cache 32 + compute buffers 20 = 552 MB of GPU buffers.
  { story: "Jetson, 500 MB model fully offloaded: the pool's growth holds the 38 MB anonymous RSS growth once", unified: true, rss: 40, anon: 38, device: 590, expected: { host: 40, device: 552, charged: 592, gpuCharged: 0 } },
  { story: "Jetson, half the layers offloaded: CPU layers in RSS, GPU layers only in the pool", unified: true, rss: 290, anon: 280, device: 556, expected: { host: 290, device: 276, charged: 566, gpuCharged: 0 } },
  { story: "Jetson, gpu_layers: 0 on the CUDA build: weights in RSS, a small GPU scratch buffer", unified: true, rss: 530, anon: 520, device: 540, expected: { host: 530, device: 20, charged: 550, gpuCharged: 0 } },
  { story: "Jetson, CPU build (no GPU backend, device reads 0): RSS alone", unified: true, rss: 530, anon: 520, device: "no GPU backend", expected: { host: 530, device: 0, charged: 530, gpuCharged: 0 } },
  { story: "Jetson, mapped file (use_mmap) half offloaded: mapped pages are page cache, so the pool shows only the GPU layers and the anonymous growth", unified: true, rss: 300, anon: 20, device: 296, expected: { host: 300, device: 276, charged: 576, gpuCharged: 0 } },
  { story: "Jetson, another process freed memory during the load: never below the RSS growth", unified: true, rss: 40, anon: 38, device: 20, expected: { host: 40, device: 0, charged: 40, gpuCharged: 0 } },
  // Discrete GPU (H100/H200-like): separate memories, separate budgets.
  { story: "discrete GPU, fully offloaded: host to budget, VRAM to gpu_budget", unified: false, rss: 60, anon: 55, device: 552, expected: { host: 60, device: 552, charged: 60, gpuCharged: 552 } },
  { story: "discrete GPU, half the layers offloaded", unified: false, rss: 290, anon: 280, device: 276, expected: { host: 290, device: 276, charged: 290, gpuCharged: 276 } },
  { story: "discrete GPU, gpu_layers: 0", unified: false, rss: 530, anon: 520, device: 0, expected: { host: 530, device: 0, charged: 530, gpuCharged: 0 } },
  { story: "discrete GPU, RSS shrank during the load (freed buffers): nothing negative", unified: false, rss: -5, anon: -5, device: 552, expected: { host: 0, device: 552, charged: 0, gpuCharged: 552 } },
];

function inMiB(measurement: LoadMeasurement) {
  return {
    host: measurement.hostBytes / MiB,
    device: measurement.deviceBytes / MiB,
    charged: measurement.chargedBytes / MiB,
    gpuCharged: measurement.gpuChargedBytes / MiB,
  };
}

describe("a load is counted once (measureLoad)", () => {
  for (const row of rows) {
    it(row.story, () => {
      const before = row.device === "no GPU backend" ? { ...BEFORE, deviceUsedBytes: 0 } : BEFORE;
      const after: LoadReading = {
        rssBytes: before.rssBytes + row.rss * MiB,
        anonymousRssBytes: before.anonymousRssBytes + row.anon * MiB,
        deviceUsedBytes: row.device === "no GPU backend" ? 0 : before.deviceUsedBytes + row.device * MiB,
      };
      assert.deepEqual(inMiB(measureLoad(before, after, row.unified)), row.expected);
    });
  }

  it("charges a CPU load with mapped weights for the whole mapping, though a load without warm-up has touched none of it yet", () => {
    const mapped = 100 * MiB;
    // context buffers grew the anonymous RSS by 60 MiB; the weights' pages are not resident yet
    const untouched = { rssBytes: BEFORE.rssBytes + 61 * MiB, anonymousRssBytes: BEFORE.anonymousRssBytes + 60 * MiB, deviceUsedBytes: 0 };
    assert.equal(measureLoad({ ...BEFORE, deviceUsedBytes: 0 }, untouched, false, mapped).chargedBytes, 160 * MiB);
    // after a warm-up that touched every page: the same charge, counted once
    const touched = { rssBytes: BEFORE.rssBytes + 160 * MiB, anonymousRssBytes: BEFORE.anonymousRssBytes + 60 * MiB, deviceUsedBytes: 0 };
    assert.equal(measureLoad({ ...BEFORE, deviceUsedBytes: 0 }, touched, false, mapped).chargedBytes, 160 * MiB);
  });

  it("on a Jetson charges less than RSS growth plus pool growth by exactly the anonymous RSS growth", () => {
    const after = { rssBytes: BEFORE.rssBytes + 40 * MiB, anonymousRssBytes: BEFORE.anonymousRssBytes + 38 * MiB, deviceUsedBytes: BEFORE.deviceUsedBytes + 590 * MiB };
    const naive = 40 * MiB + 590 * MiB;
    assert.equal(naive - measureLoad(BEFORE, after, true).chargedBytes, 38 * MiB);
  });
});

describe("the runner's resident memory (processMemory)", () => {
  it("reads VmRSS and RssAnon from /proc/self/status", () => {
    const status = "Name:\tnode\nVmRSS:\t  204800 kB\nRssAnon:\t  122880 kB\nRssFile:\t   81920 kB\nRssShmem:\t       0 kB\n";
    assert.deepEqual(processMemory(status), { rssBytes: 200 * MiB, anonymousRssBytes: 120 * MiB });
  });

  it("takes all of Node's RSS as anonymous where there is no /proc", () => {
    const memory = processMemory("");
    assert.ok(memory.rssBytes > 0);
    assert.equal(memory.anonymousRssBytes, memory.rssBytes);
  });

  it("reads this process", () => {
    const memory = processMemory();
    assert.ok(memory.rssBytes > 0 && memory.anonymousRssBytes > 0 && memory.anonymousRssBytes <= memory.rssBytes, JSON.stringify(memory));
  });
});
