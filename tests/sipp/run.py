#!/usr/bin/env python3
"""Run one sipp scenario against a demo in a known state and judge the outcome.

usage: tests/sipp/run.sh SCENARIO [SCENARIO ...]

SCENARIO is a file in tests/sipp (`sspr_reset_rfc4733.xml`) or a path. Each
scenario's comment declares what it needs and what must happen:

    demo flags: --fixed-otp 246810        the `sspr-ivr demo` flags it needs
    service: echo                         the user to call (default: reset)
    expect audit: success pin_reset       the audit record (result reason),
                                          or `none`: no record at all
    expect refer: sip:agents@127.0.0.1:5070 caller_request
                                          a REFER to this target with this
                                          X-Transfer-Reason

For every scenario the runner starts a fresh `sspr-ivr demo` with its flags on
free loopback ports (the binary: $SSPR_IVR, else target/release/sspr-ivr, else
`sspr-ivr` on PATH) and stops it afterwards. With DEMO_SIP=HOST:PORT and
DEMO_BACKEND=http://HOST:PORT it uses that running demo instead (started with
the flags the scenario names). Either way it resets the demo's state first
(POST /demo/reset: directory, codes, audit records, attempt limits) and checks
that the audit is empty before the call.

Exit status: 0 every outcome as declared; 1 a scenario failed (sipp failed, or
the audit record or REFER differs); 2 usage, or a scenario declares no
outcome; 3 the demo did not start or its state was not reset.
"""
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


class Failed(Exception):
    """The outcome differs from the declaration (exit 1)."""


class NotReset(Exception):
    """The demo did not start or did not reset (exit 3)."""


def declared(path):
    text = open(path, encoding="iso-8859-1").read()
    comments = "\n".join(re.findall(r"<!--(.*?)-->", text, re.S))

    def field(name):
        m = re.search(r"^\s*" + re.escape(name) + r":[ \t]*(.*)$", comments, re.M)
        return m.group(1).strip() if m else None

    d = {
        "flags": shlex.split(field("demo flags") or ""),
        "service": field("service") or "reset",
        "audit": field("expect audit"),
        "refer": field("expect refer"),
    }
    if d["audit"] is None and d["refer"] is None:
        raise ValueError(f"{path}: declares no outcome (`expect audit:` / `expect refer:`)")
    if d["audit"] not in (None, "none") and len(d["audit"].split()) != 2:
        raise ValueError(f"{path}: `expect audit:` wants `RESULT REASON` or `none`")
    return d


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, timeout=5):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def binary():
    if os.environ.get("SSPR_IVR"):
        return os.environ["SSPR_IVR"]
    built = os.path.join(REPO, "target", "release", "sspr-ivr")
    return built if os.access(built, os.X_OK) else "sspr-ivr"


