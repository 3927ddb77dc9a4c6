// The reference delivery daemon: `node delivery.mjs --space S --server URL [--creds F]`, i.e. the
// `cotal deliver` argument vector handed to runDelivery. COTAL_REF names the reference build.
const REF = process.env.COTAL_REF;
if (!REF) {
  console.error("delivery.mjs: COTAL_REF (absolute path of a reference build) is required");
  process.exit(2);
}
const { runDelivery } = await import(`${REF}/implementations/delivery/dist/index.js`);
try {
  await runDelivery(process.argv.slice(2));
} catch (e) {
  console.error(`✗ delivery driver: ${e?.message ?? e}`);
  process.exit(1);
}
