// The box's memory and the budgets sized from it: on a Jetson (CPU and GPU share 8 GB of
// DRAM) `budget: 75%` is 75% of physical memory and gpu_budget is refused; on a box with a
// discrete GPU, `budget` is of MemAvailable and gpu_budget of free VRAM. Readings are
// injected: Jetson-like files for the real source, a fake source for the budgets.
import assert from "node:assert/strict";
import { ConfigError } from "../../common/config/config-error.js";
import type { Budget } from "../../common/config/config-types.js";
import {
  DEVICE_TREE_MODEL,
  detectUnifiedMemory,
  NV_TEGRA_RELEASE,
  parseMeminfo,
  parseNvidiaSmiMemory,
  PROC_MEMINFO,
  procMemorySource,
  type MemoryReadings,
  type ReadSystemFile,
} from "../../common/system/memory-source.js";
import { resolveBudget } from "../../common/system/resolve-budget.js";
import { resolveGpuBudget } from "../../common/system/resolve-gpu-budget.js";
import { FakeMemorySource } from "../support/fake-memory-source.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** /proc/meminfo of a Jetson Orin Nano 8 GB with a desktop session and a model on the GPU. */
const ORIN_NANO_MEMINFO = [
  "MemTotal:        7620176 kB",
  "MemFree:          812344 kB",
  "MemAvailable:    3905512 kB",
  "Buffers:           48212 kB",
  "Cached:          3101936 kB",
  "SwapCached:            0 kB",
  "Active:          2188400 kB",
  "NvMapMemFree:      48128 kB",
  "NvMapMemUsed:    2201600 kB",
  "",
].join("\n");
const ORIN_NANO_MODEL = "NVIDIA Jetson Orin Nano Developer Kit\0";
const L4T_RELEASE = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024\n";
/** An x86-64 workstation with 64 GiB and a discrete GPU. */
const WORKSTATION_MEMINFO = "MemTotal:       65842412 kB\nMemFree:        40112300 kB\nMemAvailable:   58723112 kB\nCached:         17000000 kB\n";

function files(contents: Record<string, string>): ReadSystemFile {
  return (path) => contents[path];
}