class Demo:
    """A fresh `sspr-ivr demo` on free ports, stopped on exit."""

    def __init__(self, flags, workdir):
        self.log = os.path.join(workdir, "demo.log")
        cmd = [binary(), "demo", "--sip", "127.0.0.1:0", "--admin", "127.0.0.1:0",
               "--backend", "127.0.0.1:0", "--sms-delay", "0s",
               "--spool", os.path.join(workdir, "spool")] + flags
        try:
            self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"),
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise NotReset(f"cannot start {cmd[0]}: {e}")
        end = time.monotonic() + 60
        self.sip = self.backend = None
        while time.monotonic() < end and self.proc.poll() is None:
            text = open(self.log, errors="replace").read()
            sip = re.search(r"listening on sip:(\S+)", text)
            backend = re.search(r"^ +demo +(http://\S+)", text, re.M)
            if sip and backend:
                self.sip, self.backend = sip.group(1), backend.group(1)
                return
            time.sleep(0.1)
        self.stop()
        raise NotReset("the demo did not start within 60 s:\n" + open(self.log).read()[-2000:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reset(backend):
    try:
        answer = http("POST", backend + "/demo/reset")
        audit = http("GET", backend + "/demo/audit")
    except Exception as e:  # noqa: BLE001 - any failure means: not reset
        raise NotReset(f"POST {backend}/demo/reset failed: {e}")
    if not (isinstance(answer, dict) and answer.get("reset") is True):
        raise NotReset(f"POST {backend}/demo/reset answered {answer!r}")
    if audit != []:
        raise NotReset(f"after the reset the demo still holds {len(audit)} audit record(s)")


def run_sipp(sip, path, service, workdir):
    messages = os.path.join(workdir, "messages.log")
    cmd = ["sipp", sip, "-sf", path, "-s", service, "-m", "1",
           "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(free_udp_port()),
           "-timeout", "150s", "-timeout_error", "-nostdin",
           "-trace_msg", "-message_file", messages]
    try:
        p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        raise Failed("sipp did not finish within 180 s")
    except FileNotFoundError:
        raise Failed("sipp is not installed (apt-get install sip-tester)")
    if p.returncode != 0:
        raise Failed(f"sipp exited {p.returncode}:\n{(p.stdout + p.stderr)[-1500:]}")
    return open(messages, errors="replace").read() if os.path.exists(messages) else ""


def check_audit(backend, want):
    if want == "none":
        time.sleep(2)  # delivery runs within a second; give it two
        records = http("GET", backend + "/demo/audit")
        if records:
            raise Failed(f"want no audit record, got {summary(records)}")
        return "audit: none"
    result, reason = want.split()
    end = time.monotonic() + 20
    records = []
    while time.monotonic() < end:
        records = http("GET", backend + "/demo/audit")
        finals = [r for r in records if r.get("result") != "attempt_started"]
        if finals:
            if any(r.get("result") == result and r.get("reason") == reason for r in finals):
                return f"audit: {result} {reason}"
            raise Failed(f"want audit {result} {reason}, got {summary(finals)}")
        time.sleep(0.2)
    raise Failed(f"want audit {result} {reason}, got {summary(records) or 'none'} within 20 s")


def summary(records):
    return ", ".join(f"{r.get('result')} {r.get('reason')}" for r in records)


def check_refer(messages, want):
    target, _, reason = want.partition(" ")
    refers = [m for m in messages.split("\n\n") if re.search(r"^REFER ", m, re.M)]
    if not refers:
        raise Failed(f"want a REFER to {target}, the IVR sent none")
    for m in refers:
        to = re.search(r"^(?:Refer-To|r):\s*<?([^>\r\n;]+)", m, re.M | re.I)
        why = re.search(r"^X-Transfer-Reason:\s*(\S+)", m, re.M | re.I)
        got = (to.group(1) if to else "", why.group(1) if why else "")
        if got[0] == target and (not reason or got[1] == reason):
            return f"refer: {target} {reason}".strip()
    raise Failed(f"want a REFER to {want}, got {got[0]} {got[1]}")


def run(path):
    d = declared(path)
    with tempfile.TemporaryDirectory(prefix="sspr-sipp-") as workdir:
        demo = None
        if os.environ.get("DEMO_SIP") or os.environ.get("DEMO_BACKEND"):
            sip, backend = os.environ.get("DEMO_SIP"), os.environ.get("DEMO_BACKEND")
            if not (sip and backend):
                raise NotReset("set both DEMO_SIP and DEMO_BACKEND (or neither)")
        else:
            demo = Demo(d["flags"], workdir)
            sip, backend = demo.sip, demo.backend
        try:
            reset(backend)
            messages = run_sipp(sip, path, d["service"], workdir)
            seen = []
            if d["audit"]:
                seen.append(check_audit(backend, d["audit"]))
            if d["refer"]:
                seen.append(check_refer(messages, d["refer"]))
            return "; ".join(seen)
        except Failed as e:
            if demo:
                raise Failed(f"{e}\n--- demo output (tail):\n{open(demo.log).read()[-3000:]}")
            raise
        finally:
            if demo:
                demo.stop()


def main(args):
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    worst = 0
    for arg in args:
        path = arg if os.path.exists(arg) else os.path.join(HERE, arg)
        name = os.path.basename(path)
        try:
            seen = run(path)
            print(f"PASS {name}: {seen}")
        except (ValueError, OSError) as e:
            print(f"ERROR {name}: {e}")
            worst = max(worst, 2)
        except NotReset as e:
            print(f"NOT RESET {name}: {e}")
            worst = max(worst, 3)
        except Failed as e:
            print(f"FAIL {name}: {e}")
            worst = max(worst, 1)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
