// floor: the reference floor for scripts/bench.sh -- the least an extension can do.
// Static C (musl), no TLS, no threads: connect to AWS_LAMBDA_RUNTIME_API, POST register,
// read the answer, then GET event/next on the same connection and block in it.
// (The bench's "exec->register" floor is its register; "exec->first next" floor its next.)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int main(int argc, char **argv) {
  (void)argc;
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  if (!api) return 1;
  char host[64];
  snprintf(host, sizeof host, "%s", api);
  char *colon = strrchr(host, ':');
  if (!colon) return 1;
  *colon = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) return 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) return 1;
  const char *name = strrchr(argv[0], '/');
  name = name ? name + 1 : argv[0];
  static const char body[] = "{\"events\":[\"INVOKE\",\"SHUTDOWN\"]}";
  char req[512];
  int n = snprintf(req, sizeof req,
                   "POST /2020-01-01/extension/register HTTP/1.1\r\nHost: %s\r\nLambda-Extension-Name: %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   api, name, sizeof body - 1, body);
  if (send_all(fd, req, (size_t)n)) return 1;
  char buf[4096];
  ssize_t got = read(fd, buf, sizeof buf - 1);
  if (got <= 0) return 1;
  buf[got] = 0;
  const char *id = strcasestr(buf, "Lambda-Extension-Identifier:");
  if (!id) return 1;
  id += 28;
  while (*id == ' ') id++;
  char ident[64];
  size_t k = 0;
  while (id[k] && id[k] != '\r' && k < sizeof ident - 1) { ident[k] = id[k]; k++; }
  ident[k] = 0;
  n = snprintf(req, sizeof req,
               "GET /2020-01-01/extension/event/next HTTP/1.1\r\nHost: %s\r\nLambda-Extension-Identifier: %s\r\n\r\n",
               api, ident);
  if (send_all(fd, req, (size_t)n)) return 1;
  got = read(fd, buf, sizeof buf - 1);
  return got > 0 ? 0 : 1;
}
