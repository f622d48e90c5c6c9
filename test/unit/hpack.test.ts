// HPACK decoder and literal encoder (src/h2/hpack.ts) and the Huffman decoder,
// against RFC 7541 Appendix C and malformed input.
import { describe, expect, test } from "bun:test";
import { encodeLiterals, HpackDecoder, HpackError, type HeaderField } from "../../src/h2/hpack.ts";
import { huffmanDecode, HuffmanError } from "../../src/h2/huffman.ts";

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ""), "hex"));
const pairs = (fields: HeaderField[]): [string, string][] => fields.map((f) => [f.name, f.value]);

interface Step {
  block: string;
  headers: [string, string][];
  table: [string, string][];
  size: number;
}

/** Decode each block in turn on one decoder; check headers, table contents and size after each. */
function run(steps: Step[], decoder = new HpackDecoder()): void {
  for (const [i, s] of steps.entries()) {
    const { fields } = decoder.decode(hex(s.block));
    expect({ step: i, headers: pairs(fields) }).toEqual({ step: i, headers: s.headers });
    const t = decoder.table;
    expect({ step: i, table: t.entries.map(([n, v]) => [n, v]), size: t.size }).toEqual({ step: i, table: s.table, size: s.size });
  }
}

describe("RFC 7541 C.2: header field representations", () => {
  test("C.2.1 literal with indexing", () => {
    run([
      {
        block: "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        headers: [["custom-key", "custom-header"]],
        table: [["custom-key", "custom-header"]],
        size: 55,
      },
    ]);
  });
  test("C.2.2 literal without indexing", () => {
    run([{ block: "040c 2f73 616d 706c 652f 7061 7468", headers: [[":path", "/sample/path"]], table: [], size: 0 }]);
  });
  test("C.2.3 literal never indexed is marked sensitive", () => {
    const d = new HpackDecoder();
    const { fields } = d.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74"));
    expect(fields).toEqual([{ name: "password", value: "secret", sensitive: true }]);
    expect(d.table.size).toBe(0);
  });
  test("C.2.4 indexed", () => {
    run([{ block: "82", headers: [[":method", "GET"]], table: [], size: 0 }]);
  });
});

