// Upload one file to a tus endpoint with tus-js-client (Node) and its default retry rules;
// print one JSON line.
// node upload.mjs ENDPOINT TOKEN FILE METADATA_JSON CHUNK_SIZE
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, token, file, metadata, chunkSize] = process.argv.slice(2);
const data = readFileSync(file);
const upload = new tus.Upload(data, {
  endpoint,
  chunkSize: Number(chunkSize),
  retryDelays: [0, 100, 300, 600, 1000, 1000, 1000, 1000],
  headers: { Authorization: `Bearer ${token}` },
  metadata: JSON.parse(metadata),
  storeFingerprintForResuming: false,
  onError(err) {
    const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
    const body = err.originalResponse ? err.originalResponse.getBody() : "";
    console.log(JSON.stringify({ ok: false, status, body }));
    process.exit(0);
  },
  onSuccess() {
    console.log(JSON.stringify({ ok: true, url: upload.url }));
    process.exit(0);
  },
});
upload.start();
