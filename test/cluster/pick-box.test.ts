import assert from "node:assert/strict";
import type { BoxModel, BoxRecord, LoadCost } from "../../services/cluster/box-record.js";
import { pickBox, type BoxReason } from "../../services/cluster/pick-box.js";

const MiB = 1024 * 1024;

/** A box record as a placement publishes it; `models` maps a name to its state there. */
function box(name: string, models: Record<string, Partial<BoxModel> & { state: BoxModel["state"] }>, load: Partial<Pick<BoxRecord, "inFlight" | "queueDepth" | "freeBytes">> = {}): BoxRecord {
  return {
    box: name,
    address: `10.0.0.${name.length}:50052`,
    budgetBytes: 1024 * MiB,
    freeBytes: load.freeBytes ?? 512 * MiB,
    queueDepth: load.queueDepth ?? 0,
    inFlight: load.inFlight ?? 0,
    policy: "cost",
    leaseId: "1",
    updatedMs: 0,
    models: Object.entries(models).map(([model, entry]) => ({ name: model, aliases: [], bytes: 100 * MiB, inFlight: 0, queued: 0, ...entry })),
  };
}
const cold = (load: LoadCost) => ({ state: "cold" as const, load });
const fits = (freeAfterMiB: number) => cold({ kind: "fits", freeAfterBytes: freeAfterMiB * MiB });
const evicts = (reloadCostMs: number, ...victims: string[]) => cold({ kind: "evict", victims, reloadCostMs });
const blocked = cold({ kind: "blocked", reason: "pinned models hold the budget" });

describe("pickBox: which box serves a model (filter -> score -> pick)", () => {
  const table: { story: string; model: string; boxes: BoxRecord[]; exclude?: string[]; expect: { box: string; reason: BoxReason } | undefined }[] = [
    {
      story: "the box where the model is resident wins over a box with room to load it",
      model: "coder",
      boxes: [box("a", { coder: fits(900) }), box("b", { coder: { state: "resident" } })],
      expect: { box: "b", reason: "resident" },
    },
    {
      story: "resident on two boxes: the less loaded one (streams in flight + queue)",
      model: "coder",
      boxes: [box("a", { coder: { state: "resident" } }, { inFlight: 3 }), box("b", { coder: { state: "resident" } }, { inFlight: 1, queueDepth: 1 })],
      expect: { box: "b", reason: "resident" },
    },
    {
      story: "a load in progress is joined rather than a second load started",
      model: "coder",
      boxes: [box("a", { coder: fits(900) }), box("b", { coder: { state: "loading" } })],
      expect: { box: "b", reason: "loading" },
    },
    {
      story: "cold everywhere: the box with the most memory free after loading it",
      model: "coder",
      boxes: [box("a", { coder: fits(200) }), box("b", { coder: fits(700) }), box("c", { coder: fits(300) })],
      expect: { box: "b", reason: "free_memory" },
    },
    {
      story: "free memory first: a box where it fits beats a box that would evict",
      model: "coder",
      boxes: [box("a", { coder: evicts(5, "tiny") }), box("b", { coder: fits(1) })],
      expect: { box: "b", reason: "free_memory" },
    },
    {
      story: "no box has room: the one whose eviction policy loses the least reload time",
      model: "coder",
      boxes: [box("a", { coder: evicts(900, "chat") }), box("b", { coder: evicts(120, "tiny", "stories") })],
      expect: { box: "b", reason: "eviction_cost" },
    },
    {
      story: "nothing can make room anywhere: it queues where the queue is shortest",
      model: "coder",
      boxes: [box("a", { coder: blocked }, { queueDepth: 4 }), box("b", { coder: blocked }, { queueDepth: 1 })],
      expect: { box: "b", reason: "queue" },
    },
    {
      story: "a blocked box loses to one that can evict",
      model: "coder",
      boxes: [box("a", { coder: blocked }), box("b", { coder: evicts(10_000, "chat") })],
      expect: { box: "b", reason: "eviction_cost" },
    },
    {
      story: "boxes whose catalog lacks the model are not candidates",
      model: "coder",
      boxes: [box("a", { chat: { state: "resident" } }), box("b", { coder: fits(10) })],
      expect: { box: "b", reason: "free_memory" },
    },
    {
      story: "an alias finds the model",
      model: "code",
      boxes: [box("a", { coder: { state: "resident", aliases: ["code"] } })],
      expect: { box: "a", reason: "resident" },
    },
    {
      story: "a box that failed this request is skipped on the retry",
      model: "coder",
      boxes: [box("a", { coder: { state: "resident" } }), box("b", { coder: evicts(300, "chat") })],
      exclude: ["a"],
      expect: { box: "b", reason: "eviction_cost" },
    },
    {
      story: "equal scores: the box name decides, so every gateway picks alike",
      model: "coder",
      boxes: [box("b", { coder: fits(100) }), box("a", { coder: fits(100) })],
      expect: { box: "a", reason: "free_memory" },
    },
    {
      story: "a box with the file on disk that must evict beats a box with room that must download the file first",
      model: "coder",
      boxes: [box("a", { coder: { ...fits(900), file: "missing" } }), box("b", { coder: evicts(5_000, "chat") })],
      expect: { box: "b", reason: "eviction_cost" },
    },
    {
      story: "a download in progress is joined like a load, rather than a second download started elsewhere",
      model: "coder",
      boxes: [box("a", { coder: fits(900) }), box("b", { coder: { state: "loading", file: "downloading" } })],
      expect: { box: "b", reason: "loading" },
    },
    {
      story: "every box must download it: one where it then fits, the most room after",
      model: "coder",
      boxes: [box("a", { coder: { ...evicts(1, "tiny"), file: "missing" } }), box("b", { coder: { ...fits(100), file: "missing" } }), box("c", { coder: { ...fits(300), file: "missing" } })],
      expect: { box: "c", reason: "download" },
    },
    {
      story: "a box that must download it still beats one where nothing can make room",
      model: "coder",
      boxes: [box("a", { coder: blocked }), box("b", { coder: { ...evicts(50, "chat"), file: "missing" } })],
      expect: { box: "b", reason: "download" },
    },
    { story: "no box has the model: no choice", model: "coder", boxes: [box("a", { chat: { state: "resident" } })], expect: undefined },
    { story: "every box excluded: no choice", model: "coder", boxes: [box("a", { coder: { state: "resident" } })], exclude: ["a"], expect: undefined },
    { story: "an empty registry: no choice", model: "coder", boxes: [], expect: undefined },
  ];

  for (const { story, model, boxes, exclude, expect } of table) {
    it(story, () => {
      const choice = pickBox(model, boxes, new Set(exclude));
      assert.deepEqual(choice && { box: choice.box.box, reason: choice.reason }, expect);
    });
  }

  it("says why in words a trace reader understands, and counts the candidates", () => {
    const choice = pickBox("coder", [box("a", { coder: evicts(120, "tiny", "stories") }), box("b", { coder: blocked }), box("c", { chat: { state: "resident" } })])!;
    assert.equal(choice.model, "coder");
    assert.equal(choice.candidates, 2);
    assert.equal(choice.detail, "cost evicts tiny, stories (reload cost 120 ms)");
    assert.equal(pickBox("coder", [box("a", { coder: { ...fits(300), file: "missing" } })])!.detail, "downloads coder first, then fits: 300.0 MiB free after");
    assert.equal(pickBox("coder", [box("a", { coder: { state: "loading", file: "downloading" } })])!.detail, "already downloading coder");
  });
});
