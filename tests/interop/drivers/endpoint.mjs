// A reference CotalEndpoint driven by JSON lines on stdin; events and replies as JSON lines on
// stdout. The reference build is imported by absolute path from COTAL_REF (never copied here).
//
// Commands: {"seq": n, "op": "<op>", ...args}; every command gets {"reply": n, "ok": true, "data": …}
// or {"reply": n, "ok": false, "error": "…"}. Events: {"event": "message"|"presence"|"error", …}.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const REF = process.env.COTAL_REF;
if (!REF) {
  console.error("endpoint.mjs: COTAL_REF (absolute path of a reference build) is required");
  process.exit(2);
}
const core = await import(`${REF}/packages/core/dist/index.js`);

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
let ep;

async function start(a) {
  const opts = {
    space: a.space,
    servers: a.server,
    card: { name: a.name, kind: a.kind ?? "agent", ...(a.role ? { role: a.role } : {}), ...(a.id ? { id: a.id } : {}) },
    channels: a.channels ?? [],
    registerPresence: a.registerPresence ?? true,
    watchPresence: a.watchPresence ?? true,
    consume: a.consume ?? true,
  };
  if (a.creds) opts.creds = readFileSync(a.creds, "utf8");
  if (a.heartbeatMs) opts.heartbeatMs = a.heartbeatMs;
  if (a.ttlMs) opts.ttlMs = a.ttlMs;
  if (a.watchChannels !== undefined) opts.watchChannels = a.watchChannels;
  ep = new core.CotalEndpoint(opts);
  ep.on("message", (msg, delivery, meta) => {
    out({ event: "message", msg, durable: !!delivery?.durable, historical: !!meta?.historical, kind: meta?.kind });
    // The connector acks when it surfaces a message; this driver surfaces it at once.
    try { delivery?.ack?.(); } catch { /* a live copy has nothing to ack */ }
  });
  ep.on("presence", (e) => out({ event: "presence", type: e.type, presence: e.presence }));
  ep.on("error", (e) => out({ event: "error", error: String(e?.message ?? e) }));
  await ep.start();
  return { id: ep.card.id };
}

// §5.9 per-channel health, as the connector computes it from the endpoint's public surface.
async function health() {
  let leaseLive = false, daemonKnown = false;
  try {
    const lease = await ep.readDeliveryLease(0);
    leaseLive = lease?.ready === true;
    daemonKnown = true;
  } catch { /* no health surface */ }
  const joined = new Set(ep.joinedChannels());
  const rows = {};
  for (const ch of joined) {
    let h;
    if (daemonKnown && ep.channelDeliveryClass(ch) === "durable")
      h = leaseLive && ep.hasDurableMembership(ch) ? "active" : "degraded";
    rows[ch] = h ?? null;
  }
  return { leaseLive, daemonKnown, channels: rows, pendingLeaves: ep.pendingDurableLeaves() };
}

const ops = {
  start,
  multicast: async (a) => (await ep.multicast(a.text, { channel: a.channel, ...(a.mentions ? { mentions: a.mentions } : {}) })).id,
  burst: async (a) => {
    const ids = [];
    for (let i = 0; i < a.count; i++) ids.push((await ep.multicast(`${a.prefix}${i}`, { channel: a.channel })).id);
    return ids.length;
  },
  unicast: async (a) => (await ep.unicast(a.to, a.text)).id,
  anycast: async (a) => (await ep.anycast(a.role, a.text)).id,
  join: async (a) => ep.joinChannel(a.channel),
  leave: async (a) => ep.leaveChannel(a.channel),
  joined: async () => ep.joinedChannels(),
  roster: async () => ep.getRoster(),
  lease: async () => (await ep.readDeliveryLease(0)) ?? null,
  health,
  // the private agent-side listMemberships request (§5.7): undefined ⇒ no responder
  memberships: async () => (await ep.fetchMemberships()) ?? null,
  status: async (a) => ep.setStatus(a.status),
  stop: async () => { await ep.stop(); return true; },
};

const rl = createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try { cmd = JSON.parse(line); } catch (e) { out({ event: "error", error: `bad command line: ${e.message}` }); return; }
  // Commands run one at a time, in order, so a test reads like a script.
  queue = queue.then(async () => {
    const fn = ops[cmd.op];
    if (!fn) return out({ reply: cmd.seq, ok: false, error: `unknown op ${cmd.op}` });
    try {
      const data = await fn(cmd);
      out({ reply: cmd.seq, ok: true, data: data === undefined ? null : data });
    } catch (e) {
      out({ reply: cmd.seq, ok: false, error: String(e?.message ?? e) });
    }
  });
});
rl.on("close", async () => {
  await queue;
  try { await ep?.stop(); } catch { /* best effort */ }
  process.exit(0);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, async () => {
  try { await ep?.stop(); } catch { /* best effort */ }
  process.exit(0);
});
