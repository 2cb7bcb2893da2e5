import path from "node:path";
import { fileURLToPath } from "node:url";

/** The project root (tests run from dist/test/...). */
export const projectRoot = (() => {
  let directory = path.dirname(fileURLToPath(import.meta.url));
  while (path.basename(directory) !== "dist") directory = path.dirname(directory);
  return path.dirname(directory);
})();

/** The real trained tiny model that ships in the repository (models/). */
export const storiesModel = path.resolve(projectRoot, "models/stories260K.gguf");
