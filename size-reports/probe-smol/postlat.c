// postlat: request -> 200 latency of a telemetry listener, as the platform posts to it.
//
//   postlat PORT N ka|new      prints N latencies in ns, one per line
//
// The body is one Telemetry API batch of 100 records (function log lines and platform
// records, ~17 KB). ka: N POSTs on one kept-alive connection (what the platform does);
// new: a new connection per POST (connect + POST + 200 + close; the listener then pays for
// a new connection: a thread in the threads variant, a task in the smol ones). The time is
// from just before the first byte of the request is written (before connect() for `new`)
// to the complete 200 response.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int dial(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); exit(1); }
  int one = 1;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return s;
}

// reads one response (head with Content-Length: 0 expected); returns the status code
static int read_response(int s) {
  char buf[1024];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(s, buf + got, sizeof buf - 1 - got);
    if (r <= 0) { fprintf(stderr, "postlat: connection closed\n"); exit(1); }
    got += r;
    buf[got] = 0;
    if (strstr(buf, "\r\n\r\n")) break;
  }
  return atoi(buf + 9);
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: postlat PORT N ka|new\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]), ka = !strcmp(argv[3], "ka");
  static char body[64 * 1024], req[70 * 1024];
  size_t b = 0;
  b += sprintf(body + b, "[");
  for (int i = 0; i < 100; i++) {
    if (i) body[b++] = ',';
    if (i % 10 == 9)
      b += sprintf(body + b,
                   "{\"time\":\"2026-11-27T12:00:00.%03dZ\",\"type\":\"platform.report\",\"record\":{\"requestId\":"
                   "\"6f7f0961-0000-4000-8000-%012d\",\"metrics\":{\"durationMs\":12.5,\"billedDurationMs\":13,"
                   "\"memorySizeMB\":128,\"maxMemoryUsedMB\":70},\"status\":\"success\"}}",
                   i, i);
    else
      b += sprintf(body + b,
                   "{\"time\":\"2026-11-27T12:00:00.%03dZ\",\"type\":\"function\",\"record\":\"2026-11-27T12:00:00Z "
                   "6f7f0961 INFO processing item %d of the order, with \\\"quoted\\\" text and a tab\\t\"}",
                   i, i);
  }
  b += sprintf(body + b, "]");
  int rl = sprintf(req,
                   "POST / HTTP/1.1\r\nHost: sandbox.localdomain\r\nContent-Type: application/json\r\n%s"
                   "Content-Length: %zu\r\n\r\n",
                   ka ? "" : "Connection: close\r\n", b);
  memcpy(req + rl, body, b);
  rl += b;
  int s = ka ? dial(port) : -1;
  for (int i = 0; i < n; i++) {
    long long t0 = now_ns();
    if (!ka) s = dial(port);
    for (int off = 0; off < rl;) {
      ssize_t w = write(s, req + off, rl - off);
      if (w <= 0) { perror("write"); return 1; }
      off += w;
    }
    int st = read_response(s);
    long long t1 = now_ns();
    if (st != 200) { fprintf(stderr, "postlat: status %d\n", st); return 1; }
    if (!ka) close(s);
    printf("%lld\n", t1 - t0);
  }
  return 0;
}
