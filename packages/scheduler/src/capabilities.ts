/**
 * Interned capability bitmasks.
 *
 * Every distinct capability string gets a bit index (0, 1, 2, … in the order first seen). A set of
 * capabilities is then a `Uint32Array` of words where bit `i % 32` of word `i >>> 5` is set when the
 * capability with index `i` is in the set. "Agent A covers task T" becomes, for every word `w`,
 * `(T[w] & ~A[w]) === 0`: one AND-NOT per 32 capabilities instead of a string-set comparison.
 *
 * Masks made before the index grew are shorter than masks made after; every function here treats
 * missing words as zero, so old and new masks can be compared freely.
 */
export class CapabilityIndex {
  readonly #bits = new Map<string, number>();
  readonly #names: string[] = [];

  /** Creates an index, interning `capabilities` in iteration order (bit 0 is the first). */
  constructor(capabilities: Iterable<string> = []) {
    for (const capability of capabilities) this.intern(capability);
  }

  /** How many distinct capabilities have been interned. */
  get size(): number {
    return this.#names.length;
  }

  /** Words a mask needs to hold every interned capability: `ceil(size / 32)`, at least 1. */
  get wordCount(): number {
    return Math.max(1, Math.ceil(this.#names.length / 32));
  }

  /** The bit index of `capability`, or `undefined` when it was never interned. */
  bitOf(capability: string): number | undefined {
    return this.#bits.get(capability);
  }

  /** The bit index of `capability`, interning it (as the next index) when it is new. */
  intern(capability: string): number {
    let bit = this.#bits.get(capability);
    if (bit === undefined) {
      bit = this.#names.length;
      this.#bits.set(capability, bit);
      this.#names.push(capability);
    }
    return bit;
  }

  /** The capability string of bit index `bit`, or `undefined` when no such bit was interned. */
  nameOf(bit: number): string | undefined {
    return this.#names[bit];
  }

  /**
   * The mask of `capabilities`, interning the new ones. The mask has `wordCount` words (as of after
   * interning), so it can hold every capability known so far. Duplicates are harmless.
   */
  encode(capabilities: Iterable<string>): Uint32Array {
    const bits: number[] = [];
    for (const capability of capabilities) bits.push(this.intern(capability));
    const mask = new Uint32Array(this.wordCount);
    for (const bit of bits) setBit(mask, bit);
    return mask;
  }

  /**
   * The mask of the interned members of `capabilities` without interning anything; the members
   * that are not interned come back in `unknown` (deduplicated, in input order). A set with unknown
   * members cannot be covered by any mask made from this index.
   */
  encodeKnown(capabilities: Iterable<string>): { mask: Uint32Array; unknown: string[] } {
    const mask = new Uint32Array(this.wordCount);
    const unknown: string[] = [];
    for (const capability of capabilities) {
      const bit = this.#bits.get(capability);
      if (bit === undefined) {
        if (!unknown.includes(capability)) unknown.push(capability);
      } else {
        setBit(mask, bit);
      }
    }
    return { mask, unknown };
  }

  /** The capability strings whose bits are set in `mask`, sorted (code-unit order). */
  decode(mask: Uint32Array): string[] {
    const out: string[] = [];
    for (let word = 0; word < mask.length; word++) {
      let bits = mask[word] ?? 0;
      while (bits !== 0) {
        const low = bits & -bits;
        const bit = word * 32 + (31 - Math.clz32(low));
        const name = this.#names[bit];
        if (name !== undefined) out.push(name);
        bits ^= low;
      }
    }
    return out.sort(compareCodeUnits);
  }
}

/** Sets bit `bit` in `mask` (which must have at least `(bit >>> 5) + 1` words). */
function setBit(mask: Uint32Array, bit: number): void {
  const word = bit >>> 5;
  mask[word] = (mask[word] ?? 0) | (1 << (bit & 31));
}

/**
 * Whether `provided` has every bit of `required`: for each word, `(required & ~provided) === 0`.
 * Words missing from the shorter mask count as zero.
 */
export function coversMask(required: Uint32Array, provided: Uint32Array): boolean {
  for (let word = 0; word < required.length; word++) {
    const need = required[word] ?? 0;
    if (need !== 0 && (need & ~(provided[word] ?? 0)) !== 0) return false;
  }
  return true;
}

/**
 * A string key identifying the set in `mask` (trailing zero words ignored), for grouping equal
 * masks in a `Map`.
 */
export function maskKey(mask: Uint32Array): string {
  let end = mask.length;
  while (end > 0 && mask[end - 1] === 0) end--;
  let key = '';
  for (let word = 0; word < end; word++) key += (mask[word] ?? 0).toString(36) + '.';
  return key;
}

/** Compares strings by UTF-16 code units (locale-independent, hence deterministic). */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
