// Generator of js-values.json: Automerge changes and saves made by JavaScript Automerge, holding
// every value type mindood maps (Counter, Text, bytes, Date, ints, floats, ...), with the values
// JavaScript reads back. Run under Node 20 with the path of @automerge/automerge 3.4.0:
//
//   node tests/data/interop/gen-js-values.mjs /work/ref/mindoodb/node_modules/@automerge/automerge
//
// It writes js-values.json next to itself. Actors and timestamps are fixed, so a rerun with the
// same Automerge reproduces the file byte for byte.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = process.argv[2] ?? "/work/ref/mindoodb/node_modules/@automerge/automerge";
const A = await import(pathToFileURL(path.join(root, "dist/mjs/entrypoints/fullfat_node.js")).href);
const version = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")).version;

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const at = { time: 0 }; // change options: a fixed timestamp

// A JSON form of a value as JavaScript reads it, tagged with its Automerge type.
function tagged(value) {
  if (value instanceof A.Counter) return { counter: value.value };
  if (value instanceof Uint8Array) return { bytes: b64(value) };
  if (value instanceof Date) return { timestamp_ms: value.getTime() };
  if (value === null) return null;
  if (Array.isArray(value)) return value.map((item) => tagged(item));
  if (typeof value === "string") return { text: value };
  if (typeof value === "boolean") return value;
  if (typeof value === "bigint") return { bigint: value.toString() }; // a Uint, or an Int of 2**53 - 1
  if (typeof value === "number") return Number.isInteger(value) ? { int: value } : { float: value };
  if (typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, tagged(value[k])]));
  }
  throw new Error(`unexpected value ${value}`);
}

// JavaScript reads an F64 holding a whole number as an integer; the document holds an F64.
function floatsAsStored(expected) {
  for (const key of ["float64_whole", "big_float"]) {
    if (expected[key]?.int !== undefined) expected[key] = { float: expected[key].int };
  }
  return expected;
}

function record(doc, extra = {}) {
  return {
    changes: A.getAllChanges(doc).map(b64),
    hashes: A.getAllChanges(doc).map((c) => A.decodeChange(c).hash),
    heads: A.getHeads(doc),
    save: b64(A.save(doc)),
    expected: floatsAsStored(tagged(doc)),
    ...extra,
  };
}

// 1. Every value type, one change, then a second change incrementing the counters.
let values = A.change(A.init({ actor: "0a0a0a0a0a0a0a0a" }), at, (d) => {
  d.counter = new A.Counter(5);
  d.negative_counter = new A.Counter(-3);
  d.text = "héllo wörld 😀";
  d.empty_text = "";
  d.bytes = new Uint8Array([0, 1, 127, 128, 255]);
  d.empty_bytes = new Uint8Array([]);
  d.date = new Date(1700000000123);
  d.old_date = new Date(-1000);
  d.int = 42;
  d.zero = 0;
  d.negative = -7;
  d.max_safe = Number.MAX_SAFE_INTEGER;
  d.min_safe = Number.MIN_SAFE_INTEGER;
  d.float = 1.5;
  d.small_float = -0.1;
  d.big_float = new A.Float64(1e300); // a plain 1e300 is a whole number: JS stores 2**63 - 1
  d.float64_whole = new A.Float64(3);
  d.int_wrapper = new A.Int(-12);
  d.uint = new A.Uint(9);
  d.true = true;
  d.false = false;
  d.null = null;
  d.list = [1, new A.Counter(10), "x", 2.25, new Uint8Array([9])];
  d.map = { nested: { counter: new A.Counter(0), text: "inner" } };
});
const beforeIncrement = A.getHeads(values);
values = A.change(values, at, (d) => {
  d.counter.increment(2);
  d.negative_counter.decrement(4);
  d.list[1].increment(-3);
  d.map.nested.counter.increment(100);
});

// 2. Concurrent increments of one counter by two actors, then merged.
const base = A.change(A.init({ actor: "0b0b0b0b0b0b0b0b" }), at, (d) => {
  d.hits = new A.Counter(10);
});
let left = A.clone(base, { actor: "0c0c0c0c0c0c0c0c" });
let right = A.clone(base, { actor: "0d0d0d0d0d0d0d0d" });
left = A.change(left, at, (d) => d.hits.increment(5));
left = A.change(left, at, (d) => d.hits.increment(1));
right = A.change(right, at, (d) => d.hits.increment(-2));
const merged = A.merge(left, right);

// 3. Single first changes that mindood must reproduce byte for byte (same actor, time 0).
// One JavaScript key per case, or keys written in sorted order: ops follow the order of writing.
const single = (name, fn) => {
  const doc = A.change(A.init({ actor: "0e0e0e0e0e0e0e0e" }), at, fn);
  const [change] = A.getAllChanges(doc);
  return { name, change: b64(change), hash: A.decodeChange(change).hash, expected: tagged(doc) };
};
const same = [
  single("counter", (d) => { d.c = new A.Counter(5); }),
  single("negative_counter", (d) => { d.c = new A.Counter(-300); }),
  single("list_of_counters", (d) => { d.l = [new A.Counter(1), 2, new A.Counter(3)]; }),
  single("nested_counter", (d) => { d.m = { n: { c: new A.Counter(0) } }; }),
  single("text", (d) => { d.t = "héllo"; }),
  single("scalars", (d) => {
    d.b = new Uint8Array([1, 2]); d.d = new Date(1700000000123); d.f = 1.5; d.i = 42;
    d.n = null; d.t = true;
  }),
];

const out = {
  automerge: version,
  values: record(values, {
    heads_before_increment: beforeIncrement,
    expected_before_increment: floatsAsStored(tagged(A.view(values, beforeIncrement))),
  }),
  concurrent: record(merged),
  same_change: same,
};
const file = path.join(path.dirname(fileURLToPath(import.meta.url)), "js-values.json");
fs.writeFileSync(file, JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${file}`);
