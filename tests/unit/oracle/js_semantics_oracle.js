// Test oracle: JavaScript string and number built-ins (trim, toLowerCase, JSON.stringify,
// String, Number, encode/decodeURIComponent) for the differential tests of cotal_tui.protocol.jsstr.
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(([fn, arg]) => {
  try {
    switch (fn) {
      case "trim": return arg.trim();
      case "token": { const t = arg.trim().replace(/[^A-Za-z0-9_-]/g, "_"); return t.length ? t : "_"; }
      case "lower": return arg.trim().toLowerCase();
      case "json": return JSON.stringify(arg);
      case "numstr": return String(arg);
      case "tonum": return String(Number(arg));
      case "dur": { const m = /^(\d+)(s|m|h|d)$/.exec(arg.trim()); return m ? String(Number(m[1]) * {s:1e3,m:6e4,h:36e5,d:864e5}[m[2]]) : "ERR"; }
      case "len": return arg.length;
      case "enc": return encodeURIComponent(arg);
      case "dec": return decodeURIComponent(arg);
    }
  } catch (e) { return "THROW:" + e.name; }
});
process.stdout.write(JSON.stringify(out));
