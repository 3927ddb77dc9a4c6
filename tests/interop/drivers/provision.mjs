// Provision a space the reference way, one step per run: `node provision.mjs '<json>'` prints one
// JSON line. The reference build is imported by absolute path from COTAL_REF.
//
// Steps ({"step": …}):
//   init    {dir, space, host, port, storeDir}  trust chain (createSpaceAuth), auth.json, server.conf;
//                                                 0.9.0: also <dir>/feedroot/.cotal/ (membership feed)
//   setup   {dir, server} | {open, server, space} setupSpaceStreams (privileged cred, or none)
//   mint    {dir, profile, name}                  mintCreds → <dir>/<name>.creds
//   agent   {dir, server, name, role?, subscribe?, allowSubscribe?, allowPublish?}
//                                                 provisionAgent through a privileged endpoint
//   acl     {dir, server, owner, allowSubscribe}  commitAcl (the durable read-ACL row)
//   channels {dir, server, file}                  seedChannelRegistry ({defaults?, channels?})
// The privileged cred is `manager` at 0.6.0 and `provisioner` at 0.9.0 (the manager profile is gone).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const REF = process.env.COTAL_REF;
if (!REF) {
  console.error("provision.mjs: COTAL_REF (absolute path of a reference build) is required");
  process.exit(2);
}
const core = await import(`${REF}/packages/core/dist/index.js`);
const HAS_MANAGER = !("mintMembershipObserverCreds" in core); // 0.6.0 still has the allow-all manager
const PRIV = HAS_MANAGER ? "manager" : "provisioner";

const a = JSON.parse(process.argv[2] ?? "{}");
const authPath = (dir) => join(dir, "auth.json");
const loadAuth = (dir) => JSON.parse(readFileSync(authPath(dir), "utf8"));
const write = (path, text) => writeFileSync(path, text, { mode: 0o600 });

async function mintTo(dir, auth, profile, name) {
  const identity = core.newIdentity();
  const creds = await core.mintCreds(auth, identity, profile);
  const path = join(dir, `${name}.creds`);
  write(path, creds);
  return { id: identity.id, creds: path };
}

async function privilegedEndpoint(dir, server, auth) {
  const priv = join(dir, `${PRIV}.creds`);
  const ep = new core.CotalEndpoint({
    space: auth.space, servers: server, creds: readFileSync(priv, "utf8"), channels: [],
    consume: false, registerPresence: false, watchPresence: false, watchChannels: false,
    card: { name: "provisioner", kind: "endpoint" },
  });
  ep.on("error", () => {});
  await ep.start();
  return ep;
}

const steps = {
  async init() {
    mkdirSync(a.dir, { recursive: true, mode: 0o700 });
    const auth = await core.createSpaceAuth(a.space);
    write(authPath(a.dir), JSON.stringify(auth));
    const conf = join(a.dir, "server.conf");
    write(conf, core.serverConfig(auth, { host: a.host ?? "127.0.0.1", port: a.port, storeDir: a.storeDir }));
    const priv = await mintTo(a.dir, auth, PRIV, PRIV);
    const delivery = await mintTo(a.dir, auth, "delivery", "delivery");
    // 0.9.0: the membership feed's two scoped creds and the account id, where its daemon looks
    // for them (`<root>/.cotal/`, written by the reference's `cotal up`): the observer is a
    // system-account user, mintable only now, while the fresh auth holds the $SYS signing seed.
    let feedRoot = null;
    if (!HAS_MANAGER) {
      feedRoot = join(a.dir, "feedroot");
      const dot = join(feedRoot, ".cotal");
      mkdirSync(dot, { recursive: true, mode: 0o700 });
      write(join(dot, "membership-observer.creds"), await core.mintMembershipObserverCreds(auth, core.newIdentity()));
      write(join(dot, "membership-rw.creds"), await core.mintCreds(auth, core.newIdentity(), "membership-rw"));
      write(join(dot, "membership.json"), JSON.stringify({ accountId: auth.account.pub }));
    }
    return { config: conf, privileged: priv, delivery, privilegedProfile: PRIV, account: auth.account.pub, feedRoot };
  },
  async setup() {
    if (a.open) { // open mode: a bare connection has the rights (`cotal up --open`)
      await core.setupSpaceStreams({ servers: a.server, space: a.space });
      return { space: a.space };
    }
    const auth = loadAuth(a.dir);
    await core.setupSpaceStreams({ servers: a.server, space: auth.space, creds: readFileSync(join(a.dir, `${PRIV}.creds`), "utf8") });
    return { space: auth.space };
  },
  async mint() {
    return mintTo(a.dir, loadAuth(a.dir), a.profile, a.name);
  },
  async channels() {
    const auth = loadAuth(a.dir);
    await core.seedChannelRegistry({ servers: a.server, space: auth.space, creds: readFileSync(join(a.dir, `${PRIV}.creds`), "utf8"), file: a.file });
    return { space: auth.space };
  },
  async acl() {
    const auth = loadAuth(a.dir);
    const ep = await privilegedEndpoint(a.dir, a.server, auth);
    try {
      await ep.commitAcl(a.owner, a.allowSubscribe);
      return { owner: a.owner };
    } finally {
      await ep.stop();
    }
  },
  async agent() {
    const auth = loadAuth(a.dir);
    const ep = await privilegedEndpoint(a.dir, a.server, auth);
    try {
      const identity = core.newIdentity();
      const opts = {};
      for (const k of ["role", "subscribe", "allowSubscribe", "allowPublish"]) if (a[k] !== undefined) opts[k] = a[k];
      const creds = await core.provisionAgent(ep, auth, identity, opts);
      const path = join(a.dir, `${a.name}.creds`);
      write(path, creds);
      return { id: identity.id, creds: path };
    } finally {
      await ep.stop();
    }
  },
};

try {
  const fn = steps[a.step];
  if (!fn) throw new Error(`unknown step ${a.step}`);
  console.log(JSON.stringify({ ok: true, data: await fn() }));
  process.exit(0);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }));
  process.exit(1);
}
