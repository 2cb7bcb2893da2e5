import { open, rename, rm } from "node:fs/promises";
import {
  GGUF_ALIGNMENT_KEY,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufValueType,
  alignUp,
  tensorByteSize,
  type GgufArrayValue,
  type GgufMetadataEntry,
  type GgufTensorInfo,
  type GgufValue,
} from "./gguf-format.js";

export interface TensorDescriptor {
  name: string;
  /** GGUF order: dims[0] = ne0 (row length). */
  dims: number[];
  type: number;
}

export interface TensorSource extends TensorDescriptor {
  /**
   * Yields exactly tensorByteSize(type, dims) bytes, in order. Each chunk is written to disk
   * before the next one is requested, so a producer may refill and reuse one buffer.
   */
  chunks(): Iterable<Uint8Array>;
}

export interface GgufLayout {
  header: Uint8Array;
  tensorInfos: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
  fileSize: number;
}

/** Growable little-endian byte buffer for the header. */
class HeaderBuilder {
  private bytes = new Uint8Array(1 << 16);
  private view = new DataView(this.bytes.buffer);
  private length = 0;
  private readonly encoder = new TextEncoder();

  private reserve(extra: number): number {
    const needed = this.length + extra;
    if (needed > this.bytes.byteLength) {
      const grown = new Uint8Array(Math.max(needed, this.bytes.byteLength * 2));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.length;
    this.length = needed;
    return at;
  }

  u8(value: number): void { this.view.setUint8(this.reserve(1), value); }
  i8(value: number): void { this.view.setInt8(this.reserve(1), value); }
  u16(value: number): void { this.view.setUint16(this.reserve(2), value, true); }
  i16(value: number): void { this.view.setInt16(this.reserve(2), value, true); }
  u32(value: number): void { this.view.setUint32(this.reserve(4), value, true); }
  i32(value: number): void { this.view.setInt32(this.reserve(4), value, true); }
  f32(value: number): void { this.view.setFloat32(this.reserve(4), value, true); }
  f64(value: number): void { this.view.setFloat64(this.reserve(8), value, true); }
  u64(value: number | bigint): void { this.view.setBigUint64(this.reserve(8), BigInt(value), true); }
  i64(value: number | bigint): void { this.view.setBigInt64(this.reserve(8), BigInt(value), true); }

  string(value: string): void {
    const encoded = this.encoder.encode(value);
    this.u64(encoded.byteLength);
    this.bytes.set(encoded, this.reserve(encoded.byteLength));
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

function describeMismatch(key: string, type: number, value: GgufValue): Error {
  return new Error(`Metadata "${key}": value ${String(value)} does not match GGUF value type ${type}`);
}

function writeValue(builder: HeaderBuilder, key: string, type: number, value: GgufValue): void {
  const expectNumber = (): number => {
    if (typeof value !== "number") throw describeMismatch(key, type, value);
    return value;
  };
  switch (type) {
    case GgufValueType.UINT8: return builder.u8(expectNumber());
    case GgufValueType.INT8: return builder.i8(expectNumber());
    case GgufValueType.UINT16: return builder.u16(expectNumber());
    case GgufValueType.INT16: return builder.i16(expectNumber());
    case GgufValueType.UINT32: return builder.u32(expectNumber());
    case GgufValueType.INT32: return builder.i32(expectNumber());
    case GgufValueType.FLOAT32: return builder.f32(expectNumber());
    case GgufValueType.FLOAT64: return builder.f64(expectNumber());
    case GgufValueType.UINT64:
    case GgufValueType.INT64: {
      if (typeof value !== "bigint" && typeof value !== "number") throw describeMismatch(key, type, value);
      return type === GgufValueType.UINT64 ? builder.u64(value) : builder.i64(value);
    }
    case GgufValueType.BOOL: {
      if (typeof value !== "boolean") throw describeMismatch(key, type, value);
      return builder.u8(value ? 1 : 0);
    }
    case GgufValueType.STRING: {
      if (typeof value !== "string") throw describeMismatch(key, type, value);
      return builder.string(value);
    }
    case GgufValueType.ARRAY: {
      if (typeof value !== "object") throw describeMismatch(key, type, value);
      const array: GgufArrayValue = value;
      builder.u32(array.itemType);
      builder.u64(array.items.length);
      for (const item of array.items) writeValue(builder, key, array.itemType, item);
      return;
    }
    default:
      throw new Error(`Metadata "${key}": unknown GGUF value type ${type}`);
  }
}

function alignmentOf(metadata: readonly GgufMetadataEntry[]): number {
  const entry = metadata.find((candidate) => candidate.key === GGUF_ALIGNMENT_KEY);
  if (entry === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (typeof entry.value !== "number" || entry.value <= 0 || entry.value % 8 !== 0) {
    throw new Error(`${GGUF_ALIGNMENT_KEY} must be a positive multiple of 8, got ${String(entry.value)}`);
  }
  return entry.value;
}

/** Serializes the header and computes every tensor's offset and the final file size. */
export function planGgufLayout(metadata: readonly GgufMetadataEntry[], tensors: readonly TensorDescriptor[]): GgufLayout {
  const alignment = alignmentOf(metadata);
  const builder = new HeaderBuilder();
  builder.u32(GGUF_MAGIC);
  builder.u32(GGUF_VERSION);
  builder.u64(tensors.length);
  builder.u64(metadata.length);
  for (const entry of metadata) {
    builder.string(entry.key);
    builder.u32(entry.type);
    writeValue(builder, entry.key, entry.type, entry.value);
  }

  const tensorInfos: GgufTensorInfo[] = [];
  let dataLength = 0;
  for (const tensor of tensors) {
    const offset = alignUp(dataLength, alignment);
    tensorInfos.push({ name: tensor.name, dims: [...tensor.dims], type: tensor.type, offset });
    dataLength = offset + tensorByteSize(tensor.type, tensor.dims);
    builder.string(tensor.name);
    builder.u32(tensor.dims.length);
    for (const dim of tensor.dims) builder.u64(dim);
    builder.u32(tensor.type);
    builder.u64(offset);
  }

  const header = builder.finish();
  const dataOffset = alignUp(header.byteLength, alignment);
  return { header, tensorInfos, alignment, dataOffset, fileSize: dataOffset + dataLength };
}

/**
 * Streams a GGUF file to `outPath` (written beside it as `<outPath>.partial`, renamed when complete),
 * so memory use is bounded by the producers' chunk size. Returns the layout that was written.
 */
export async function writeGguf(
  outPath: string,
  metadata: readonly GgufMetadataEntry[],
  tensors: readonly TensorSource[],
): Promise<GgufLayout> {
  const layout = planGgufLayout(metadata, tensors);
  const partialPath = `${outPath}.partial`;
  const file = await open(partialPath, "w");
  let position = 0;
  const zeros = new Uint8Array(layout.alignment);
  const writeAll = async (bytes: Uint8Array): Promise<void> => {
    let written = 0;
    while (written < bytes.byteLength) {
      const result = await file.write(bytes, written, bytes.byteLength - written, position);
      written += result.bytesWritten;
      position += result.bytesWritten;
    }
  };
  const padTo = async (target: number): Promise<void> => {
    if (target > position) await writeAll(zeros.subarray(0, target - position));
  };

  try {
    await writeAll(layout.header);
    await padTo(layout.dataOffset);
    for (const [index, tensor] of tensors.entries()) {
      const info = layout.tensorInfos[index]!;
      const start = layout.dataOffset + info.offset;
      await padTo(start);
      const expectedBytes = tensorByteSize(tensor.type, tensor.dims);
      for (const chunk of tensor.chunks()) {
        if (position - start + chunk.byteLength > expectedBytes) {
          throw new Error(`Tensor ${tensor.name}: producer yielded more than its ${expectedBytes} bytes`);
        }
        await writeAll(chunk);
      }
      if (position - start !== expectedBytes) {
        throw new Error(`Tensor ${tensor.name}: producer yielded ${position - start} of ${expectedBytes} bytes`);
      }
    }
    await file.close();
  } catch (error) {
    await file.close().catch(() => undefined);
    await rm(partialPath, { force: true });
    throw error;
  }
  await rename(partialPath, outPath);
  return layout;
}
