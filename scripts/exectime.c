// exectime: exec -> register latency of a Lambda extension binary, cold or warm.
//
// Listens on 127.0.0.1:<ephemeral> as a fake Extensions API, sets AWS_LAMBDA_RUNTIME_API
// for the child, posix_spawn()s the binary and takes the time from just before the spawn to
//   - the arrival of the first complete HTTP request head (the `register` call), or
//   - the child's exit, if it exits without connecting (binaries that do not register yet).
// Answers a register with 200 + Lambda-Extension-Identifier, then kills the child.
// Cold runs evict the binary from the page cache first (posix_fadvise DONTNEED) and check
// with mincore() that no page of it is resident.
//
//   exectime [-n runs] [-c|-w] [-q] [-p prefix-cmd] -- binary [args...]
//   prints one line: mode n min p10 median p90 max (microseconds)
//   -p: run under a wrapper (e.g. qemu-aarch64-static); its own load time is then included.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long resident_pages(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  struct stat st;
  fstat(fd, &st);
  if (st.st_size == 0) { close(fd); return 0; }
  void *m = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return -1;
  long ps = sysconf(_SC_PAGESIZE), n = (st.st_size + ps - 1) / ps, r = 0;
  unsigned char *v = malloc(n);
  if (mincore(m, st.st_size, v) == 0)
    for (long i = 0; i < n; i++) r += v[i] & 1;
  else r = -1;
  free(v);
  munmap(m, st.st_size);
  return r;
}

static int evict(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return -1;
  fdatasync(fd);
  int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
  return e;
}

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int runs = 50, cold = 0, quiet = 0, opt;
  char *prefix = NULL;
  while ((opt = getopt(argc, argv, "n:cwqp:")) != -1) {
    switch (opt) {
      case 'n': runs = atoi(optarg); break;
      case 'c': cold = 1; break;
      case 'w': cold = 0; break;
      case 'q': quiet = 1; break;
      case 'p': prefix = optarg; break;
      default: fprintf(stderr, "usage: %s [-n runs] [-c|-w] [-q] [-p wrapper] -- bin [args]\n", argv[0]); return 2;
    }
  }
  if (optind >= argc) { fprintf(stderr, "missing binary\n"); return 2; }
  char **cargv = &argv[optind];
  const char *bin = cargv[0];
  char *pargv[64];
  if (prefix) {
    int k = 0;
    pargv[k++] = prefix;
    for (int i = optind; i < argc && k < 63; i++) pargv[k++] = argv[i];
    pargv[k] = NULL;
    cargv = pargv;
  }

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 16)) { perror("listen"); return 1; }
  socklen_t sl = sizeof sa;
  getsockname(ls, (struct sockaddr *)&sa, &sl);
  char api[64];
  snprintf(api, sizeof api, "127.0.0.1:%d", ntohs(sa.sin_port));
  setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
  setenv("AWS_LAMBDA_FUNCTION_NAME", "exectime", 0);
  setenv("AWS_REGION", "us-east-1", 0);
  setenv("DD_API_KEY", "0000000000000000000000000000000a", 0);

  // the child's stdio goes to /dev/null (EXECTIME_STDIO=1 keeps it)
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (!getenv("EXECTIME_STDIO"))
    for (int fd = 0; fd < 3; fd++) posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
  long long *t = calloc(runs, sizeof *t);
  int registered = 0, exited = 0;
  for (int r = 0; r < runs; r++) {
    if (cold) {
      evict(bin);
      long res = resident_pages(bin);
      if (res != 0) { fprintf(stderr, "exectime: %s still has %ld resident pages after eviction\n", bin, res); return 1; }
    }
    pid_t pid;
    long long t0 = now_ns();
    if (posix_spawn(&pid, cargv[0], &fa, NULL, cargv, environ)) { perror("posix_spawn"); return 1; }
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd pf[2] = {{.fd = ls, .events = POLLIN}, {.fd = pfd, .events = POLLIN}};
    long long t1 = 0;
    int done = 0;
    while (!done) {
      if (poll(pf, 2, 10000) <= 0) { fprintf(stderr, "exectime: timeout\n"); kill(pid, SIGKILL); return 1; }
      if (pf[0].revents & POLLIN) {
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        char buf[8192];
        size_t got = 0;
        while (got < sizeof buf - 1) {
          ssize_t k = read(c, buf + got, sizeof buf - 1 - got);
          if (k <= 0) break;
          got += k;
          buf[got] = 0;
          if (strstr(buf, "\r\n\r\n")) { t1 = now_ns(); break; }
        }
        if (!t1) t1 = now_ns();
        static const char resp[] =
            "HTTP/1.1 200 OK\r\nLambda-Extension-Identifier: 00000000-0000-0000-0000-000000000000\r\n"
            "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        ssize_t wr = write(c, resp, sizeof resp - 1);
        (void)wr;
        close(c);
        kill(pid, SIGKILL);
        registered++;
        done = 1;
      } else if (pf[1].revents & POLLIN) {
        t1 = now_ns();
        exited++;
        done = 1;
      }
    }
    waitpid(pid, NULL, 0);
    close(pfd);
    t[r] = t1 - t0;
  }
  qsort(t, runs, sizeof *t, cmp);
  const char *what = registered && exited ? "mixed" : registered ? "exec->register" : "exec->exit";
  if (!quiet) printf("# %s %s, %d runs, us: min p10 median p90 max\n", cold ? "cold" : "warm", what, runs);
  printf("%s %s %d %.0f %.0f %.0f %.0f %.0f\n", cold ? "cold" : "warm", what, runs, t[0] / 1e3,
         t[runs / 10] / 1e3, t[runs / 2] / 1e3, t[runs * 9 / 10] / 1e3, t[runs - 1] / 1e3);
  return 0;
}
