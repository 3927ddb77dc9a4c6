// Test oracle: Node's own WHATWG URL and decodeURIComponent, applied to the join-link rules of
// PROTOCOL.md §4.4. Reads a JSON-lines list of links on stdin; prints one result per link.
const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse);
const out = [];
for (const link of lines) {
  try {
    const tls = link.startsWith("cotals://");
    if (!tls && !link.startsWith("cotal://")) throw Object.assign(new Error("notlink"), {name: "NotLink"});
    const u = new URL(link.replace(/^cotals?:\/\//, tls ? "https://" : "http://"));
    const space = decodeURIComponent(u.pathname.replace(/^\/+/, "").split("/")[0] ?? "");
    if (!space) throw Object.assign(new Error("nospace"), {name: "NoSpace"});
    const ch = u.searchParams.get("channels") ?? u.searchParams.get("channel");
    const channels = ch ? ch.split(",").map((s) => s.trim()).filter(Boolean) : undefined;
    const user = u.username ? decodeURIComponent(u.username) : undefined;
    const pass = u.password ? decodeURIComponent(u.password) : undefined;
    out.push({ok: {servers: `nats://${u.hostname}:${u.port || "4222"}`, space, channels, tls,
      token: user && !pass ? user : undefined, user: pass ? user : undefined, pass: pass || undefined}});
  } catch (e) {
    out.push({err: e.name});
  }
}
process.stdout.write(JSON.stringify(out));
