import type { MemoryReadings, MemorySource } from "../../common/system/memory-source.js";

/** A box's memory as a test sets it: read() returns the current readings. */
export class FakeMemorySource implements MemorySource {
  constructor(private readings: MemoryReadings) {}

  read(): MemoryReadings {
    return { ...this.readings };
  }

  /** Changes readings, e.g. MemAvailable falling as a load allocates. */
  set(change: Partial<MemoryReadings>): void {
    this.readings = { ...this.readings, ...change };
  }
}
