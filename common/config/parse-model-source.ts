/**
 * Where a model can be downloaded from, and the name of its local file in models_dir.
 * `uri` is what node-llama-cpp's downloader takes.
 */
export type ModelSource =
  /** `hf:<user>/<repo>:<quant>`: the repository's file of that quantisation (found through Hugging Face's manifest). */
  | { kind: "hf-quant"; uri: string; fileName: string; user: string; repo: string; quant: string }
  /** `hf:<user>/<repo>/<path/file.gguf>[#branch]`: one file of a repository. */
  | { kind: "hf-file"; uri: string; fileName: string; user: string; repo: string; file: string; branch: string }
  /** `https://…/<file>.gguf` (or http). */
  | { kind: "url"; uri: string; fileName: string };

export type ParsedModelSource = { ok: true; source: ModelSource } | { ok: false; reason: string };

const MAX_SOURCE_LENGTH = 2048;
const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const QUANT = /^[A-Za-z0-9_]{1,32}$/;
const EXAMPLES = "like hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M, hf:user/repo/file.gguf or https://host/path/model.gguf";

/** True when `text` names a download source rather than a local path. */
export function isModelSource(text: string): boolean {
  return /^(hf:|https?:\/\/)/i.test(text.trim());
}

/** Pure: checks a source and derives its local file name; `reason` says what to fix. */
export function parseModelSource(text: string): ParsedModelSource {
  const source = text.trim();
  if (source.length > MAX_SOURCE_LENGTH) return fail(`is longer than ${MAX_SOURCE_LENGTH} characters`);
  if (/^hf:/i.test(source)) return parseHuggingFace(source.slice(3));
  if (/^https?:\/\//i.test(source)) return parseUrl(source);
  return fail(`must be a model source ${EXAMPLES} (got "${source}")`);
}

function parseHuggingFace(rest: string): ParsedModelSource {
  const [location = "", branchPart] = rest.split("#", 2);
  const [user = "", repoAndTag = "", ...fileParts] = location.split("/");
  if (fileParts.length === 0) {
    if (branchPart !== undefined) return fail(`can name a branch (#…) only with a file: hf:user/repo/file.gguf#branch`);
    const [repo = "", quant, ...extra] = repoAndTag.split(":");
    if (!HF_NAME.test(user) || !HF_NAME.test(repo)) return fail(`must name a Hugging Face repository as hf:<user>/<repo>:<quant> (got "hf:${rest}")`);
    if (quant === undefined || extra.length > 0 || !QUANT.test(quant)) {
      return fail(`must say which quantisation to pull, e.g. hf:${user}/${repo}:Q4_K_M or :Q8_0 (got "hf:${rest}")`);
    }
    const upper = quant.toUpperCase();
    const base = repo.replace(/-gguf$/i, "");
    return ok({ kind: "hf-quant", uri: `hf:${user}/${repo}:${upper}`, fileName: safeFileName(`hf_${user}_${base}.${upper}.gguf`), user, repo, quant: upper });
  }
  const repo = repoAndTag;
  const file = fileParts.join("/");
  const branch = branchPart === undefined || branchPart === "" ? "main" : branchPart;
  if (!HF_NAME.test(user) || !HF_NAME.test(repo)) return fail(`must name a Hugging Face repository as hf:<user>/<repo>/<file>.gguf (got "hf:${rest}")`);
  if (fileParts.some((part) => part === "" || part === "." || part === "..")) return fail(`has an empty, "." or ".." part in its file path (got "${file}")`);
  if (!/\.gguf$/i.test(file)) return fail(`must name a .gguf file (got "${file}")`);
  if (!/^[A-Za-z0-9._/-]{1,200}$/.test(branch)) return fail(`has an unusable branch name "${branch}"`);
  const uri = `hf:${user}/${repo}/${file}${branch === "main" ? "" : `#${branch}`}`;
  return ok({ kind: "hf-file", uri, fileName: safeFileName(`hf_${user}_${fileParts.at(-1)!}`), user, repo, file, branch });
}

function parseUrl(text: string): ParsedModelSource {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`is not a valid URL (got "${text}")`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return fail(`must be an https:// or http:// URL (got "${text}")`);
  if (url.username || url.password) return fail(`must not carry credentials in the URL; pass them in headers instead`);
  let name: string;
  try {
    name = decodeURIComponent(url.pathname.split("/").at(-1) ?? "");
  } catch {
    return fail(`has a badly encoded file name in its path (got "${url.pathname}")`);
  }
  if (!/\.gguf$/i.test(name)) return fail(`must end its path in a .gguf file name, e.g. https://host/models/model.Q4_K_M.gguf (got "${text}")`);
  return ok({ kind: "url", uri: url.href, fileName: safeFileName(name) });
}

/** Letters, digits, '.', '_' and '-' only; never a path or a hidden file. */
function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_").slice(-200);
}

const ok = (source: ModelSource): ParsedModelSource => ({ ok: true, source });
const fail = (reason: string): ParsedModelSource => ({ ok: false, reason });
