import { open } from "node:fs/promises";
import {
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufValueType,
  alignUp,
  type GgufArrayValue,
  type GgufHeader,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  type GgufValue,
} from "./gguf-format.js";

const INITIAL_READ_BYTES = 1 << 20;

/** Thrown by the cursor when the header extends past the bytes read so far. */
class NeedMoreBytes extends Error {}

class HeaderCursor {
  private position = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly bytes: Uint8Array,
    private readonly isWholeFile: boolean,
    private readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get offset(): number {
    return this.position;
  }

  private take(length: number): number {
    const start = this.position;
    if (start + length > this.bytes.byteLength) {
      if (this.isWholeFile) throw new Error(`${this.path}: truncated GGUF header at byte ${start}`);
      throw new NeedMoreBytes();
    }
    this.position += length;
    return start;
  }

  u8(): number { return this.view.getUint8(this.take(1)); }
  i8(): number { return this.view.getInt8(this.take(1)); }
  u16(): number { return this.view.getUint16(this.take(2), true); }
  i16(): number { return this.view.getInt16(this.take(2), true); }
  u32(): number { return this.view.getUint32(this.take(4), true); }
  i32(): number { return this.view.getInt32(this.take(4), true); }
  f32(): number { return this.view.getFloat32(this.take(4), true); }
  f64(): number { return this.view.getFloat64(this.take(8), true); }
  u64(): bigint { return this.view.getBigUint64(this.take(8), true); }
  i64(): bigint { return this.view.getBigInt64(this.take(8), true); }

  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  safeU64(what: string): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${this.path}: ${what} ${value} is too large`);
    return Number(value);
  }

  string(): string {
    const length = this.safeU64("string length");
    const start = this.take(length);
    return this.decoder.decode(this.bytes.subarray(start, start + length));
  }
}

function readValue(cursor: HeaderCursor, type: number, path: string): GgufValue {
  switch (type) {
    case GgufValueType.UINT8: return cursor.u8();
    case GgufValueType.INT8: return cursor.i8();
    case GgufValueType.UINT16: return cursor.u16();
    case GgufValueType.INT16: return cursor.i16();
    case GgufValueType.UINT32: return cursor.u32();
    case GgufValueType.INT32: return cursor.i32();
    case GgufValueType.FLOAT32: return cursor.f32();
    case GgufValueType.FLOAT64: return cursor.f64();
    case GgufValueType.UINT64: return cursor.u64();
    case GgufValueType.INT64: return cursor.i64();
    case GgufValueType.BOOL: return cursor.u8() !== 0;
    case GgufValueType.STRING: return cursor.string();
    case GgufValueType.ARRAY: {
      const itemType = cursor.u32() as GgufValueType;
      const count = cursor.safeU64("array length");
      const array: GgufArrayValue = { itemType, items: [] };
      for (let index = 0; index < count; index++) array.items.push(readValue(cursor, itemType, path));
      return array;
    }
    default:
      throw new Error(`${path}: unknown GGUF metadata value type ${type}`);
  }
}

function parseHeader(bytes: Uint8Array, isWholeFile: boolean, path: string): GgufHeader {
  const cursor = new HeaderCursor(bytes, isWholeFile, path);
  const magic = cursor.u32();
  if (magic !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (bad magic 0x${magic.toString(16)})`);
  const version = cursor.u32();
  if (version !== 2 && version !== 3) throw new Error(`${path}: unsupported GGUF version ${version} (expected 2 or 3)`);
  const tensorCount = cursor.safeU64("tensor count");
  const metadataCount = cursor.safeU64("metadata count");

  const metadata: GgufMetadataEntry[] = [];
  for (let index = 0; index < metadataCount; index++) {
    const key = cursor.string();
    const type = cursor.u32() as GgufValueType;
    metadata.push({ key, type, value: readValue(cursor, type, path) });
  }

  const tensors: GgufTensorInfo[] = [];
  for (let index = 0; index < tensorCount; index++) {
    const name = cursor.string();
    const dimCount = cursor.u32();
    const dims: number[] = [];
    for (let dim = 0; dim < dimCount; dim++) dims.push(cursor.safeU64(`dim of ${name}`));
    const type = cursor.u32();
    const offset = cursor.safeU64(`offset of ${name}`);
    tensors.push({ name, dims, type, offset });
  }

  const alignmentEntry = metadata.find((entry) => entry.key === GGUF_ALIGNMENT_KEY);
  const alignment = typeof alignmentEntry?.value === "number" ? alignmentEntry.value : GGUF_DEFAULT_ALIGNMENT;
  return { version, alignment, metadata, tensors, dataOffset: alignUp(cursor.offset, alignment) };
}

/** Reads magic, metadata and tensor infos (not tensor data) of a GGUF file. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
  const file = await open(path, "r");
  try {
    const fileSize = (await file.stat()).size;
    let readLength = Math.min(INITIAL_READ_BYTES, fileSize);
    for (;;) {
      const bytes = new Uint8Array(readLength);
      const { bytesRead } = await file.read(bytes, 0, readLength, 0);
      const isWholeFile = bytesRead >= fileSize;
      try {
        return parseHeader(bytes.subarray(0, bytesRead), isWholeFile, path);
      } catch (error) {
        if (!(error instanceof NeedMoreBytes)) throw error;
        readLength = Math.min(readLength * 4, fileSize);
      }
    }
  } finally {
    await file.close();
  }
}
