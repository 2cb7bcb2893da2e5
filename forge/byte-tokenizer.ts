import { GgufValueType, type GgufMetadataEntry } from "./gguf-format.js";

/** llama.cpp token types (tokenizer.ggml.token_type). */
const TokenKind = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  BYTE: 6,
} as const;

/** SentencePiece's word-boundary marker, which stands for a space. */
const SPACE_MARKER = "\u2581";

export const BYTE_TOKENIZER_SPECIAL_IDS = { unknown: 0, bos: 1, eos: 2 } as const;

interface VocabEntry {
  piece: string;
  score: number;
  kind: number;
}

function buildVocab(): VocabEntry[] {
  const vocab: VocabEntry[] = [
    { piece: "<unk>", score: 0, kind: TokenKind.UNKNOWN },
    { piece: "<s>", score: 0, kind: TokenKind.CONTROL },
    { piece: "</s>", score: 0, kind: TokenKind.CONTROL },
  ];
  for (let byte = 0; byte < 256; byte++) {
    const hex = byte.toString(16).toUpperCase().padStart(2, "0");
    vocab.push({ piece: `<0x${hex}>`, score: 0, kind: TokenKind.BYTE });
  }
  // Single-character pieces so plain English text does not fall back to bytes; with no
  // multi-character pieces the SPM tokenizer never merges, so scores only order the pieces.
  const characterPieces = [SPACE_MARKER];
  for (let code = 0x21; code <= 0x7e; code++) characterPieces.push(String.fromCharCode(code));
  characterPieces.forEach((piece, rank) => vocab.push({ piece, score: -(rank + 1), kind: TokenKind.NORMAL }));
  return vocab;
}

/**
 * `tokenizer.ggml.*` metadata of a llama/SPM-style vocabulary: <unk>, <s>, </s>, the 256 byte
 * tokens <0x00>..<0xFF> (byte fallback) and single-character pieces for "▁" and printable ASCII.
 */
export function byteTokenizerMetadata(): GgufMetadataEntry[] {
  const vocab = buildVocab();
  return [
    { key: "tokenizer.ggml.model", type: GgufValueType.STRING, value: "llama" },
    {
      key: "tokenizer.ggml.tokens",
      type: GgufValueType.ARRAY,
      value: { itemType: GgufValueType.STRING, items: vocab.map((entry) => entry.piece) },
    },
    {
      key: "tokenizer.ggml.scores",
      type: GgufValueType.ARRAY,
      value: { itemType: GgufValueType.FLOAT32, items: vocab.map((entry) => entry.score) },
    },
    {
      key: "tokenizer.ggml.token_type",
      type: GgufValueType.ARRAY,
      value: { itemType: GgufValueType.INT32, items: vocab.map((entry) => entry.kind) },
    },
    { key: "tokenizer.ggml.unknown_token_id", type: GgufValueType.UINT32, value: BYTE_TOKENIZER_SPECIAL_IDS.unknown },
    { key: "tokenizer.ggml.bos_token_id", type: GgufValueType.UINT32, value: BYTE_TOKENIZER_SPECIAL_IDS.bos },
    { key: "tokenizer.ggml.eos_token_id", type: GgufValueType.UINT32, value: BYTE_TOKENIZER_SPECIAL_IDS.eos },
    { key: "tokenizer.ggml.add_bos_token", type: GgufValueType.BOOL, value: true },
    { key: "tokenizer.ggml.add_eos_token", type: GgufValueType.BOOL, value: false },
  ];
}
