#!/usr/bin/env python3
"""Listener request->200 latency of the probe variants, interleaved, against a fake Runtime API.

    latbench.py POSTLAT ROUNDS N_KA N_NEW label=binary... [label@KEY=VALUE...]

Per round, each binary in turn (order rotated every round): started with a fake Extensions +
Telemetry API on 127.0.0.1 (AWS_LAMBDA_RUNTIME_API); it must register, subscribe (the port
is read from the subscribe body) and call `next`, which is held while `postlat` posts N_KA
100-record batches on one kept-alive connection, then N_NEW on a new connection each. Then
threads and RSS are read from /proc, `next` answers SHUTDOWN, and the binary must exit 0
and report every record (its stderr). Prints TSV rows: label round mode latency_ns, and
`# label round threads rss_kb` lines; exits 1 if any run misbehaved.
"""
import json, os, re, socket, subprocess, sys, threading


def serve_api(ls, state):
    def conn(c):
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            while len(rest) < n:
                d = c.recv(65536)
                if not d:
                    return
                rest += d
            body, buf = rest[:n], rest[n:]
            line = head.split(b"\r\n", 1)[0].decode()
            if "/extension/register" in line:
                out, hdr = b'{"functionName":"bench","functionVersion":"$LATEST","handler":"h","accountId":"123456789012"}', \
                    "Lambda-Extension-Identifier: 00000000-0000-0000-0000-000000000001\r\n"
                state["registered"] = True
            elif "/telemetry" in line:
                uri = json.loads(body)["destination"]["URI"]
                state["port"] = int(uri.rsplit(":", 1)[1].strip("/"))
                out, hdr = b"OK", ""
            elif "/event/next" in line:
                state["next"].set()
                state["release"].wait()
                out, hdr = b'{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":0}', ""
            else:
                out, hdr = b"{}", ""
            c.sendall(("HTTP/1.1 200 OK\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                       % (hdr, len(out))).encode() + out)

    while True:
        try:
            c, _ = ls.accept()
        except OSError:
            return
        threading.Thread(target=conn, args=(c,), daemon=True).start()


def proc_status(pid):
    t = r = -1
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("Threads:"):
                t = int(l.split()[1])
            elif l.startswith("VmRSS:"):
                r = int(l.split()[1])
    return t, r


def run_one(postlat, label, path, rnd, n_ka, n_new, extra):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    state = {"next": threading.Event(), "release": threading.Event(), "port": None}
    threading.Thread(target=serve_api, args=(ls, state), daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % ls.getsockname()[1], SLIMCAP_TELEMETRY_PORT="0", **extra)
    p = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ok = True
    if not state["next"].wait(10) or not state["port"]:
        print(f"# {label}: no next/subscribe", file=sys.stderr)
        p.kill()
        return False
    for mode, n in (("ka", n_ka), ("new", n_new)):
        if n == 0:
            continue
        r = subprocess.run([postlat, str(state["port"]), str(n), mode], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"# {label} {mode}: postlat failed: {r.stderr.strip()}", file=sys.stderr)
            ok = False
            continue
        for v in r.stdout.split():
            print(f"{label}\t{rnd}\t{mode}\t{v}")
    th, rss = proc_status(p.pid)
    print(f"# {label}\t{rnd}\t{th}\t{rss}")
    state["release"].set()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        print(f"# {label}: did not exit after SHUTDOWN", file=sys.stderr)
        return False
    err = err.decode()
    want = 100 * (n_ka + n_new)
    if p.returncode != 0 or f"{want} records" not in err:
        print(f"# {label}: rc {p.returncode}, stderr {err.strip()!r} (want {want} records)", file=sys.stderr)
        ok = False
    ls.close()
    sys.stdout.flush()
    return ok


def main():
    postlat, rounds, n_ka, n_new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    targets, envs = [], {}
    for a in sys.argv[5:]:
        at, eq = a.find("@"), a.find("=")
        if 0 <= at < eq:  # label@KEY=VALUE: extra environment for that label
            k, v = a[at + 1:].split("=", 1)
            envs.setdefault(a[:at], {})[k] = v
        else:
            targets.append(a.split("=", 1))
    print("label\tround\tmode\tns")
    ok = True
    for rnd in range(rounds):
        k = rnd % len(targets)
        for label, path in targets[k:] + targets[:k]:
            ok &= run_one(postlat, label, path, rnd, n_ka, n_new, envs.get(label, {}))
    sys.exit(0 if ok else 1)


main()
