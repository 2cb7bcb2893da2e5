/** What every test of the report is given: the scale, quick or full, and where to report progress. */
export interface RunContext {
  quick: boolean;
  factor: number;
  seed: number;
  /** Moves the progress bar one step on, naming what runs next. */
  step(name: string): void;
  /** A line for the log (shown below the progress bar). */
  note(line: string): void;
}