describe("the box's memory (memory source)", () => {
  it("reads physical and available memory from /proc/meminfo", () => {
    assert.deepEqual(parseMeminfo(ORIN_NANO_MEMINFO), { physicalBytes: 7620176 * KiB, availableBytes: 3905512 * KiB });
    // Kernels without MemAvailable: free plus page cache.
    assert.deepEqual(parseMeminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 10 kB\nCached: 300 kB\n"), { physicalBytes: 1000 * KiB, availableBytes: 410 * KiB });
    assert.equal(parseMeminfo("garbage"), undefined);
  });

  const detections: [string, Record<string, string>, "auto" | boolean, boolean, RegExp][] = [
    ["a Jetson by its device-tree model", { [DEVICE_TREE_MODEL]: ORIN_NANO_MODEL }, "auto", true, /NVIDIA Jetson Orin Nano Developer Kit"$/],
    ["a Jetson (or an L4T container) by /etc/nv_tegra_release", { [NV_TEGRA_RELEASE]: L4T_RELEASE }, "auto", true, /nv_tegra_release exists/],
    ["a workstation as separate memories", { [DEVICE_TREE_MODEL]: "Raspberry Pi 5 Model B Rev 1.0\0" }, "auto", false, /no NVIDIA Jetson found/],
    ["a workstation without a device tree", {}, "auto", false, /unified_memory: true overrides/],
    ["unified_memory: true on another unified box (e.g. DGX Spark)", {}, true, true, /unified_memory: true in the config/],
    ["unified_memory: false on a Jetson", { [NV_TEGRA_RELEASE]: L4T_RELEASE }, false, false, /unified_memory: false in the config/],
  ];
  for (const [story, contents, setting, expected, reason] of detections) {
    it(`detects ${story}`, () => {
      const detected = detectUnifiedMemory(setting, files(contents));
      assert.equal(detected.unifiedMemory, expected);
      assert.match(detected.reason, reason);
    });
  }

  it("reads a Jetson as unified memory with its physical and available bytes", () => {
    const source = procMemorySource("auto", files({ [PROC_MEMINFO]: ORIN_NANO_MEMINFO, [DEVICE_TREE_MODEL]: ORIN_NANO_MODEL }));
    assert.deepEqual(source.read(), { physicalBytes: 7620176 * KiB, availableBytes: 3905512 * KiB, unifiedMemory: true });
  });

  it("reads a discrete GPU's memory from nvidia-smi, all GPUs together, and none where it is absent", () => {
    // `nvidia-smi --query-gpu=memory.total,memory.free --format=csv,noheader,nounits` on a box with two GPUs (MiB)
    const twoGpus = "24564, 23720\n24564, 1200\n";
    const source = procMemorySource(false, files({ [PROC_MEMINFO]: WORKSTATION_MEMINFO }), () => twoGpus);
    assert.deepEqual(source.readGpu(), { totalBytes: 2 * 24564 * MiB, freeBytes: (23720 + 1200) * MiB });
    assert.equal(procMemorySource(false, files({}), () => undefined).readGpu(), undefined);
    assert.equal(parseNvidiaSmiMemory("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"), undefined);
  });

  it("reads this machine's /proc/meminfo", () => {
    const readings = procMemorySource("auto").read();
    assert.ok(readings.physicalBytes > 0 && readings.availableBytes > 0, JSON.stringify(readings));
    assert.ok(readings.availableBytes <= readings.physicalBytes, JSON.stringify(readings));
  });
});

describe("budget (resolveBudget)", () => {
  const jetson: MemoryReadings = { physicalBytes: 7620176 * KiB, availableBytes: 3905512 * KiB, unifiedMemory: true };
  const workstation: MemoryReadings = { physicalBytes: 65842412 * KiB, availableBytes: 58723112 * KiB, unifiedMemory: false };
  const cases: [string, Budget, MemoryReadings, number][] = [
    ["75% on a Jetson is 75% of physical memory, not of what is available now", { kind: "fraction", fraction: 0.75 }, jetson, Math.floor(7620176 * KiB * 0.75)],
    ["80% on a workstation is 80% of MemAvailable", { kind: "fraction", fraction: 0.8 }, workstation, Math.floor(58723112 * KiB * 0.8)],
    ["a size on a Jetson is that size", { kind: "bytes", bytes: 5 * GiB }, jetson, 5 * GiB],
    ["a size on a workstation is that size", { kind: "bytes", bytes: 40 * GiB }, workstation, 40 * GiB],
  ];
  for (const [story, budget, readings, expected] of cases) {
    it(story, () => assert.equal(resolveBudget(budget, readings), expected));
  }

  it("on a Jetson does not shrink when GPU allocations lower MemAvailable", () => {
    const box = new FakeMemorySource({ physicalBytes: 7620176 * KiB, availableBytes: 6 * GiB, unifiedMemory: true });
    const before = resolveBudget({ kind: "fraction", fraction: 0.75 }, box.read());
    box.set({ availableBytes: 6 * GiB - 552 * MiB }); // a model fully offloaded to the iGPU
    assert.equal(resolveBudget({ kind: "fraction", fraction: 0.75 }, box.read()), before);
    assert.equal(before, Math.floor(7620176 * KiB * 0.75));
  });
});

describe("gpu_budget (resolveGpuBudget)", () => {
  const discrete: MemoryReadings = { physicalBytes: 64 * GiB, availableBytes: 56 * GiB, unifiedMemory: false };
  const h100 = { totalBytes: 80 * GiB, freeBytes: 79 * GiB };

  it("is not budgeted unless set", () => {
    assert.equal(resolveGpuBudget(undefined, discrete, h100), undefined);
    assert.equal(resolveGpuBudget(undefined, { ...discrete, unifiedMemory: true }, undefined), undefined);
  });

  it("takes a size, or a percentage of free GPU memory, on a discrete GPU", () => {
    assert.equal(resolveGpuBudget({ kind: "bytes", bytes: 20 * GiB }, discrete, h100), 20 * GiB);
    assert.equal(resolveGpuBudget({ kind: "fraction", fraction: 0.9 }, discrete, h100), Math.floor(79 * GiB * 0.9));
  });

  it("is refused on unified memory, where budget already covers the GPU", () => {
    const jetson: MemoryReadings = { physicalBytes: 7620176 * KiB, availableBytes: 3905512 * KiB, unifiedMemory: true };
    assert.throws(
      () => resolveGpuBudget({ kind: "bytes", bytes: 2 * GiB }, jetson, { totalBytes: 7620176 * KiB, freeBytes: 3905512 * KiB }),
      (error: unknown) => error instanceof ConfigError && /^gpu_budget is for discrete GPUs, but CPU and GPU share memory on this box .*remove gpu_budget/.test(error.message),
    );
  });

  it("as a percentage needs a GPU", () => {
    assert.throws(
      () => resolveGpuBudget({ kind: "fraction", fraction: 0.5 }, discrete, undefined),
      (error: unknown) => error instanceof ConfigError && /^gpu_budget is 50% of free GPU memory, but no GPU was found .*give it as a size like 20GiB/.test(error.message),
    );
  });
});
