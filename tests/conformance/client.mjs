// Drives a drydock server with the official MCP TypeScript SDK, as Claude Code and the MCP
// Inspector do: lists tools, prompts and resources, calls every tool (the SDK validates each
// success against the tool's output schema), and collects every refusal's code and fix.
// Usage: node client.mjs DRYDOCK_BINARY CONFIG (stdio), or node client.mjs --http URL TOKEN
// (the team server's streamable HTTP, with a bearer token) — prints one JSON report on stdout.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [first, second, third] = process.argv.slice(2);
const transport = first === "--http"
  ? new StreamableHTTPClientTransport(new URL(second), { requestInit: { headers: { Authorization: `Bearer ${third}` } } })
  : new StdioClientTransport({ command: first, args: ["serve", "--config", second], stderr: "ignore" });
const client = new Client({ name: "ts-sdk-conformance", version: "1.0.0" });
const report = { tools: [], schemaProblems: [], calls: {}, refusals: {}, prompts: [], resources: [], templates: [] };

const STANDARD_FORMATS = new Set(["date-time", "date", "time", "duration", "email", "idn-email", "hostname",
  "idn-hostname", "ipv4", "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "uri-template",
  "json-pointer", "relative-json-pointer", "regex"]);

// What the spec demands of every schema: properties are objects, no Rust-only formats, optional
// inputs not typed as [X, "null"], and no untyped property except a dynamic object.
function inspectSchema(where, schema, input) {
  if (schema === null || typeof schema !== "object") return;
  if (schema.format && !STANDARD_FORMATS.has(schema.format)) report.schemaProblems.push(`${where}: format ${schema.format}`);
  if (input && Array.isArray(schema.type)) report.schemaProblems.push(`${where}: type ${JSON.stringify(schema.type)}`);
  for (const key of ["properties", "$defs"]) {
    for (const [name, sub] of Object.entries(schema[key] ?? {})) {
      if (typeof sub !== "object") report.schemaProblems.push(`${where}.${name}: schema is ${JSON.stringify(sub)}`);
      else if (Object.keys(sub).filter((k) => k !== "description" && k !== "default" && k !== "title").length === 0)
        report.schemaProblems.push(`${where}.${name}: untyped`);
      inspectSchema(`${where}.${name}`, sub, input);
    }
  }
  if (schema.items) inspectSchema(`${where}[]`, schema.items, input);
  for (const key of ["anyOf", "oneOf", "allOf"]) (schema[key] ?? []).forEach((s, i) => inspectSchema(`${where}/${key}${i}`, s, input));
  if (typeof schema.additionalProperties === "object") inspectSchema(`${where}{}`, schema.additionalProperties, input);
}

async function call(name, args) {
  try {
    const r = await client.callTool({ name, arguments: args });
    if (r.isError) {
      const text = r.content.find((c) => c.type === "text")?.text ?? "";
      let body;
      try { body = JSON.parse(text); } catch { body = { unparsed: text }; }
      report.refusals[`${name}`] = { code: body.code, message: body.message, fix: body.fix, structured: r.structuredContent !== undefined };
      return null;
    }
    report.calls[name] = "ok";
    return r.structuredContent;
  } catch (e) {
    report.calls[name] = `threw: ${e.message}`;
    return null;
  }
}

await client.connect(transport);
try {
  const { tools } = await client.listTools();
  for (const t of tools) {
    report.tools.push({ name: t.name, title: t.title ?? null, annotations: t.annotations ?? null, output: !!t.outputSchema });
    inspectSchema(`${t.name}.input`, t.inputSchema, true);
    inspectSchema(`${t.name}.output`, t.outputSchema, false);
  }
} catch (e) {
  report.listToolsError = e.message;
}

await call("render-template", {});
await call("inspect", { target: "production" });
const planned = await call("plan", {
  goal: "store each user's plan tier", target: "production",
  steps: [{ name: "add-tier", up: "ALTER TABLE users ADD COLUMN tier TEXT DEFAULT 'free'", down: "ALTER TABLE users DROP COLUMN tier" }],
  checks: [{ name: "tier-filled", sql: "SELECT count(*) = 0 FROM users WHERE tier IS NULL", expect: "true" }],
});
const id = planned?.plan_id;
report.planId = id ?? null;
await call("apply", { plan_id: id });            // refused: checklist-unmet
await call("validate", { plan_id: id });         // refused: not applied
await call("rollback", { plan_id: id, reason: "" }); // refused: a reason is needed
await call("dry-run", { plan_id: id });
await call("status", { plan_id: id });
await call("record-mistake", { what: "tried to apply before a dry-run", lesson: "dry-run first", plan_id: id });
// The schema as wanted (the quick start's SQLite default): SQLite reads it, drydock plans it.
const wanted = await client.callTool({ name: "plan", arguments: {
  goal: "keep plan tiers", target: "production",
  desired: "CREATE TABLE tiers (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\nCREATE INDEX tiers_name ON tiers (lower(name));",
} });
report.calls["plan desired"] = wanted.isError ? wanted.content[0]?.text : wanted.structuredContent?.source;
const rendered = await client.callTool({ name: "render-template", arguments: { template: "add-column", params: { table: "users", column: "nickname", type: "text" } } });
report.calls["render-template add-column"] = rendered.isError ? rendered.content[0]?.text : "ok";

for (const p of (await client.listPrompts()).prompts) {
  const args = p.name === "database-migration-review" ? { plan_id: id } : {};
  const got = await client.getPrompt({ name: p.name, arguments: args });
  report.prompts.push({ name: p.name, messages: got.messages.length });
}
for (const r of (await client.listResources()).resources) {
  const got = await client.readResource({ uri: r.uri });
  report.resources.push({ uri: r.uri, contents: got.contents.length });
}
for (const t of (await client.listResourceTemplates()).resourceTemplates) report.templates.push(t.uriTemplate);
const plan = await client.readResource({ uri: `drydock://plans/${id}` });
report.resources.push({ uri: "drydock://plans/{id}", contents: plan.contents.length });

await client.close();
console.log(JSON.stringify(report));
