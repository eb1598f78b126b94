// The client builds into the API's package (host/api/static), which serves it at / and
// the bundles under /static/. Swagger UI's files are copied beside it for /docs, so no
// page of the API loads anything from another host.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { createRequire } from "node:module";
import type { Plugin } from "vite";
import { defineConfig } from "vitest/config";

const OUT = resolve(__dirname, "../host/api/static");
const SWAGGER_FILES = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"];

function swaggerUi(): Plugin {
  return {
    name: "t2t-swagger-ui",
    apply: "build",
    writeBundle() {
      const dist = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
      mkdirSync(join(OUT, "swagger"), { recursive: true });
      for (const f of SWAGGER_FILES) copyFileSync(join(dist, f), join(OUT, "swagger", f));
    },
  };
}

export default defineConfig({
  base: "/static/",
  build: { outDir: OUT, emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  plugins: [swaggerUi()],
  test: { include: ["test/**/*.test.ts"] },
});
