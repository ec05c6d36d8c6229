// Taint masks: 64-bit sets of label bits, held as BigInt so bit 63 is an
// ordinary bit. Cedar sees them twice: as label names (`context.taint`) and as
// the signed 64-bit Long `context.data_touched`.

/** Label name → bit, from lilith.json `taint_labels`. */
export type LabelTable = Readonly<Record<string, number>>;

const MASK64 = (1n << 64n) - 1n;

export function labelsToMask(labels: Iterable<string>, table: LabelTable): bigint {
  let mask = 0n;
  for (const label of labels) {
    const bit = table[label];
    if (bit === undefined) throw new Error(`unknown taint label '${label}'`);
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** Label names whose bits are set, in table order. Bits without a label are not named. */
export function maskToLabels(mask: bigint, table: LabelTable): string[] {
  const out: string[] = [];
  for (const [label, bit] of Object.entries(table)) if ((mask >> BigInt(bit)) & 1n) out.push(label);
  return out;
}

const labelMemo = new WeakMap<LabelTable, Map<bigint, readonly string[]>>();

/**
 * maskToLabels, remembered per label table: an agent's mask takes few distinct
 * values, and every decision needs it. The array is frozen because it is shared.
 */
export function maskLabels(mask: bigint, table: LabelTable): readonly string[] {
  let memo = labelMemo.get(table);
  if (memo === undefined) labelMemo.set(table, (memo = new Map()));
  let labels = memo.get(mask);
  if (labels === undefined) {
    labels = Object.freeze(maskToLabels(mask, table));
    if (memo.size < 4096) memo.set(mask, labels);
  }
  return labels;
}

const hexMemo = new Map<bigint, string>();

/** "0x" + 16 hex digits: the audit form. */
export function maskHex(mask: bigint): string {
  let hex = hexMemo.get(mask);
  if (hex === undefined) {
    hex = '0x' + (mask & MASK64).toString(16).padStart(16, '0');
    if (hexMemo.size < 4096) hexMemo.set(mask, hex);
  }
  return hex;
}

export function parseMaskHex(text: string): bigint {
  if (!/^0x[0-9a-fA-F]{1,16}$/.test(text)) throw new Error(`not a 64-bit hex mask: '${text}'`);
  return BigInt(text);
}

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The mask as Cedar's signed 64-bit Long (bit 63 set → negative), exact: a number
 * while a double carries it, a BigInt beyond ±(2^53 − 1) — the engines' canonical
 * Long form (cedar/fast takes both; cedar/wasm-authorizer hands BigInts to cedar-wasm
 * as exact digits). A rounded mask would let `data_touched == C` decide differently
 * from the labels the session carries.
 */
export function maskToLong(mask: bigint): number | bigint {
  const v = BigInt.asIntN(64, mask & MASK64);
  return v >= -SAFE && v <= SAFE ? Number(v) : v;
}
