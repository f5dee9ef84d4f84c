// benchrun: cold/warm start-up of Lambda extension binaries against a local fake Extensions API.
// Built and driven by scripts/bench.sh (see there); prints one TSV row per run.
//
//   benchrun [-n runs] [-p wrapper] [-t timeout_ms] [-q] TARGET...
//   TARGET = label=path            a binary to measure
//          | label@KEY=VALUE       extra environment for that label (repeatable)
//          | label+path            another file evicted with it for cold runs (e.g. a stage's core)
//
// Per round, for each target in turn (interleaved): one cold run, then one warm run.
//  - cold: the binary is evicted from the page cache (posix_fadvise DONTNEED) and mincore()
//    must show no resident page of it before the run; warm: the run right after.
//  - the child is fork()ed; it waits on a pipe while the parent attaches perf counters
//    (enable_on_exec, inherited by its threads), then reads CLOCK_MONOTONIC into a shared
//    page and execve()s: t0 is taken in the child just before execve.
//  - the fake API on 127.0.0.1 (AWS_LAMBDA_RUNTIME_API) answers every request on any number
//    of keep-alive connections: register (200, Lambda-Extension-Identifier, JSON body),
//    PUT telemetry (200 OK), anything else 200 {} -- except GET event/next, which is not
//    answered: when the first one arrives the child is sampled (/proc: minor/major faults,
//    VmRSS, RssAnon, threads) and SIGKILLed. A child that never calls next is killed after
//    the timeout (or when it exits), with what it reached.
//  - before each run, connections left in the listen backlog by the previous (killed) child are
//    accepted and closed, so a late request of one run is never counted in the next.
//  - counters (perf_event_open): instructions (where the CPU exposes them, else -1) and
//    task-clock (CPU time of all threads), both read at register.
//
// Columns: label round mode reg_us next_us sub_us minflt majflt rss_kb anon_kb threads
//          instr_reg cpu_us_reg exit
// (times from exec; -1 = not reached / not available; sub_us = the telemetry subscribe).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXT 32
#define MAXENV 32
#define MAXC 16

struct target {
  char label[64];
  char path[4096];
  char *env[MAXENV];
  int nenv;
  char *also[4];  // more files to evict for cold runs
  int nalso;
};

static struct target T[MAXT];
static int NT;

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
  else
    r = -1;
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

static int perf_open(pid_t pid, uint32_t type, uint64_t config) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = type;
  a.config = config;
  a.disabled = 1;
  a.enable_on_exec = 1;
  a.inherit = 1;
  int fd = (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) {  // not root / paranoid: user space only
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    fd = (int)syscall(SYS_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  }
  return fd;
}

static long long perf_read(int fd) {
  uint64_t v;
  if (fd < 0 || read(fd, &v, sizeof v) != sizeof v) return -1;
  return (long long)v;
}

struct sample {
  long minflt, majflt, rss_kb, anon_kb, threads;
};

static void sample_proc(pid_t pid, struct sample *s) {
  char p[64], buf[4096];
  s->minflt = s->majflt = s->rss_kb = s->anon_kb = s->threads = -1;
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  FILE *f = fopen(p, "r");
  if (f) {
    if (fgets(buf, sizeof buf, f)) {
      char *q = strrchr(buf, ')');  // comm may hold spaces
      if (q) {
        // fields after comm: 3 state ... 10 minflt 11 cminflt 12 majflt
        char *tok = strtok(q + 2, " ");
        for (int i = 3; tok; i++, tok = strtok(NULL, " ")) {
          if (i == 10) s->minflt = atol(tok);
          if (i == 12) { s->majflt = atol(tok); break; }
        }
      }
    }
    fclose(f);
  }
  snprintf(p, sizeof p, "/proc/%d/status", pid);
  f = fopen(p, "r");
  if (f) {
    while (fgets(buf, sizeof buf, f)) {
      if (!strncmp(buf, "VmRSS:", 6)) s->rss_kb = atol(buf + 6);
      else if (!strncmp(buf, "RssAnon:", 8)) s->anon_kb = atol(buf + 8);
      else if (!strncmp(buf, "Threads:", 8)) s->threads = atol(buf + 8);
    }
    fclose(f);
  }
}

