import type { GpuMemoryReadings, MemoryReadings, MemorySource } from "../../common/system/memory-source.js";

/** A box's memory as a test sets it: read() returns the current readings; readGpu() the GPU's, if it has one. */
export class FakeMemorySource implements MemorySource {
  constructor(
    private readings: MemoryReadings,
    private gpu: GpuMemoryReadings | undefined = undefined,
  ) {}

  read(): MemoryReadings {
    return { ...this.readings };
  }

  readGpu(): GpuMemoryReadings | undefined {
    return this.gpu && { ...this.gpu };
  }

  /** Changes readings, e.g. MemAvailable falling as a load allocates. */
  set(change: Partial<MemoryReadings>): void {
    this.readings = { ...this.readings, ...change };
  }
}
