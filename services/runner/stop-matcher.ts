/**
 * Finds stop strings in streamed text. Text that could still become a stop string is
 * held back, so the client never sees any part of a stop string.
 */
export class StopMatcher {
  private held = "";

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds new text; returns what may be emitted now and whether a stop string was hit. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buffer = this.held + text;
    let firstStop = -1;
    for (const stop of this.stops) {
      const at = buffer.indexOf(stop);
      if (at !== -1 && (firstStop === -1 || at < firstStop)) firstStop = at;
    }
    if (firstStop !== -1) {
      this.held = "";
      return { emit: buffer.slice(0, firstStop), stopped: true };
    }
    const keep = this.longestStopPrefixSuffix(buffer);
    this.held = buffer.slice(buffer.length - keep);
    return { emit: buffer.slice(0, buffer.length - keep), stopped: false };
  }

  /** Text held back at the end of generation that turned out not to be a stop string. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  private longestStopPrefixSuffix(buffer: string): number {
    let longest = 0;
    for (const stop of this.stops) {
      for (let length = Math.min(stop.length - 1, buffer.length); length > longest; length--) {
        if (buffer.endsWith(stop.slice(0, length))) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }
}
