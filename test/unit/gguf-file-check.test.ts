// A runner asked to load or estimate a file that is not a GGUF says so without quoting it.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { checkGgufFile } from "../../services/runner/gguf-file-check.js";
import { storiesModel } from "../support/paths.js";

describe("runner: the GGUF check before node-llama-cpp parses a file", () => {
  let directory: string;
  before(() => (directory = mkdtempSync(path.join(tmpdir(), "modelswap-gguf-check-"))));
  after(() => rmSync(directory, { recursive: true, force: true }));

  it("passes a GGUF and refuses anything else naming only the path and the reason", async () => {
    await checkGgufFile(storiesModel);
    const secretText = path.join(directory, "shadow");
    writeFileSync(secretText, "root:$6$saltsalt$hashhashhash:19000:0:99999:7:::\n");
    const cases: [string, RegExp][] = [
      [secretText, /^.*shadow is not a GGUF file$/],
      [path.join(directory, "absent.gguf"), /^no file at .*absent\.gguf$/],
      [directory, /is not a regular file$/],
    ];
    for (const [file, expected] of cases) {
      const error = await checkGgufFile(file).then(() => undefined, (caught: Error) => caught);
      assert.match(error?.message ?? "", expected, file);
      assert.doesNotMatch(error!.message, /root|\$6\$/, "no byte of the file is quoted");
    }
  });
});