const requests = (blocks: [string, string, string]): Step[] => [
  {
    block: blocks[0],
    headers: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"]],
    table: [[":authority", "www.example.com"]],
    size: 57,
  },
  {
    block: blocks[1],
    headers: [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "www.example.com"], ["cache-control", "no-cache"]],
    table: [["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 110,
  },
  {
    block: blocks[2],
    headers: [[":method", "GET"], [":scheme", "https"], [":path", "/index.html"], [":authority", "www.example.com"], ["custom-key", "custom-value"]],
    table: [["custom-key", "custom-value"], ["cache-control", "no-cache"], [":authority", "www.example.com"]],
    size: 164,
  },
];

test("RFC 7541 C.3: requests without Huffman coding", () => {
  run(requests(["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", "8286 84be 5808 6e6f 2d63 6163 6865", "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"]));
});

test("RFC 7541 C.4: requests with Huffman coding", () => {
  run(requests(["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", "8286 84be 5886 a8eb 1064 9cbf", "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"]));
});

const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const responses = (blocks: [string, string, string]): Step[] => [
  {
    block: blocks[0],
    headers: [[":status", "302"], ["cache-control", "private"], ["date", DATE1], ["location", LOC]],
    table: [["location", LOC], ["date", DATE1], ["cache-control", "private"], [":status", "302"]],
    size: 222,
  },
  {
    block: blocks[1],
    headers: [[":status", "307"], ["cache-control", "private"], ["date", DATE1], ["location", LOC]],
    table: [[":status", "307"], ["location", LOC], ["date", DATE1], ["cache-control", "private"]], // ":status: 302" evicted
    size: 222,
  },
  {
    block: blocks[2],
    headers: [[":status", "200"], ["cache-control", "private"], ["date", DATE2], ["location", LOC], ["content-encoding", "gzip"], ["set-cookie", COOKIE]],
    table: [["set-cookie", COOKIE], ["content-encoding", "gzip"], ["date", DATE2]], // four evicted
    size: 215,
  },
];

/** The examples' table holds 256 octets: an encoder says so with a size update (001 11111, 225). */
const TO_256 = "3fe101";

test("RFC 7541 C.5: responses without Huffman coding, eviction in a 256-octet table", () => {
  const d = new HpackDecoder();
  expect(d.decode(hex(TO_256)).sizeUpdates).toEqual([256]);
  expect(d.table.maxSize).toBe(256);
  run(
    responses([
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ]),
    d,
  );
});

test("RFC 7541 C.6: responses with Huffman coding, eviction in a 256-octet table", () => {
  const d = new HpackDecoder();
  d.decode(hex(TO_256));
  run(
    responses([
      "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]),
    d,
  );
});

describe("dynamic table size updates", () => {
  test("shrinking evicts oldest first; zero empties; growing again keeps it empty", () => {
    const d = new HpackDecoder();
    d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")); // 55 octets
    d.decode(hex("4003 6162 6301 78")); // "abc: x", 36 octets
    expect(d.table.size).toBe(91);
    expect(d.decode(hex("3f11")).sizeUpdates).toEqual([48]); // 31 + 17: only "abc: x" fits
    expect(d.table.entries).toEqual([["abc", "x"]]);
    expect(d.decode(hex("20 3fe11f")).sizeUpdates).toEqual([0, 4096]);
    expect(d.table).toEqual({ entries: [], size: 0, maxSize: 4096 });
  });
  test("two updates at the start of a block are both reported, in order", () => {
    const b = new HpackDecoder().decode(hex("20 3fe11f 82"));
    expect(b.sizeUpdates).toEqual([0, 4096]);
    expect(pairs(b.fields)).toEqual([[":method", "GET"]]);
  });
  test("an index into the emptied table is an error", () => {
    const d = new HpackDecoder();
    d.decode(hex("4003 6162 6301 78"));
    expect(pairs(d.decode(hex("be")).fields)).toEqual([["abc", "x"]]);
    d.decode(hex("20"));
    expect(() => d.decode(hex("be"))).toThrow(HpackError);
  });
  test("an update after a field is an error", () => {
    expect(() => new HpackDecoder().decode(hex("82 20"))).toThrow(HpackError);
  });
  test("an update beyond the memory bound is an error", () => {
    expect(() => new HpackDecoder().decode(hex("3fe1ffff7f"))).toThrow(HpackError);
  });
  test("an entry larger than the whole table empties it", () => {
    const d = new HpackDecoder();
    d.decode(hex("3f11")); // 48
    d.decode(hex("4003 6162 6301 78")); // 36: fits
    d.decode(hex("4003 6465 6610 " + "61".repeat(16))); // 3 + 16 + 32 = 51 > 48
    expect(d.table).toEqual({ entries: [], size: 0, maxSize: 48 });
  });
});

describe("malformed blocks are HpackError, never another exception or a hang", () => {
  const bad: [string, string][] = [
    ["index 0", "80"],
    ["index past the tables", "be"],
    ["index far past the tables", "ff ff 03"],
    ["integer with too many octets of zero", "ff " + "80".repeat(200) + "00"],
    ["string length with too many octets of zero", "00 7f " + "80".repeat(200) + "00"],
    ["size update with too many octets of zero", "3f " + "80".repeat(200) + "00"],
    ["integer over 2^28", "ff ff ff ff ff 0f"],
    ["integer cut short", "ff ff"],
    ["field cut after its first octet", "40"],
    ["name cut short", "40 05 6162"],
    ["value missing", "40 03 616263"],
    ["value cut short", "40 03 616263 05 78"],
    ["Huffman value with bad padding", "04 81 00"],
    ["Huffman value containing EOS", "04 84 ffffffff"],
  ];
  for (const [what, block] of bad) {
    test(what, () => {
      expect(() => new HpackDecoder().decode(hex(block))).toThrow(HpackError);
    });
  }
});

describe("Huffman decoder", () => {
  test("RFC 7541 C.4.1's string", () => {
    expect(Buffer.from(huffmanDecode(hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"))).toString("latin1")).toBe("www.example.com");
  });
  test("empty input is the empty string", () => {
    expect(huffmanDecode(new Uint8Array()).length).toBe(0);
  });
  test("padding of up to 7 one bits is accepted", () => {
    expect(Buffer.from(huffmanDecode(hex("1f"))).toString()).toBe("a"); // 00011 + 111
  });
  test("padding that is not all ones is an error", () => {
    expect(() => huffmanDecode(hex("18"))).toThrow(HuffmanError); // 00011 + 000
  });
  test("padding longer than 7 bits is an error", () => {
    expect(() => huffmanDecode(hex("ff"))).toThrow(HuffmanError);
    expect(() => huffmanDecode(hex("1fff"))).toThrow(HuffmanError); // "a", then 11 one bits
  });
  test("an EOS symbol inside the string is an error", () => {
    expect(() => huffmanDecode(hex("ffff fffc"))).toThrow(HuffmanError); // EOS (30 ones) + "00"
    expect(() => huffmanDecode(hex("ffff ffff"))).toThrow(HuffmanError); // EOS + padding
  });
  test("RFC 7541 C.6.1's date string", () => {
    expect(Buffer.from(huffmanDecode(hex("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"))).toString()).toBe(DATE1);
  });
});

describe("literal encoder", () => {
  test("round-trips through a fresh decoder without touching its table, sensitive flags kept", () => {
    const fields: HeaderField[] = [
      { name: ":method", value: "POST", sensitive: false },
      { name: ":authority", value: "localhost", sensitive: false },
      { name: "x-custom", value: "v\u00ff\u0000", sensitive: false },
      { name: "authorization", value: "secret", sensitive: true },
      { name: "x-long", value: "z".repeat(70_000), sensitive: false },
    ];
    const d = new HpackDecoder();
    const out = d.decode(encodeLiterals(fields, [100, 4096]));
    expect(out.fields).toEqual(fields);
    expect(out.sizeUpdates).toEqual([100, 4096]);
    expect(d.table.size).toBe(0);
  });
  test("uses the static table's index for a known name", () => {
    expect(Array.from(encodeLiterals([{ name: ":path", value: "/", sensitive: false }]))).toEqual([0x04, 0x01, 0x2f]);
  });
});
