#!/usr/bin/env python3
# Telemetry listener, connection per POST (a platform that does not keep the
# delivery connection alive; the emulator does): a fake Extensions API that
# answers register/subscribe and holds `next`, then N POSTs of L function
# records, each on a new connection with `Connection: close`; prints the
# median ms per POST (connect → answer read) per round, binaries interleaved.
#
#   scripts/listener-conn-bench.py N L BINARY...
#
# Each BINARY must be a file named `slimcap` (e.g. a symlink in its own dir):
# the extension registers under its file name.
# Connection-per-POST latency against the telemetry listener: a fake Extensions API
# (register/subscribe answer at once, next hangs), then N POSTs each on a new connection.
import http.server, threading, socket, subprocess, time, sys, os, json, statistics
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        n = int(self.headers.get('Content-Length', 0)); self.rfile.read(n)
        b = b'{"functionName":"f","functionVersion":"1","handler":"h"}'
        self.send_response(200); self.send_header('Lambda-Extension-Identifier', 'id1')
        self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_PUT(self):
        n = int(self.headers.get('Content-Length', 0)); self.rfile.read(n)
        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'OK')
    def do_GET(self):
        time.sleep(3600)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H); srv.daemon_threads = True
threading.Thread(target=srv.serve_forever, daemon=True).start()
api = '127.0.0.1:%d' % srv.server_address[1]
rec = lambda i: '{"time":"2024-04-24T12:34:56.789Z","type":"function","record":"2024-04-24T12:34:56.789Z\\t459921b5\\tINFO\\tline %06d of a typical size for a function log line, about 110 bytes"}' % i
body = ('[' + ','.join(rec(i) for i in range(int(sys.argv[2]))) + ']').encode()
def run(binary, port):
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=api, SLIMCAP_TELEMETRY_PORT=str(port), DD_LOG_LEVEL='error')
    p = subprocess.Popen([binary], env=env, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try: socket.create_connection(('127.0.0.1', port), 0.1).close(); break
        except OSError: time.sleep(0.02)
    ts = []
    head = ('POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n' % len(body)).encode()
    for i in range(int(sys.argv[1])):
        t = time.perf_counter()
        s = socket.create_connection(('127.0.0.1', port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head + body); r = b''
        while True:
            d = s.recv(4096)
            if not d: break
            r += d
        s.close(); ts.append((time.perf_counter() - t) * 1000)
        assert r.startswith(b'HTTP/1.1 200'), r
        time.sleep(0.002)
    p.kill(); p.wait()
    return statistics.median(ts[5:])
bins = sys.argv[3:]
res = {b: [] for b in bins}
for r in range(4):
    for j, b in enumerate(bins):
        res[b].append(run(b, 18124 + 10 * r + j))
for b in bins: print(b, 'median ms per POST on a new connection, per round:', ' '.join('%.3f' % x for x in res[b]))
