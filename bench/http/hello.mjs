// The page every server of the HTTP benchmark answers GET / with: asyncore-http's hello page
// (served without --root), byte for byte, so that wrk compares servers, not payloads.
// bench/http/run.mjs checks each server's body against it before measuring.
export const HELLO =
  '<!doctype html>\n<title>asyncore-http</title>\n<h1>Hello from asyncore-http</h1>\n' +
  '<p>An HTTP/1.1 server on AsyncChat. Start it with --root DIR to serve files.</p>\n';
