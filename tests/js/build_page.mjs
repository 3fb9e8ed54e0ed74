// Bundle form_page.jsx (React, react-jsonschema-form, AJV) into one file next to a page.
//
//   node build_page.mjs OUTDIR      -> OUTDIR/form_page.js and OUTDIR/form_page.html
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const outdir = process.argv[2];
if (!outdir) {
  console.error("usage: node build_page.mjs OUTDIR");
  process.exit(2);
}
mkdirSync(outdir, { recursive: true });
await esbuild.build({
  entryPoints: [fileURLToPath(new URL("form_page.jsx", import.meta.url))],
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2020",
  jsx: "automatic",
  minify: true,
  define: { "process.env.NODE_ENV": '"production"' },
  outfile: join(outdir, "form_page.js"),
  logLevel: "warning",
});
writeFileSync(join(outdir, "form_page.html"), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>lowcode form</title></head>
<body data-state="loading"><div id="app"></div><script src="form_page.js"></script></body></html>
`);
