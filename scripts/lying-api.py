#!/usr/bin/env python3
"""A validator API that lies, for the browser tests (scripts/browser-client.sh).

Forwards every GET to the real API (argv[1], e.g. http://127.0.0.1:PORT) and answers it
with the same status and body, except that every header it serves (`/headers/H`) has its
state root rewritten: a light client that checks certificates must refuse it. Listens on
127.0.0.1 on a free port and prints that port on its first line of stdout. Answers CORS
like the real API (any origin, no credentials).
"""
import http.server
import json
import sys
import urllib.error
import urllib.request

UPSTREAM = sys.argv[1].rstrip("/")


def lie(body: bytes) -> bytes:
    v = json.loads(body)
    root = v.get("header", {}).get("state_root")
    if isinstance(root, str) and root:
        flipped = "0" if root[-1] != "0" else "1"
        v["header"]["state_root"] = root[:-1] + flipped
    return json.dumps(v).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def cors(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "content-type")

    def do_OPTIONS(self):
        self.send_response(204)
        self.cors()
        self.end_headers()

    def do_GET(self):
        try:
            with urllib.request.urlopen(UPSTREAM + self.path, timeout=10) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        except OSError as e:
            status, body = 502, str(e).encode()
        if status == 200 and self.path.startswith("/headers/"):
            body = lie(body)
        self.send_response(status)
        self.cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
