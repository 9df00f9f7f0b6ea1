#!/usr/bin/env python3
"""A stand-in for the demo backend's HTTP API with any number of accounts, for load.

    bench/load_backend.py --listen 127.0.0.1:28089 [--otp 246810] [--lookup-delay-ms MS]

`sspr-ivr demo`'s backend holds five fixture users and, like a real identity
provider, refuses a second code for a user inside its resend window, consumes
a code once verified and refuses a PIN that was used before. The stock sipp
scenario resets the same user (123456) with the same PIN in every call, so
against it only one call in a burst can complete a reset. This server speaks
the same API (config.example.yaml's action wiring) but treats every
employee ID as its own ACTIVE sms user with no cross-call state except the
audit list, so N concurrent calls of that scenario can each complete a reset:
  GET  /users/{employee_id}            -> 200 {userId, status, factor, mobile, email}
  POST /users/{user_id}/otp            -> 202
  POST /users/{user_id}/otp/verify     -> 200 {status: approved} for --otp, else 401
  POST /users/{user_id}/pin            -> 200, or 400 PIN_TOO_SIMPLE for one repeated digit
  POST /audit                          -> 201 stored | 200 duplicate (by Idempotency-Key)
  GET  /demo/audit                     -> the audit records received
--lookup-delay-ms makes every directory lookup answer that much later (a slow
directory: the flow's processing prompt `please_wait` then plays meanwhile).
Standard library only; binds loopback only.
"""
import argparse
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
AUDIT = []
AUDIT_KEYS = set()


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    otp = "246810"
    lookup_delay = 0.0

    def log_message(self, *a):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def do_GET(self):
        m = re.fullmatch(r"/users/([0-9]{1,10})", self.path)
        if m:
            if self.lookup_delay:
                time.sleep(self.lookup_delay)
            e = m.group(1)
            return self.reply(200, {"userId": f"u-{e}", "employeeId": e, "status": "ACTIVE",
                                    "factor": "sms", "mobile": "+1 555-010-0199",
                                    "email": f"user{e}@example.com"})
        if self.path == "/demo/audit":
            with LOCK:
                return self.reply(200, list(AUDIT))
        self.reply(404, {"error": "not_found"})

    def do_POST(self):
        b = self.body()
        if re.fullmatch(r"/users/[\w-]+/otp", self.path):
            return self.reply(202, {"status": "sent"})
        if re.fullmatch(r"/users/[\w-]+/otp/verify", self.path):
            if str(b.get("code")) == self.otp:
                return self.reply(200, {"status": "approved"})
            return self.reply(401, {"status": "pending"})
        if re.fullmatch(r"/users/[\w-]+/pin", self.path):
            pin = str(b.get("pin", ""))
            if len(set(pin)) <= 1:
                return self.reply(400, {"errorCode": "PIN_TOO_SIMPLE"})
            return self.reply(200, {"status": "changed"})
        if self.path == "/audit":
            key = self.headers.get("Idempotency-Key") or b.get("id")
            with LOCK:
                if key and key in AUDIT_KEYS:
                    return self.reply(200, {"status": "duplicate"})
                AUDIT_KEYS.add(key)
                AUDIT.append(b)
            return self.reply(201, {"status": "stored"})
        self.reply(404, {"error": "not_found"})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:28089")
    ap.add_argument("--otp", default="246810")
    ap.add_argument("--lookup-delay-ms", type=float, default=0.0)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loopback only")
    H.otp = a.otp
    H.lookup_delay = a.lookup_delay_ms / 1000.0
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 512
    ThreadingHTTPServer((host, int(port)), H).serve_forever()


if __name__ == "__main__":
    main()
