// The app's worker: the same Wasm module as the page, running nilstore-client.
import init, { worker_main } from "./nilstore_web.js";
await init();
worker_main();
