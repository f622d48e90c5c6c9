// HPACK's Huffman code (RFC 7541, Appendix B) and its decoder.
//
// The code is canonical: sorting the 257 symbols (256 octets and EOS) by
// (code length, symbol) and counting upward gives every code, so the code
// lengths are the whole table.

/** Code length in bits of each symbol 0..256 (256 is EOS). */
const CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const MAX_LENGTH = 30;

/** For each length: the first code of that length, how many there are, and where they start in SYMBOLS. */
const firstCode = new Array<number>(MAX_LENGTH + 2).fill(0);
const countOf = new Array<number>(MAX_LENGTH + 2).fill(0);
const offsetOf = new Array<number>(MAX_LENGTH + 2).fill(0);
const SYMBOLS: number[] = [];

(function build() {
  for (let s = 0; s <= EOS; s++) countOf[CODE_LENGTHS[s]!]!++;
  for (let len = 1; len <= MAX_LENGTH; len++) {
    for (let s = 0; s <= EOS; s++) if (CODE_LENGTHS[s] === len) SYMBOLS.push(s);
  }
  let code = 0;
  let offset = 0;
  for (let len = 1; len <= MAX_LENGTH; len++) {
    code = (code + countOf[len - 1]!) << 1;
    firstCode[len] = code;
    offsetOf[len] = offset;
    offset += countOf[len]!;
  }
})();

export class HuffmanError extends Error {}

/** Decode a Huffman-coded HPACK string into its octets. */
export function huffmanDecode(input: Uint8Array): Uint8Array {
  const out: number[] = [];
  let code = 0;
  let len = 0;
  let allOnes = true; // the bits since the last symbol: only a prefix of EOS (all ones) may pad
  for (let i = 0; i < input.length; i++) {
    const byte = input[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      code = (code << 1) | b;
      len++;
      allOnes &&= b === 1;
      const index = code - firstCode[len]!;
      if (index >= 0 && index < countOf[len]!) {
        const sym = SYMBOLS[offsetOf[len]! + index]!;
        if (sym === EOS) throw new HuffmanError("EOS symbol inside a Huffman-coded string");
        out.push(sym);
        code = 0;
        len = 0;
        allOnes = true;
      } else if (len >= MAX_LENGTH) {
        throw new HuffmanError("invalid Huffman code");
      }
    }
  }
  if (len > 7 || !allOnes) throw new HuffmanError("Huffman padding is longer than 7 bits or not a prefix of EOS");
  return Uint8Array.from(out);
}