struct conn {
  int fd;
  char buf[1 << 16];
  size_t got;
};

static void respond(int fd, const char *status, const char *extra, const char *body) {
  char out[1024];
  int n = snprintf(out, sizeof out,
                   "HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", status,
                   extra, strlen(body), body);
  ssize_t w = write(fd, out, n);
  (void)w;
}

// One complete request in c->buf? Returns its total length (head + body) or 0.
static size_t complete_request(struct conn *c, size_t *head_len) {
  c->buf[c->got] = 0;
  char *e = strstr(c->buf, "\r\n\r\n");
  if (!e) return 0;
  size_t head = e + 4 - c->buf;
  size_t clen = 0;
  for (char *l = c->buf; l && l < e; l = strstr(l, "\r\n"), l = l ? l + 2 : NULL) {
    if (!strncasecmp(l, "content-length:", 15)) clen = strtoul(l + 15, NULL, 10);
  }
  *head_len = head;
  if (c->got < head + clen) return 0;
  return head + clen;
}

// Connections a killed child left in the listen backlog (its handshake was done by the kernel,
// its request bytes queued) would be accepted by the next run: close them all first.
static void drain_backlog(int ls) {
  int fl = fcntl(ls, F_GETFL);
  fcntl(ls, F_SETFL, fl | O_NONBLOCK);
  int c;
  while ((c = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) >= 0) close(c);
  fcntl(ls, F_SETFL, fl);
}

