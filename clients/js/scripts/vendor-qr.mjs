#!/usr/bin/env node
// Writes the QR encoder into the demo page: lean-qr (a dev dependency, pinned by the lockfile)
// as published, node_modules/lean-qr/index.mjs, with its MIT licence, between the page's
// "vendored: lean-qr" markers. Only its last statement changes, `export{e as generate,…};`
// becoming `return{generate:e,…};` inside a function, so that the library lives in the
// page's one inline module script (its Content-Security-Policy allows that script by its
// hash, and tollgate serves no other file but the client) without its names mixing with
// the page's. The page needs no network for it.
//
//   node scripts/vendor-qr.mjs           rewrite the block in demo/index.html
//   node scripts/vendor-qr.mjs --check   exit 1 unless the block is what it would write (ci.sh)
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const pagePath = join(root, "demo/index.html");
const pkgDir = join(root, "node_modules/lean-qr");
const BEGIN = "// --- vendored: lean-qr (begin) ---";
const END = "// --- vendored: lean-qr (end) ---";

const { version, license } = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
if (license !== "MIT") throw new Error(`lean-qr's licence is now ${license}: check it before vendoring`);
const licence = readFileSync(join(pkgDir, "LICENSE"), "utf8").trim();
const source = readFileSync(join(pkgDir, "index.mjs"), "utf8").trim();

const exported = /export\{([^}]*)\};?$/.exec(source);
if (!exported) throw new Error("lean-qr/index.mjs no longer ends with one export statement");
const members = exported[1].split(",").map((part) => {
  const [local, as] = part.trim().split(/\s+as\s+/);
  return `${as ?? local}:${local}`;
});
const code = `${source.slice(0, exported.index)}return{${members.join(",")}};`;
// The page's inline script ends at the first "</script"; tollgate's demo route (and its test)
// count the page's <script> and <style> elements and refuse style attributes.
for (const bad of ["</script", "<script", "<style", "<!--", " style="]) {
  if (code.toLowerCase().includes(bad)) throw new Error(`lean-qr's code contains ${JSON.stringify(bad)}: it cannot be inlined`);
}

const block = [
  BEGIN,
  `// lean-qr ${version} (https://github.com/davidje13/lean-qr), node_modules/lean-qr/index.mjs as`,
  "// published, its export statement made the function's return. Written by `npm run vendor:qr`",
  "// (scripts/vendor-qr.mjs), which ci.sh checks: do not edit it here.",
  ...licence.split("\n").map((line) => `// ${line}`.trimEnd()),
  "const leanQr = (() => {",
  code,
  "})();",
  END,
].join("\n");

const page = readFileSync(pagePath, "utf8");
const start = page.indexOf(BEGIN);
const end = page.indexOf(END);
if (start < 0 || end < start) throw new Error(`demo/index.html has no ${BEGIN} … ${END} block`);
const written = page.slice(0, start) + block + page.slice(end + END.length);

if (process.argv.includes("--check")) {
  if (written !== page) {
    console.error("demo/index.html's vendored lean-qr is not node_modules/lean-qr: run 'npm run vendor:qr' in clients/js and commit the page");
    process.exit(1);
  }
  console.log(`demo/index.html carries lean-qr ${version} as published`);
} else {
  writeFileSync(pagePath, written);
  console.log(`demo/index.html: lean-qr ${version} written`);
}
