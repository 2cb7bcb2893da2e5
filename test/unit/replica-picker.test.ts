import assert from "node:assert/strict";
import { availableReplicas, loadScore, pickReplica, type ReplicaView } from "../../services/placement/replica-picker.js";

const replica = (id: string, outstanding: number, capacity = 4): ReplicaView => ({ id, outstanding, capacity });

describe("replica picking (filter -> score -> pick)", () => {
  it("filters out excluded replicas and full ones", () => {
    const replicas = [replica("a", 4), replica("b", 1), replica("c", 0)];
    assert.deepEqual(availableReplicas(replicas, new Set(["c"])).map((r) => r.id), ["b"]);
  });

  const table: [string, ReplicaView[], string | undefined][] = [
    ["least outstanding streams", [replica("a", 3), replica("b", 1), replica("c", 2)], "b"],
    ["ties go to the first", [replica("a", 1), replica("b", 1)], "a"],
    ["load relative to capacity", [replica("one-seq", 0, 1), replica("four-seq", 1, 4)], "one-seq"],
    ["capacity counts: 1 of 4 beats 1 of 2", [replica("small", 1, 2), replica("big", 1, 4)], "big"],
    ["nothing to pick", [], undefined],
  ];
  for (const [name, candidates, expected] of table) {
    it(`picks by ${name}`, () => assert.equal(pickReplica(candidates)?.id, expected));
  }

  it("compares two random candidates when there are many (power of two choices)", () => {
    const many = [replica("a", 3), replica("b", 0), replica("c", 2), replica("d", 3), replica("e", 1)];
    // random 0.2 -> index 1 ("b"); 0.6 -> index 2 ("c"): the less loaded of the two wins
    const draws = [0.2, 0.6];
    assert.equal(pickReplica(many, () => draws.shift()!)?.id, "b");
    // never picks the most loaded when the two differ
    for (let seed = 0; seed < 50; seed++) {
      let x = seed / 50;
      const picked = pickReplica(many, () => (x = (x * 7.13 + 0.31) % 1))!;
      assert.ok(loadScore(picked) < 0.75 || many.filter((r) => loadScore(r) === 0.75).length > 1);
    }
  });
});
