// AJV 8's verdicts on instances of JSON Schemas (draft 2020-12), for tests/browser.
//
//   node ajv_verdicts.mjs INPUT.json OUTPUT.json
//
// INPUT:  {"forms": [{"key": "customer", "schema": {...}, "instances": [{...}, ...]}, ...]}
// OUTPUT: {"ajv": "8.x.y", "forms": {"customer": {"compileError": null | "...",
//          "verdicts": [{"valid": true | false, "errors": [{"instancePath", "keyword", "message"}]}]}}}
//
// The validator is configured as a browser form would be: Ajv2020 with every error reported,
// unknown keywords (x-decimal, x-title, ...) ignored rather than refused, and ajv-formats
// asserting the formats the engine asserts (date, date-time, email, uri, ...). Numbers are
// whatever JSON.parse makes of them: plain doubles, as in a browser.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node ajv_verdicts.mjs INPUT.json OUTPUT.json");
  process.exit(2);
}
const request = JSON.parse(readFileSync(input, "utf8"));
const result = { ajv: createRequire(import.meta.url)("ajv/package.json").version, forms: {} };
for (const form of request.forms) {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats(ajv);
  let validate;
  try {
    validate = ajv.compile(form.schema);
  } catch (error) {
    result.forms[form.key] = { compileError: String(error && error.message || error), verdicts: [] };
    continue;
  }
  const verdicts = form.instances.map((instance) => {
    const valid = validate(instance);
    const errors = valid ? [] : (validate.errors || []).map((error) => ({
      instancePath: error.instancePath, keyword: error.keyword, message: error.message,
    }));
    return { valid: Boolean(valid), errors };
  });
  result.forms[form.key] = { compileError: null, verdicts };
}
writeFileSync(output, JSON.stringify(result));