static int run_once(int ls, const char *api, const char *wrapper, struct target *t, int cold, int timeout_ms,
                    long long *res /* reg next sub */, struct sample *smp, long long *instr, long long *cpu_us,
                    int *exit_code) {
  drain_backlog(ls);
  res[0] = res[1] = res[2] = -1;
  *instr = *cpu_us = -1;
  *exit_code = -1000;
  memset(smp, 0xff, sizeof *smp);
  if (cold) {
    for (int i = -1; i < t->nalso; i++) {
      const char *f = i < 0 ? t->path : t->also[i];
      long r = -1;
      for (int k = 0; k < 50 && r != 0; k++) {  // pages under writeback (a fresh build) need a moment
        if (k) usleep(10000);
        evict(f);
        r = resident_pages(f);
      }
      if (r != 0) {
        fprintf(stderr, "benchrun: %s still has %ld resident pages after eviction\n", f, r);
        exit(1);
      }
    }
  }
  static long long *t0p;
  if (!t0p) {
    t0p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  }
  *t0p = 0;
  int go[2];
  if (pipe2(go, O_CLOEXEC)) { perror("pipe"); exit(1); }
  char *argv[4];
  int k = 0;
  if (wrapper) argv[k++] = (char *)wrapper;
  argv[k++] = t->path;
  argv[k] = NULL;
  pid_t pid = fork();
  if (pid < 0) { perror("fork"); exit(1); }
  if (pid == 0) {
    close(go[1]);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(127);
    for (int i = 0; i < t->nenv; i++) putenv(t->env[i]);
    setenv("AWS_LAMBDA_RUNTIME_API", api, 1);
    int dn = open("/dev/null", O_RDWR);
    dup2(dn, 0);
    dup2(dn, 1);
    if (!getenv("BENCHRUN_STDERR")) dup2(dn, 2);
    *t0p = now_ns();
    execve(argv[0], argv, environ);
    _exit(127);
  }
  close(go[0]);
  int fd_instr = perf_open(pid, PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS);
  int fd_clock = perf_open(pid, PERF_TYPE_SOFTWARE, PERF_COUNT_SW_TASK_CLOCK);
  if (write(go[1], "g", 1) != 1) { perror("write"); exit(1); }
  close(go[1]);
  int pfd = (int)syscall(SYS_pidfd_open, pid, 0);

  struct conn *cs[MAXC] = {0};
  long long deadline = now_ns() + (long long)timeout_ms * 1000000LL;
  int done = 0;
  while (!done) {
    struct pollfd pf[2 + MAXC];
    int n = 0;
    pf[n++] = (struct pollfd){.fd = ls, .events = POLLIN};
    pf[n++] = (struct pollfd){.fd = pfd, .events = POLLIN};
    int idx[MAXC];
    for (int i = 0; i < MAXC; i++)
      if (cs[i]) { idx[n - 2] = i; pf[n++] = (struct pollfd){.fd = cs[i]->fd, .events = POLLIN}; }
    int left = (int)((deadline - now_ns()) / 1000000LL);
    if (left <= 0 || poll(pf, n, left) <= 0) break;  // timeout
    long long tnow = now_ns();
    if (pf[0].revents & POLLIN) {
      int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
      if (c >= 0) {
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (int i = 0; i < MAXC; i++)
          if (!cs[i]) { cs[i] = calloc(1, sizeof **cs); cs[i]->fd = c; c = -1; break; }
        if (c >= 0) close(c);
      }
    }
    for (int j = 2; j < n; j++) {
      if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      struct conn *c = cs[idx[j - 2]];
      ssize_t r = read(c->fd, c->buf + c->got, sizeof c->buf - 1 - c->got);
      if (r <= 0) { close(c->fd); free(c); cs[idx[j - 2]] = NULL; continue; }
      c->got += r;
      size_t head, len;
      while ((len = complete_request(c, &head))) {
        long long at = tnow - *t0p;
        if (!strncmp(c->buf, "POST ", 5) && strstr(c->buf, "/extension/register ")) {
          if (res[0] < 0) {
            res[0] = at;
            *instr = perf_read(fd_instr);
            long long ns = perf_read(fd_clock);
            *cpu_us = ns < 0 ? -1 : ns / 1000;
          }
          respond(c->fd, "200 OK", "Lambda-Extension-Identifier: 00000000-0000-0000-0000-000000000000\r\n",
                  "{\"functionName\":\"bench\",\"functionVersion\":\"$LATEST\",\"handler\":\"h\",\"accountId\":\"123456789012\"}");
        } else if (!strncmp(c->buf, "GET ", 4) && strstr(c->buf, "/extension/event/next ")) {
          res[1] = at;
          sample_proc(pid, smp);
          done = 1;
          break;
        } else if (!strncmp(c->buf, "PUT ", 4) && strstr(c->buf, "/telemetry ")) {
          if (res[2] < 0) res[2] = at;
          respond(c->fd, "200 OK", "", "OK");
        } else {
          respond(c->fd, "200 OK", "", "{}");
        }
        memmove(c->buf, c->buf + len, c->got - len);
        c->got -= len;
      }
      if (done) break;
    }
    if (!done && (pf[1].revents & POLLIN)) {  // exited without calling next
      int st;
      waitpid(pid, &st, 0);
      *exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
      pid = -1;
      break;
    }
  }
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  for (int i = 0; i < MAXC; i++)
    if (cs[i]) { close(cs[i]->fd); free(cs[i]); }
  close(pfd);
  if (fd_instr >= 0) close(fd_instr);
  if (fd_clock >= 0) close(fd_clock);
  for (int i = 0; i < 3; i++)
    if (res[i] >= 0) res[i] /= 1000;  // us
  return 0;
}

