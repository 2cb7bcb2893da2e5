import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { LearnedFacts } from "./placement-types.js";

/**
 * What placement learned about models (measured bytes, load times), kept in a small
 * JSON file so a restart does not start from estimates again.
 */
export class LearnedState {
  private readonly facts: Record<string, LearnedFacts>;

  constructor(private readonly file: string | undefined) {
    this.facts = file ? readFacts(file) : {};
  }

  get(model: string): LearnedFacts | undefined {
    return this.facts[model];
  }

  set(model: string, facts: LearnedFacts): void {
    this.facts[model] = facts;
    if (!this.file) return;
    mkdirSync(path.dirname(this.file), { recursive: true });
    const temporary = `${this.file}.tmp`;
    writeFileSync(temporary, JSON.stringify(this.facts, null, 2));
    renameSync(temporary, this.file);
  }
}

function readFacts(file: string): Record<string, LearnedFacts> {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, "utf8"));
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, LearnedFacts>) : {};
  } catch {
    return {};
  }
}
