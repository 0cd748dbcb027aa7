// A second FHIRPath opinion: evaluates the knowledge's named definitions and conditions with fhirpath.js (R4 model)
// on the base inputs of many patients, in one process (tests/test_second_opinion.py runs it once per test run).
//
// stdin, JSON:
//   {"definitions": [{"name", "expression"}, ...]   in evaluation order: each may read the ones before it
//    "conditions": ["FHIRPath", ...],
//    "memberships": {"<canonical JSON of a concept>": ["ValueSet url", ...]},   from the service's terminology
//    "patients": [{"<base input name>": value, ...}, ...]}
// stdout, JSON: [{"definitions": {"name": result}, "conditions": [result, ...]}, ...] per patient, where a result is
//   {"value": [...]} (internal types resolved to JSON) or {"error": "message"}.
//
// Each definition is evaluated here from its own FHIRPath text, over the base inputs and the definitions this
// engine evaluated before it (kept with their FHIRPath types, as a FHIRPath engine keeps its own variables).
import fhirpath from "fhirpath";
import r4 from "fhirpath/fhir-context/r4";

/** JSON with object keys sorted at every level: the key both engines compute for a concept. */
function canonical(value) {
  if (Array.isArray(value)) {
    return `[${value.map(canonical).join(",")}]`;
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (chunk) => chunks.push(chunk));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

function run(compiled, env) {
  try {
    return { raw: compiled({}, env) };
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
}

function result(outcome) {
  return outcome.error !== undefined ? { error: outcome.error } : { value: fhirpath.resolveInternalTypes(outcome.raw) };
}

const batch = JSON.parse(await readStdin());
const memberships = batch.memberships;
const memberOf = {
  fn: (inputs, url) => inputs.map((item) => (memberships[canonical(item)] ?? []).includes(url)),
  arity: { 1: ["String"] },
};
const options = { userInvocationTable: { memberOf } };
// Definitions keep their FHIRPath types (a dateTime stays a dateTime) for the expressions that read them.
const definitions = batch.definitions.map(({ name, expression }) => ({
  name,
  run: fhirpath.compile(expression, r4, { ...options, resolveInternalTypes: false }),
}));
const conditions = batch.conditions.map((expression) => fhirpath.compile(expression, r4, options));

const answers = batch.patients.map((inputs) => {
  const env = { ...inputs };
  const named = {};
  for (const { name, run: compiled } of definitions) {
    const outcome = run(compiled, env);
    env[name] = outcome.error !== undefined ? [] : outcome.raw;
    named[name] = result(outcome);
  }
  return { definitions: named, conditions: conditions.map((compiled) => result(run(compiled, env))) };
});
process.stdout.write(JSON.stringify(answers));
