// Applies one plan with the official MCP TypeScript SDK, as Claude Code does, asking for progress
// notifications; prints the apply's status and every notification received (progress, total).
// Usage: node progress.mjs DRYDOCK_BINARY CONFIG PLAN_ID
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [binary, config, planId] = process.argv.slice(2);
const transport = new StdioClientTransport({ command: binary, args: ["serve", "--config", config], stderr: "ignore" });
const client = new Client({ name: "ts-sdk-progress", version: "1.0.0" });
const notifications = [];
await client.connect(transport);
let status = null;
for (let i = 0; i < 10 && status !== "applied"; i++) {
  const r = await client.callTool({ name: "apply", arguments: { plan_id: planId } }, undefined, {
    onprogress: (p) => notifications.push({ call: i, progress: p.progress, total: p.total ?? null }),
    timeout: 120000,
  });
  status = r.structuredContent?.status ?? `error: ${r.content?.[0]?.text}`;
}
await client.close();
console.log(JSON.stringify({ status, notifications }));