int main(int argc, char **argv) {
  int runs = 30, timeout_ms = 5000, opt, quiet = 0;
  const char *wrapper = NULL;
  while ((opt = getopt(argc, argv, "n:p:t:q")) != -1) {
    switch (opt) {
      case 'n': runs = atoi(optarg); break;
      case 'p': wrapper = optarg; break;
      case 't': timeout_ms = atoi(optarg); break;
      case 'q': quiet = 1; break;
      default: fprintf(stderr, "usage: %s [-n runs] [-p wrapper] [-t timeout_ms] label=path|label@K=V...\n", argv[0]); return 2;
    }
  }
  for (int i = optind; i < argc; i++) {
    char *a = argv[i];
    char *at = strchr(a, '@'), *eq = strchr(a, '='), *plus = strchr(a, '+');
    if (plus && (!eq || plus < eq) && (!at || plus < at)) {
      *plus = 0;
      int f = -1;
      for (int j = 0; j < NT; j++)
        if (!strcmp(T[j].label, a)) f = j;
      if (f < 0 || T[f].nalso >= 4) { fprintf(stderr, "benchrun: file for unknown label %s\n", a); return 2; }
      T[f].also[T[f].nalso++] = plus + 1;
    } else if (at && (!eq || at < eq)) {
      *at = 0;
      int f = -1;
      for (int j = 0; j < NT; j++)
        if (!strcmp(T[j].label, a)) f = j;
      if (f < 0 || T[f].nenv >= MAXENV) { fprintf(stderr, "benchrun: env for unknown label %s\n", a); return 2; }
      T[f].env[T[f].nenv++] = at + 1;
    } else if (eq && NT < MAXT) {
      *eq = 0;
      snprintf(T[NT].label, sizeof T[NT].label, "%s", a);
      if (!realpath(eq + 1, T[NT].path)) { fprintf(stderr, "benchrun: %s: %s\n", eq + 1, strerror(errno)); return 2; }
      NT++;
    } else {
      fprintf(stderr, "benchrun: bad target %s\n", a);
      return 2;
    }
  }
  if (!NT) { fprintf(stderr, "benchrun: no targets\n"); return 2; }

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 64)) { perror("listen"); return 1; }
  socklen_t sl = sizeof sa;
  getsockname(ls, (struct sockaddr *)&sa, &sl);
  char api[64];
  snprintf(api, sizeof api, "127.0.0.1:%d", ntohs(sa.sin_port));
  setenv("AWS_LAMBDA_FUNCTION_NAME", "bench", 0);
  setenv("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST", 0);
  setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128", 0);
  setenv("AWS_REGION", "us-east-1", 0);
  setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand", 0);
  setenv("DD_API_KEY", "0000000000000000000000000000000a", 0);
  setenv("SLIMCAP_TELEMETRY_PORT", "0", 0);
  signal(SIGPIPE, SIG_IGN);

  // one untimed warm-up round (the harness, the loader paths, the page cache of everything else)
  for (int i = 0; i < NT; i++) {
    long long r[3], in, cpu;
    struct sample s;
    int ec;
    run_once(ls, api, wrapper, &T[i], 0, timeout_ms, r, &s, &in, &cpu, &ec);
  }
  if (!quiet)
    printf("label\tround\tmode\treg_us\tnext_us\tsub_us\tminflt\tmajflt\trss_kb\tanon_kb\tthreads\tinstr_reg\tcpu_us_reg\texit\n");
  for (int round = 0; round < runs; round++) {
    for (int i = 0; i < NT; i++) {
      for (int cold = 1; cold >= 0; cold--) {
        long long r[3], in, cpu;
        struct sample s;
        int ec;
        run_once(ls, api, wrapper, &T[i], cold, timeout_ms, r, &s, &in, &cpu, &ec);
        printf("%s\t%d\t%s\t%lld\t%lld\t%lld\t%ld\t%ld\t%ld\t%ld\t%ld\t%lld\t%lld\t%d\n", T[i].label, round,
               cold ? "cold" : "warm", r[0], r[1], r[2], s.minflt, s.majflt, s.rss_kb, s.anon_kb, s.threads, in, cpu,
               ec == -1000 ? 0 : ec);
        fflush(stdout);
      }
    }
  }
  return 0;
}
