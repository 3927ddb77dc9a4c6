// Resolve `@cotal-ai/<pkg>` inside the reference build to its dist entry point.
//
// The shared reference folders ship their workspace links (`node_modules/@cotal-ai/core`, …) as
// plain text files holding the link target, not as symlinks, so Node cannot resolve the delivery
// daemon's own `import … from "@cotal-ai/core"`. This hook maps those bare specifiers to the
// folder's `packages/<pkg>/dist/index.js` (`implementations/delivery/…` for delivery), nothing
// else. Loaded with `node --import ./ref-resolve.mjs`; COTAL_REF names the build.
import { register } from "node:module";
import { pathToFileURL } from "node:url";

const REF = process.env.COTAL_REF;
if (REF) {
  const entries = {
    core: `${REF}/packages/core/dist/index.js`,
    workspace: `${REF}/packages/workspace/dist/index.js`,
    delivery: `${REF}/implementations/delivery/dist/index.js`,
  };
  const map = Object.fromEntries(
    Object.entries(entries).map(([k, v]) => [`@cotal-ai/${k}`, pathToFileURL(v).href]),
  );
  const hooks = `
    const map = ${JSON.stringify(map)};
    export async function resolve(specifier, context, next) {
      if (Object.hasOwn(map, specifier)) return { url: map[specifier], shortCircuit: true };
      return next(specifier, context);
    }`;
  register(`data:text/javascript,${encodeURIComponent(hooks)}`);
}
