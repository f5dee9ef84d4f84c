//! The sandbox: Runtime API server, extension processes, INIT / INVOKE /
//! SHUTDOWN state machine, and the telemetry pipeline.

use crate::http::{self, ClientConn, Request};
use crate::types::*;
use crate::util::{now_ms, rfc3339, round3, sleep_until, to_unix_ms, uuid};
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) const SCHEMAS: [&str; 3] = ["2022-07-01", "2022-12-13", "2025-01-29"];
const LOGS_DROPPED_REASON: &str =
    "Consumer seems to have fallen behind as it has not acknowledged receipt of logs.";

/// An event the platform emitted (rendered per subscriber schema on enqueue).
#[derive(Clone, Debug)]
struct Event {
    time: f64,
    ty: String,
    record: Value,
}

struct Proc {
    name: String,
    exec_ms: f64,
    registered_ms: Option<f64>,
    first_next_ms: Option<f64>,
    exited_ms: Option<f64>,
    exit_code: Option<i32>,
    signal: Option<i32>,
    killed: bool,
    is_thread: bool,
    pid: Option<u32>,
    /// stdout/stderr pipes of this process not yet at EOF.
    readers_open: usize,
}

impl Proc {
    fn info(&self) -> ProcessInfo {
        ProcessInfo {
            name: self.name.clone(),
            exec_ms: self.exec_ms,
            registered_ms: self.registered_ms,
            first_next_ms: self.first_next_ms,
            exited_ms: self.exited_ms,
            exit_code: self.exit_code,
            signal: self.signal,
            killed: self.killed,
        }
    }
    fn alive(&self) -> bool {
        self.exited_ms.is_none() && !self.killed
    }
}

struct Ext {
    id: String,
    name: String,
    events: Vec<String>,
    /// Index into procs for external extensions.
    proc_idx: Option<usize>,
    queue: VecDeque<Value>,
    waiting: bool,
    next_calls: Vec<f64>,
    /// requestId of the last INVOKE handed out.
    last_invoke: Option<String>,
    errored: Option<String>,
}

impl Ext {
    fn wants(&self, ev: &str) -> bool {
        self.events.iter().any(|e| e == ev)
    }
}

struct Sub {
    info: Subscription,
    /// (enqueue time, rendered element, serialized size)
    queue: VecDeque<(f64, Value, usize)>,
    queued_bytes: usize,
    flush_now: bool,
    closed: bool,
}

pub(crate) struct State {
    procs: Vec<Proc>,
    exts: Vec<Ext>,
    wire: Vec<WireEvent>,
    init_start_ms: f64,
    registration_closed: bool,
    runtime_started_ms: Option<f64>,
    runtime_ready_ms: Option<f64>,
    init_done_ms: Option<f64>,
    init_error: Option<String>,
    init_finished: bool,
    window_open: bool,
    replay: Vec<Event>,
    subs: Vec<Sub>,
    deliveries: Vec<Delivery>,
    delivery_faults_left: usize,
    /// Delivery attempts on the wire.
    in_flight: Vec<InFlight>,
    /// Attempt keys found unanswered when a freeze began.
    spanned: Vec<u64>,
    freezes: Vec<Freeze>,
    frozen: bool,
    output: Vec<OutputLine>,
    /// stdout/stderr pipes not yet at EOF.
    readers_open: usize,
    events: Vec<Event>,
    invocations: usize,
    invoking: bool,
    needs_reset: bool,
    shutdown: Option<ShutdownOutcome>,
    shutting_down: bool,
    stopping: bool,
}

/// One delivery attempt on the wire. `answered` is set, under the state lock,
/// once the answer's first byte is in the socket (peeked, not consumed), and
/// only then does the delivery thread read it: so when `freeze()` (also under
/// the lock) sees `!answered`, an answer the extension already sent is still
/// in the socket where its peek finds it. Deciding by a peek alone raced: an
/// answer read off the socket but not yet recorded looked unanswered.
pub(crate) struct InFlight {
    key: u64,
    sock: Option<TcpStream>,
    answered: bool,
}

pub(crate) struct Shared {
    cfg: Config,
    api_addr: SocketAddr,
    st: Mutex<State>,
    cv: Condvar,
    conns: Mutex<Vec<TcpStream>>,
    children: Mutex<Vec<(usize, Arc<Mutex<Child>>)>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    conn_seq: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn wait_until<'a>(&self, g: MutexGuard<'a, State>, until: f64) -> MutexGuard<'a, State> {
        let now = now_ms();
        let ms = (until - now).clamp(0.5, 50.0);
        self.cv
            .wait_timeout(g, Duration::from_secs_f64(ms / 1000.0))
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }
    fn mi(&self) -> bool {
        self.cfg.mode == Mode::ManagedInstances
    }

    /// Emit a platform/function/extension event: replayed later if the
    /// subscription window is open, queued to every matching subscriber.
    fn emit(&self, st: &mut State, ev: Event) {
        let mut ev = ev;
        if self.cfg.faults.unknown_records {
            if let Value::Object(m) = &mut ev.record {
                m.insert("futureField".into(), json!({"nested": [1, 2, 3]}));
            }
        }
        st.events.push(ev.clone());
        if st.window_open {
            st.replay.push(ev.clone());
        }
        let now = now_ms();
        for sub in st.subs.iter_mut().filter(|s| !s.closed) {
            if type_selected(&sub.info.types, &ev.ty) {
                enqueue(sub, &ev, now);
            }
        }
        self.cv.notify_all();
    }

    fn emit_now(&self, st: &mut State, ty: &str, record: Value) {
        self.emit(
            st,
            Event {
                time: now_ms(),
                ty: ty.into(),
                record,
            },
        );
    }

    fn freeze(&self, st: &mut State, at: f64) {
        if self.mi() || st.frozen {
            return;
        }
        st.frozen = true;
        st.freezes.push(Freeze {
            start_ms: at,
            end_ms: None,
        });
        if self.cfg.freeze_processes {
            signal_procs(st, SIGSTOP);
        }
        // A delivery whose answer has not arrived yet would stall in a real
        // freeze: remember it (decided causally, not by timestamps).
        let unanswered: Vec<u64> = st
            .in_flight
            .iter()
            .filter(|f| !f.answered && !f.sock.as_ref().is_some_and(answer_available))
            .map(|f| f.key)
            .collect();
        st.spanned.extend(unanswered);
    }

    fn thaw(&self, st: &mut State) {
        if !st.frozen {
            return;
        }
        st.frozen = false;
        if self.cfg.freeze_processes {
            signal_procs(st, SIGCONT);
        }
        if let Some(f) = st.freezes.last_mut() {
            f.end_ms = Some(now_ms());
        }
        self.cv.notify_all();
    }

    fn flush_all_now(&self, st: &mut State) {
        for s in st.subs.iter_mut() {
            if !s.queue.is_empty() {
                s.flush_now = true;
            }
        }
        self.cv.notify_all();
    }
}

const SIGCONT: i32 = 18;
const SIGSTOP: i32 = 19;

/// Send a signal to every live extension process (Linux; no-op elsewhere).
fn signal_procs(st: &State, sig: i32) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        for p in st.procs.iter().filter(|p| p.alive()) {
            if let Some(pid) = p.pid {
                // SAFETY: plain syscall on a child we spawned and have not reaped.
                unsafe {
                    kill(pid as i32, sig);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (st, sig);
}

/// Whether the peer already sent something (or closed) on this socket,
/// without consuming it and without blocking.
#[cfg(target_os = "linux")]
fn answer_available(s: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    extern "C" {
        fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize;
    }
    const MSG_PEEK: i32 = 0x2;
    const MSG_DONTWAIT: i32 = 0x40;
    let mut b = [0u8; 1];
    // SAFETY: valid fd owned by `s`, valid 1-byte buffer.
    let n = unsafe { recv(s.as_raw_fd(), b.as_mut_ptr(), 1, MSG_PEEK | MSG_DONTWAIT) };
    n >= 0
}

#[cfg(not(target_os = "linux"))]
fn answer_available(_s: &TcpStream) -> bool {
    true
}

fn type_selected(types: &[String], ty: &str) -> bool {
    let cat = if ty.starts_with("platform.") {
        "platform"
    } else {
        ty
    };
    types.iter().any(|t| t == cat)
}

fn enqueue(sub: &mut Sub, ev: &Event, now: f64) {
    let el = render(ev, &sub.info.schema);
    let size = serde_json::to_vec(&el).map(|v| v.len()).unwrap_or(0);
    sub.queued_bytes += size;
    sub.queue.push_back((now, el, size));
}

/// Render an event in the shape of a schema version.
fn render(ev: &Event, schema: &str) -> Value {
    let mut rec = ev.record.clone();
    if let Value::Object(m) = &mut rec {
        if schema != "2025-01-29" && ev.ty == "platform.initStart" {
            for k in [
                "functionName",
                "functionVersion",
                "instanceId",
                "instanceMaxMemory",
            ] {
                m.remove(k);
            }
        }
        if schema == "2022-07-01" {
            match ev.ty.as_str() {
                "platform.initStart" => {
                    m.remove("runtimeVersion");
                    m.remove("runtimeVersionArn");
                }
                "platform.runtimeDone" => {
                    m.remove("metrics");
                    m.remove("spans");
                }
                _ => {
                    m.remove("spans");
                }
            }
        }
    }
    json!({"time": rfc3339(ev.time), "type": ev.ty, "record": rec})
}

fn err_body(ty: &str, msg: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"errorMessage": msg, "errorType": ty})).unwrap()
}

type Answer = Option<(u16, Vec<(String, String)>, Vec<u8>)>;

fn answer(status: u16, body: Vec<u8>) -> Answer {
    Some((
        status,
        vec![("Content-Type".into(), "application/json".into())],
        body,
    ))
}

/// The emulated Lambda sandbox. See the crate docs.
pub struct Emulator {
    sh: Arc<Shared>,
    tmp: PathBuf,
}

static EMU_SEQ: AtomicU64 = AtomicU64::new(0);
static DELIVERY_KEY: AtomicU64 = AtomicU64::new(1);

impl Emulator {
    /// Bind the Runtime API on 127.0.0.1:0, emit `platform.initStart`, exec
    /// the extensions and run INIT in the background (see [`Emulator::wait_init`]).
    pub fn start(cfg: Config) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let api_addr = listener.local_addr()?;
        let tmp = std::env::temp_dir().join(format!(
            "lambda-emulator-{}-{}",
            std::process::id(),
            EMU_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let ext_dir = tmp.join("opt").join("extensions");
        std::fs::create_dir_all(&ext_dir)?;
        let faults_left = cfg.faults.delivery_fail_first_n;
        let sh = Arc::new(Shared {
            cfg,
            api_addr,
            st: Mutex::new(State {
                procs: vec![],
                exts: vec![],
                wire: vec![],
                init_start_ms: now_ms(),
                registration_closed: false,
                runtime_started_ms: None,
                runtime_ready_ms: None,
                init_done_ms: None,
                init_error: None,
                init_finished: false,
                window_open: true,
                replay: vec![],
                subs: vec![],
                deliveries: vec![],
                delivery_faults_left: faults_left,
                in_flight: vec![],
                spanned: vec![],
                freezes: vec![],
                frozen: false,
                output: vec![],
                readers_open: 0,
                events: vec![],
                invocations: 0,
                invoking: false,
                needs_reset: false,
                shutdown: None,
                shutting_down: false,
                stopping: false,
            }),
            cv: Condvar::new(),
            conns: Mutex::new(vec![]),
            children: Mutex::new(vec![]),
            threads: Mutex::new(vec![]),
            conn_seq: AtomicU64::new(0),
        });
        {
            let sh2 = sh.clone();
            std::thread::Builder::new()
                .name("rapi-accept".into())
                .spawn(move || accept_loop(sh2, listener))?;
        }
        let emu = Emulator {
            sh: sh.clone(),
            tmp,
        };
        // platform.initStart is emitted before any extension starts.
        {
            let mut st = sh.lock();
            let t = now_ms();
            st.init_start_ms = t;
            let f = &sh.cfg.function;
            let mut rec = json!({
                "initializationType": sh.cfg.mode.init_type(),
                "phase": "init",
                "runtimeVersion": f.runtime_version,
                "runtimeVersionArn": format!("arn:aws:lambda:{}::runtime:{:064x}", f.region, 0xabcdefu64),
                "functionName": f.name,
                "functionVersion": f.version,
                "instanceId": uuid().replace('-', ""),
                "instanceMaxMemory": (f.memory_mb as u64) * 1024 * 1024,
            });
            if sh.cfg.mode == Mode::OnDemand {
                // instanceId / instanceMaxMemory are managed-instances fields
                if let Value::Object(m) = &mut rec {
                    m.remove("instanceId");
                    m.remove("instanceMaxMemory");
                }
            }
            sh.emit(
                &mut st,
                Event {
                    time: t,
                    ty: "platform.initStart".into(),
                    record: rec,
                },
            );
            if sh.cfg.faults.unknown_records {
                sh.emit_now(
                    &mut st,
                    "platform.futureEvent",
                    json!({"something": "new", "n": 1}),
                );
            }
        }
        let specs = sh.cfg.extensions.clone();
        for spec in specs {
            spawn_extension(&sh, &ext_dir, &spec)?;
        }
        {
            let sh2 = sh.clone();
            let h = std::thread::Builder::new()
                .name("init".into())
                .spawn(move || init_thread(sh2))?;
            sh.threads.lock().unwrap().push(h);
        }
        Ok(emu)
    }

    /// `host:port` of the Runtime API (the value of `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> String {
        self.sh.api_addr.to_string()
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.sh.api_addr
    }

    pub fn config(&self) -> &Config {
        &self.sh.cfg
    }

    /// Wait until INIT finished (successfully or not) or `timeout` passed.
    pub fn wait_init(&self, timeout: Duration) -> InitOutcome {
        let until = now_ms() + timeout.as_secs_f64() * 1000.0;
        let mut st = self.sh.lock();
        while !st.init_finished && now_ms() < until {
            st = self.sh.wait_until(st, until);
        }
        let mut out = init_outcome(&st);
        if !st.init_finished {
            out.ok = false;
            out.error_type = Some("wait_init timed out".into());
        }
        out
    }

    /// Run one invocation (on-demand: exclusive; managed instances: no extension involvement).
    pub fn invoke(&self, inv: Invocation) -> InvokeOutcome {
        if self.sh.mi() {
            return self.invoke_many(vec![inv]).pop().unwrap_or_default();
        }
        invoke_on_demand(&self.sh, inv)
    }

    /// Run several invocations. Managed instances: concurrently (each on its
    /// own thread, started together). On-demand: one after another.
    pub fn invoke_many(&self, invs: Vec<Invocation>) -> Vec<InvokeOutcome> {
        if !self.sh.mi() {
            return invs
                .into_iter()
                .map(|i| invoke_on_demand(&self.sh, i))
                .collect();
        }
        {
            let st = self.sh.lock();
            if let Some(e) = not_invokable(&st) {
                return invs
                    .iter()
                    .map(|_| InvokeOutcome {
                        error: Some(e.clone()),
                        ..Default::default()
                    })
                    .collect();
            }
        }
        // Every invocation has emitted its platform.start before any goes on:
        // they overlap by construction, not by timing.
        let started = Arc::new(std::sync::Barrier::new(invs.len()));
        let hs: Vec<_> = invs
            .into_iter()
            .map(|inv| {
                let sh = self.sh.clone();
                let started = started.clone();
                std::thread::spawn(move || invoke_managed(&sh, inv, &started))
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    }

    /// SHUTDOWN with `reason` (`spindown`, `timeout`, `failure`, ...): thaw,
    /// send the event to SHUTDOWN-registered extensions with
    /// `deadlineMs = now + shutdown_budget_ms`, deliver what is queued, wait
    /// for exits, SIGKILL at the deadline. Idempotent (returns the first outcome).
    pub fn shutdown(&self, reason: &str) -> ShutdownOutcome {
        do_shutdown(&self.sh, reason)
    }

    /// Every request seen on the Runtime API, in arrival order.
    pub fn wire(&self) -> Vec<WireEvent> {
        self.sh.lock().wire.clone()
    }

    /// The first accepted telemetry subscription.
    pub fn subscriber(&self) -> Option<Subscription> {
        self.sh
            .lock()
            .subs
            .iter()
            .find(|s| !s.closed)
            .map(|s| s.info.clone())
    }

    /// All telemetry subscriptions (including replaced ones).
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.sh.lock().subs.iter().map(|s| s.info.clone()).collect()
    }

    /// Every telemetry delivery attempt so far.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.sh.lock().deliveries.clone()
    }

    /// All records successfully delivered, in order.
    pub fn delivered_records(&self) -> Vec<Value> {
        self.sh
            .lock()
            .deliveries
            .iter()
            .filter(|d| d.ok())
            .flat_map(|d| d.records.clone())
            .collect()
    }

    /// Every event the platform emitted (rendered in the newest schema), whether delivered or not.
    pub fn emitted(&self) -> Vec<Value> {
        self.sh
            .lock()
            .events
            .iter()
            .map(|e| render(e, "2025-01-29"))
            .collect()
    }

    /// Frozen intervals (on-demand).
    pub fn freezes(&self) -> Vec<Freeze> {
        self.sh.lock().freezes.clone()
    }

    /// Whether the interval `[a, b]` (test clock) overlaps any freeze. For
    /// the extension's own flushes use the intake's `at_ms` (request fully
    /// received, before the intake answers): if a freeze starts before it,
    /// the extension called `next` with a flush still in flight.
    pub fn spans_freeze(&self, a: f64, b: f64) -> bool {
        self.freezes().iter().any(|f| f.overlaps(a, b))
    }

    pub fn is_frozen(&self) -> bool {
        self.sh.lock().frozen
    }

    /// Everything the extensions printed. For processes that already
    /// exited, waits (≤ 500 ms) until their pipes are drained, so the last
    /// lines are there.
    pub fn output(&self) -> Vec<OutputLine> {
        let until = now_ms() + 500.0;
        let mut st = self.sh.lock();
        while st
            .procs
            .iter()
            .any(|p| p.exited_ms.is_some() && p.readers_open > 0)
            && now_ms() < until
        {
            st = self.sh.wait_until(st, until);
        }
        st.output.clone()
    }

    /// Lines extensions printed on stdout.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.output()
            .into_iter()
            .filter(|l| l.stream == Stream::Stdout)
            .map(|l| l.line)
            .collect()
    }

    /// Lines extensions printed on stderr.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.output()
            .into_iter()
            .filter(|l| l.stream == Stream::Stderr)
            .map(|l| l.line)
            .collect()
    }

    pub fn processes(&self) -> Vec<ProcessInfo> {
        self.sh.lock().procs.iter().map(|p| p.info()).collect()
    }

    /// Block until `pred(self)` holds or the timeout passes; returns the last value of `pred`.
    pub fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&Emulator) -> bool) -> bool {
        let until = now_ms() + timeout.as_secs_f64() * 1000.0;
        loop {
            if pred(self) {
                return true;
            }
            if now_ms() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Delivery attempts that were on the wire, unanswered, when the sandbox
    /// froze (see [`Delivery::spanned_freeze`]): the extension called `next`
    /// before its listener answered the platform. The platform never starts
    /// an attempt while frozen.
    pub fn deliveries_spanning_freeze(&self) -> Vec<Delivery> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.spanned_freeze)
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        stop_everything(&self.sh, true);
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

fn init_outcome(st: &State) -> InitOutcome {
    InitOutcome {
        ok: st.init_finished && st.init_error.is_none(),
        error_type: st.init_error.clone(),
        init_start_ms: st.init_start_ms,
        processes: st.procs.iter().map(|p| p.info()).collect(),
        runtime_started_ms: st.runtime_started_ms,
        runtime_ready_ms: st.runtime_ready_ms,
        init_done_ms: st.init_done_ms,
        init_duration_ms: st.init_done_ms.map(|d| round3(d - st.init_start_ms)),
    }
}

// ---------------------------------------------------------------- processes

fn lambda_env(sh: &Shared) -> Vec<(String, String)> {
    let f = &sh.cfg.function;
    let mut v: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/opt/bin".into(),
        ),
        ("LANG".into(), "en_US.UTF-8".into()),
        ("TZ".into(), ":UTC".into()),
        ("AWS_LAMBDA_RUNTIME_API".into(), sh.api_addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), f.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            f.memory_mb.to_string(),
        ),
        ("AWS_REGION".into(), f.region.clone()),
        ("AWS_DEFAULT_REGION".into(), f.region.clone()),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
            sh.cfg.mode.init_type().into(),
        ),
        ("AWS_ACCESS_KEY_ID".into(), "ASIAEMULATOREXAMPLE".into()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            "emulator/secret/example".into(),
        ),
        ("AWS_SESSION_TOKEN".into(), "emulator-session-token".into()),
    ];
    // Pass-through useful for debugging/coverage of the process under test.
    for k in ["RUST_BACKTRACE", "RUST_LOG", "LLVM_PROFILE_FILE"] {
        if let Ok(val) = std::env::var(k) {
            v.push((k.into(), val));
        }
    }
    for (k, val) in &sh.cfg.env {
        v.retain(|(a, _)| a != k);
        v.push((k.clone(), val.clone()));
    }
    v
}

fn spawn_extension(
    sh: &Arc<Shared>,
    ext_dir: &std::path::Path,
    spec: &ExtensionSpec,
) -> std::io::Result<()> {
    let env = lambda_env(sh);
    match &spec.launch {
        Launch::Process { program, args } => {
            let program = std::fs::canonicalize(program)?;
            let link = ext_dir.join(&spec.name);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&program, &link)?;
            let mut cmd = Command::new(&link);
            cmd.args(args)
                .env_clear()
                .envs(env)
                .current_dir(ext_dir.parent().unwrap_or(ext_dir))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let idx;
            let exec_ms;
            {
                let mut st = sh.lock();
                idx = st.procs.len();
                exec_ms = now_ms();
                st.procs.push(Proc {
                    name: spec.name.clone(),
                    exec_ms,
                    registered_ms: None,
                    first_next_ms: None,
                    exited_ms: None,
                    exit_code: None,
                    signal: None,
                    killed: false,
                    is_thread: false,
                    pid: None,
                    readers_open: 0,
                });
            }
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let mut st = sh.lock();
                    st.procs[idx].exited_ms = Some(now_ms());
                    st.procs[idx].exit_code = Some(127);
                    return Err(e);
                }
            };
            sh.lock().procs[idx].pid = Some(child.id());
            let out = child.stdout.take();
            let err = child.stderr.take();
            if let Some(o) = out {
                spawn_reader(sh.clone(), idx, spec.name.clone(), Stream::Stdout, o);
            }
            if let Some(e) = err {
                spawn_reader(sh.clone(), idx, spec.name.clone(), Stream::Stderr, e);
            }
            let child = Arc::new(Mutex::new(child));
            sh.children.lock().unwrap().push((idx, child.clone()));
            let sh2 = sh.clone();
            std::thread::spawn(move || watch_child(sh2, idx, child));
        }
        Launch::Thread(f) => {
            let idx;
            {
                let mut st = sh.lock();
                idx = st.procs.len();
                st.procs.push(Proc {
                    name: spec.name.clone(),
                    exec_ms: now_ms(),
                    registered_ms: None,
                    first_next_ms: None,
                    exited_ms: None,
                    exit_code: None,
                    signal: None,
                    killed: false,
                    is_thread: true,
                    pid: None,
                    readers_open: 0,
                });
            }
            let f = f.clone();
            let sh2 = sh.clone();
            let envs = ExtEnv { vars: env };
            std::thread::Builder::new()
                .name(format!("ext-{}", spec.name))
                .spawn(move || {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(envs)));
                    let mut st = sh2.lock();
                    let p = &mut st.procs[idx];
                    if p.exited_ms.is_none() {
                        p.exited_ms = Some(now_ms());
                        p.exit_code = Some(if r.is_ok() { 0 } else { 101 });
                    }
                    sh2.cv.notify_all();
                })?;
        }
    }
    Ok(())
}

fn spawn_reader<R: std::io::Read + Send + 'static>(
    sh: Arc<Shared>,
    idx: usize,
    name: String,
    stream: Stream,
    r: R,
) {
    {
        let mut st = sh.lock();
        st.readers_open += 1;
        st.procs[idx].readers_open += 1;
    }
    std::thread::spawn(move || {
        let mut br = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match br.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    let mut st = sh.lock();
                    st.readers_open -= 1;
                    st.procs[idx].readers_open -= 1;
                    sh.cv.notify_all();
                    break;
                }
                Ok(_) => {}
            }
            while buf.ends_with(b"\n") || buf.ends_with(b"\r") {
                buf.pop();
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            let t = now_ms();
            if sh.cfg.echo_output {
                eprintln!("[{name}] {line}");
            }
            let mut st = sh.lock();
            st.output.push(OutputLine {
                at_ms: t,
                ext: name.clone(),
                stream,
                line: line.clone(),
            });
            let rec = log_record(sh.cfg.log_format, &line, t, None);
            sh.emit(
                &mut st,
                Event {
                    time: t,
                    ty: "extension".into(),
                    record: rec,
                },
            );
        }
    });
}

fn log_record(fmt: LogFormat, line: &str, t: f64, request_id: Option<&str>) -> Value {
    match fmt {
        LogFormat::Text => Value::String(format!("{line}\n")),
        LogFormat::Json => {
            if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(line) {
                return v;
            }
            let mut m = Map::new();
            m.insert("timestamp".into(), json!(rfc3339(t)));
            m.insert("level".into(), json!("INFO"));
            m.insert("message".into(), json!(line));
            if let Some(r) = request_id {
                m.insert("requestId".into(), json!(r));
            }
            Value::Object(m)
        }
    }
}

fn watch_child(sh: Arc<Shared>, idx: usize, child: Arc<Mutex<Child>>) {
    loop {
        let r = child.lock().unwrap().try_wait();
        match r {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                let mut st = sh.lock();
                let p = &mut st.procs[idx];
                p.exited_ms = Some(now_ms());
                p.exit_code = status.code();
                p.signal = status.signal();
                sh.cv.notify_all();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return,
        }
    }
}

// ---------------------------------------------------------------- Runtime API server

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    for s in listener.incoming() {
        if sh.lock().stopping {
            return;
        }
        let Ok(s) = s else { continue };
        let _ = s.set_nodelay(true);
        if let Ok(c) = s.try_clone() {
            sh.conns.lock().unwrap().push(c);
        }
        let conn = sh.conn_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let sh2 = sh.clone();
        std::thread::spawn(move || serve_conn(sh2, s, conn));
    }
}

fn serve_conn(sh: Arc<Shared>, stream: TcpStream, conn: u64) {
    let Ok(rs) = stream.try_clone() else { return };
    let mut reader = BufReader::new(rs);
    let mut writer = stream;
    loop {
        let (req, started_ms) = match http::read_request_timed(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(_) => {
                let _ = http::write_response(&mut writer, 400, &[], b"bad request", true);
                return;
            }
        };
        let seq = {
            let mut st = sh.lock();
            let seq = st.wire.len();
            st.wire.push(WireEvent {
                seq,
                conn,
                started_ms,
                at_ms: now_ms(),
                method: req.method.clone(),
                path: req.path.clone(),
                headers: req.headers.clone(),
                body: req.body.clone(),
                ext: None,
                status: None,
                answered_ms: None,
                answer_headers: vec![],
                answer_body: vec![],
            });
            seq
        };
        let ans = handle(&sh, &req, seq);
        let Some((status, headers, body)) = ans else {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        };
        let close = req.wants_close();
        // Recorded just before the answer is written, so whoever saw the
        // answer also finds it in wire().
        {
            let mut st = sh.lock();
            let w = &mut st.wire[seq];
            w.status = Some(status);
            w.answered_ms = Some(now_ms());
            w.answer_headers = headers.clone();
            w.answer_body = body.clone();
        }
        let ok = http::write_response(&mut writer, status, &headers, &body, close).is_ok();
        if !ok || close {
            return;
        }
    }
}

fn handle(sh: &Arc<Shared>, req: &Request, seq: usize) -> Answer {
    let path = req.path.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("POST", "/2020-01-01/extension/register") => h_register(sh, req, seq),
        ("GET", "/2020-01-01/extension/event/next") => h_next(sh, req, seq),
        ("POST", "/2020-01-01/extension/init/error") => h_error(sh, req, seq, true),
        ("POST", "/2020-01-01/extension/exit/error") => h_error(sh, req, seq, false),
        ("PUT", "/2022-07-01/telemetry") => h_subscribe(sh, req, seq),
        (
            _,
            "/2020-01-01/extension/register"
            | "/2020-01-01/extension/event/next"
            | "/2020-01-01/extension/init/error"
            | "/2020-01-01/extension/exit/error"
            | "/2022-07-01/telemetry",
        ) => answer(405, err_body("MethodNotAllowed", "method not allowed")),
        _ => answer(
            404,
            err_body("NotFound", "no such endpoint in the emulator"),
        ),
    }
}

/// Find the extension by `Lambda-Extension-Identifier`.
fn ext_by_id(st: &State, req: &Request) -> Result<usize, Answer> {
    let Some(id) = req.header("Lambda-Extension-Identifier") else {
        return Err(answer(
            403,
            err_body(
                "Extension.MissingHeader",
                "Missing Lambda-Extension-Identifier header",
            ),
        ));
    };
    st.exts
        .iter()
        .position(|e| e.id == id.trim())
        .ok_or_else(|| {
            answer(
                403,
                err_body(
                    "Extension.UnknownExtensionIdentifier",
                    "Unknown extension identifier",
                ),
            )
        })
}

fn h_register(sh: &Arc<Shared>, req: &Request, seq: usize) -> Answer {
    let name = req
        .header("Lambda-Extension-Name")
        .unwrap_or("")
        .trim()
        .to_string();
    let mut st = sh.lock();
    st.wire[seq].ext = Some(name.clone()).filter(|n| !n.is_empty());
    if let Some(code) = sh.cfg.faults.register_status {
        return answer(
            code,
            err_body(
                "Extension.InjectedFault",
                "register failed (injected fault)",
            ),
        );
    }
    if name.is_empty() {
        return answer(
            403,
            err_body("Extension.InvalidExtensionName", "Empty extension name"),
        );
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return answer(
                403,
                err_body(
                    "InvalidRequestFormat",
                    "register body must be a JSON object",
                ),
            )
        }
    };
    if body
        .get("configurationKeys")
        .and_then(|v| v.as_array())
        .map(|a| !a.is_empty())
        .unwrap_or(false)
    {
        return answer(
            403,
            err_body(
                "InvalidRequestFormat",
                "configurationKeys are deprecated; use environment variables instead",
            ),
        );
    }
    let events: Vec<String> = match body.get("events") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => {
            let mut v = vec![];
            for e in a {
                match e.as_str() {
                    Some(s) => v.push(s.to_string()),
                    None => {
                        return answer(
                            403,
                            err_body("InvalidRequestFormat", "events must be strings"),
                        )
                    }
                }
            }
            v
        }
        _ => {
            return answer(
                403,
                err_body("InvalidRequestFormat", "events must be an array"),
            )
        }
    };
    if st.registration_closed {
        return answer(
            403,
            err_body(
                "Extension.RegistrationClosed",
                "Extension registration closed already",
            ),
        );
    }
    let proc_idx = st.procs.iter().position(|p| p.name == name);
    for e in &events {
        let valid = e == "INVOKE" || e == "SHUTDOWN";
        if !valid {
            return answer(
                403,
                err_body(
                    "Extension.InvalidEventType",
                    &format!("{e}: unknown event type"),
                ),
            );
        }
        if sh.mi() && e == "INVOKE" {
            return answer(
                403,
                err_body(
                    "Extension.InvalidEventType",
                    "INVOKE: INVOKE event is not supported on Lambda Managed Instances",
                ),
            );
        }
        if proc_idx.is_none() && e == "SHUTDOWN" {
            // Name does not match a file in /opt/extensions: treated as an
            // internal extension, which may not receive SHUTDOWN.
            return answer(
                403,
                err_body(
                    "Extension.InvalidEventType",
                    &format!("SHUTDOWN: event not supported for internal extension {name:?} (Lambda-Extension-Name must be the executable's file name)"),
                ),
            );
        }
    }
    if st.exts.iter().any(|e| e.name == name) {
        return answer(
            403,
            err_body(
                "Extension.InvalidExtensionState",
                "Extension with this name already registered",
            ),
        );
    }
    let id = uuid();
    let t = now_ms();
    if let Some(i) = proc_idx {
        st.procs[i].registered_ms = Some(t);
    }
    st.exts.push(Ext {
        id: id.clone(),
        name: name.clone(),
        events: events.clone(),
        proc_idx,
        queue: VecDeque::new(),
        waiting: false,
        next_calls: vec![],
        last_invoke: None,
        errored: None,
    });
    // Managed instances report every extension's state once, after
    // initRuntimeDone (see finish_init).
    if !sh.mi() {
        sh.emit_now(
            &mut st,
            "platform.extension",
            json!({"name": name, "state": "Ready", "events": events}),
        );
    }
    let f = &sh.cfg.function;
    let mut resp =
        json!({"functionName": f.name, "functionVersion": f.version, "handler": f.handler});
    let wants_account = req
        .header("Lambda-Extension-Accept-Feature")
        .map(|v| v.split(',').any(|x| x.trim() == "accountId"))
        .unwrap_or(false);
    if wants_account {
        resp["accountId"] = json!(f.account_id);
    }
    sh.cv.notify_all();
    Some((
        200,
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("Lambda-Extension-Identifier".into(), id),
        ],
        serde_json::to_vec(&resp).unwrap(),
    ))
}

fn h_next(sh: &Arc<Shared>, req: &Request, seq: usize) -> Answer {
    let mut st = sh.lock();
    let i = match ext_by_id(&st, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    st.wire[seq].ext = Some(st.exts[i].name.clone());
    if st.exts[i].errored.is_some() {
        return answer(
            403,
            err_body(
                "Extension.InvalidExtensionState",
                "extension reported an error and must exit",
            ),
        );
    }
    let t = now_ms();
    st.exts[i].waiting = true;
    st.exts[i].next_calls.push(t);
    if let Some(p) = st.exts[i].proc_idx {
        if st.procs[p].first_next_ms.is_none() {
            st.procs[p].first_next_ms = Some(t);
        }
    }
    sh.cv.notify_all();
    loop {
        if st.stopping {
            st.exts[i].waiting = false;
            return None;
        }
        if let Some(ev) = st.exts[i].queue.pop_front() {
            st.exts[i].waiting = false;
            if ev["eventType"] == "INVOKE" {
                st.exts[i].last_invoke = ev["requestId"].as_str().map(String::from);
            }
            sh.cv.notify_all();
            return Some((
                200,
                vec![
                    ("Content-Type".into(), "application/json".into()),
                    ("Lambda-Extension-Event-Identifier".into(), uuid()),
                ],
                serde_json::to_vec(&ev).unwrap(),
            ));
        }
        st = sh.cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
}

fn h_error(sh: &Arc<Shared>, req: &Request, seq: usize, init: bool) -> Answer {
    let mut st = sh.lock();
    let i = match ext_by_id(&st, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    st.wire[seq].ext = Some(st.exts[i].name.clone());
    let Some(ty) = req.header("Lambda-Extension-Function-Error-Type") else {
        return answer(
            400,
            err_body(
                "InvalidRequestFormat",
                "Missing Lambda-Extension-Function-Error-Type header",
            ),
        );
    };
    let ty = ty.to_string();
    st.exts[i].errored = Some(ty.clone());
    if init && !st.init_finished {
        st.init_error.get_or_insert(ty);
    }
    sh.cv.notify_all();
    answer(202, br#"{"status":"OK"}"#.to_vec())
}

fn h_subscribe(sh: &Arc<Shared>, req: &Request, seq: usize) -> Answer {
    let mut st = sh.lock();
    let i = match ext_by_id(&st, req) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let ext_name = st.exts[i].name.clone();
    st.wire[seq].ext = Some(ext_name.clone());
    if sh.cfg.faults.subscribe_answer_202 {
        return Some((202, vec![], vec![]));
    }
    let v: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return answer(
                400,
                err_body("ValidationError", "request body is not a JSON object"),
            )
        }
    };
    let sub = match validate_subscription(sh, &v, &ext_name) {
        Ok(s) => s,
        Err(msg) => return answer(400, err_body("ValidationError", &msg)),
    };
    if !st.window_open {
        return answer(
            403,
            err_body(
                "Telemetry.SubscriptionClosed",
                "Telemetry API is no longer accepting subscriptions",
            ),
        );
    }
    // A new subscription by the same extension replaces the old one.
    for s in st.subs.iter_mut().filter(|s| s.info.ext == ext_name) {
        s.closed = true;
    }
    let mut s = Sub {
        info: sub.clone(),
        queue: VecDeque::new(),
        queued_bytes: 0,
        flush_now: false,
        closed: false,
    };
    let now = now_ms();
    for ev in st.replay.clone() {
        if type_selected(&sub.types, &ev.ty) {
            enqueue(&mut s, &ev, now);
        }
    }
    st.subs.push(s);
    let idx = st.subs.len() - 1;
    sh.emit_now(
        &mut st,
        "platform.telemetrySubscription",
        json!({"name": ext_name, "state": "Subscribed", "types": sub.types}),
    );
    let sh2 = sh.clone();
    let h = std::thread::Builder::new()
        .name(format!("deliver-{ext_name}"))
        .spawn(move || delivery_loop(sh2, idx))
        .ok();
    drop(st);
    if let Some(h) = h {
        sh.threads.lock().unwrap().push(h);
    }
    Some((
        200,
        vec![("Content-Type".into(), "text/plain".into())],
        b"OK".to_vec(),
    ))
}

fn validate_subscription(sh: &Shared, v: &Value, ext: &str) -> Result<Subscription, String> {
    let schema = v["schemaVersion"]
        .as_str()
        .ok_or("schemaVersion is required")?
        .to_string();
    if !SCHEMAS.contains(&schema.as_str()) {
        return Err(format!("unsupported schemaVersion {schema:?}"));
    }
    if sh.mi() && schema != "2025-01-29" {
        return Err(format!(
            "schemaVersion {schema:?} is not supported on Lambda Managed Instances; use 2025-01-29"
        ));
    }
    let dest = &v["destination"];
    let proto = dest["protocol"]
        .as_str()
        .ok_or("destination.protocol is required")?;
    if proto != "HTTP" {
        return Err(format!("destination.protocol must be HTTP, got {proto:?}"));
    }
    let uri = dest["URI"]
        .as_str()
        .ok_or("destination.URI is required")?
        .to_string();
    let (addr, path) = resolve_uri(&uri)?;
    let types: Vec<String> = match &v["types"] {
        Value::Array(a) if !a.is_empty() => {
            let mut t = vec![];
            for x in a {
                let s = x.as_str().ok_or("types must be strings")?;
                if !["platform", "function", "extension"].contains(&s) {
                    return Err(format!("unknown telemetry type {s:?}"));
                }
                t.push(s.to_string());
            }
            t
        }
        Value::Null => return Err("types is required".into()),
        _ => return Err("types must be a non-empty array".into()),
    };
    let b = &v["buffering"];
    let get = |k: &str, def: u64, lo: u64, hi: u64| -> Result<u64, String> {
        match &b[k] {
            Value::Null => Ok(def),
            x => {
                let n = x
                    .as_u64()
                    .ok_or(format!("buffering.{k} must be a non-negative integer"))?;
                if n < lo || n > hi {
                    Err(format!(
                        "buffering.{k} must be between {lo} and {hi}, got {n}"
                    ))
                } else {
                    Ok(n)
                }
            }
        }
    };
    let max_items = get("maxItems", 1000, 1000, 10_000)? as usize;
    let max_bytes = get("maxBytes", 262_144, 262_144, 1_048_576)? as usize;
    let timeout_ms = get("timeoutMs", 1000, 25, 30_000)?;
    Ok(Subscription {
        ext: ext.to_string(),
        schema,
        types,
        max_items,
        max_bytes,
        timeout_ms,
        uri,
        addr,
        path,
        subscribed_ms: now_ms(),
    })
}

/// Parse `http://host:port/path`, mapping `sandbox.localdomain` (and
/// `sandbox`, `localhost`) to 127.0.0.1.
pub(crate) fn resolve_uri(uri: &str) -> Result<(SocketAddr, String), String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or(format!("destination.URI must start with http://: {uri:?}"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in {uri:?}"))?,
        ),
        None => (hostport, 80),
    };
    let host = match host {
        "sandbox.localdomain" | "sandbox" | "localhost" => "127.0.0.1",
        h => h,
    };
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        format!("destination host {host:?} is not reachable from the platform (use sandbox.localdomain)")
    })?;
    if !ip.is_loopback() && !ip.is_unspecified() {
        return Err(format!("destination {ip} is not inside the sandbox"));
    }
    let ip = if ip.is_unspecified() {
        "127.0.0.1".parse().unwrap()
    } else {
        ip
    };
    let addr = (ip, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    Ok((addr, path))
}

// ---------------------------------------------------------------- INIT

fn init_thread(sh: Arc<Shared>) {
    let mut st = sh.lock();
    let deadline = st.init_start_ms + sh.cfg.init_timeout_ms as f64;
    // Phase 1: every extension must register before the runtime starts.
    loop {
        if st.init_error.is_some() {
            return finish_init(&sh, st, None);
        }
        if let Some(p) = st
            .procs
            .iter()
            .find(|p| p.registered_ms.is_none() && !p.alive())
        {
            let _ = p;
            return finish_init(&sh, st, Some(("error", "Extension.Crash")));
        }
        if st.procs.iter().all(|p| p.registered_ms.is_some()) {
            break;
        }
        if now_ms() >= deadline || st.stopping {
            return finish_init(&sh, st, Some(("timeout", "Sandbox.Timeout")));
        }
        st = sh.wait_until(st, deadline);
    }
    st.registration_closed = true;
    let rt_start = now_ms();
    st.runtime_started_ms = Some(rt_start);
    drop(st);
    // The runtime's own output while it initialises: `function` records.
    let n = sh.cfg.init_log_lines.len();
    for (k, line) in sh.cfg.init_log_lines.iter().enumerate() {
        sleep_until(rt_start + sh.cfg.runtime_init_ms as f64 * (k + 1) as f64 / (n + 1) as f64);
        let t = now_ms();
        let mut st = sh.lock();
        let rec = log_record(sh.cfg.log_format, line, t, None);
        sh.emit(&mut st, Event { time: t, ty: "function".into(), record: rec });
    }
    sleep_until(rt_start + sh.cfg.runtime_init_ms as f64);
    let mut st = sh.lock();
    let ready = now_ms();
    st.runtime_ready_ms = Some(ready);
    let rec = json!({
        "initializationType": sh.cfg.mode.init_type(),
        "phase": "init",
        "status": "success",
        "spans": [{"name": "runtimeInit", "start": rfc3339(rt_start), "durationMs": round3(ready - rt_start)}],
    });
    sh.emit_now(&mut st, "platform.initRuntimeDone", rec);
    // Phase 2: INIT ends when the runtime and every extension called next.
    loop {
        if st.init_error.is_some() {
            return finish_init(&sh, st, None);
        }
        let crashed = st
            .exts
            .iter()
            .any(|e| e.proc_idx.map(|p| !st.procs[p].alive()).unwrap_or(false));
        if crashed {
            return finish_init(&sh, st, Some(("error", "Extension.Crash")));
        }
        if st.exts.iter().all(|e| !e.next_calls.is_empty()) {
            break;
        }
        if now_ms() >= deadline || st.stopping {
            return finish_init(&sh, st, Some(("timeout", "Sandbox.Timeout")));
        }
        st = sh.wait_until(st, deadline);
    }
    finish_init(&sh, st, Some(("success", "")));
}

fn finish_init(sh: &Arc<Shared>, mut st: MutexGuard<'_, State>, result: Option<(&str, &str)>) {
    let now = now_ms();
    let (status, err) = match result {
        Some(("success", _)) => ("success", None),
        Some((s, e)) => (s, Some(e.to_string())),
        None => ("error", st.init_error.clone()),
    };
    if let Some(e) = &err {
        st.init_error.get_or_insert(e.clone());
    }
    let mut rec = json!({
        "initializationType": sh.cfg.mode.init_type(),
        "phase": "init",
        "status": status,
        "metrics": {"durationMs": round3(now - st.init_start_ms)},
    });
    if let Some(e) = &err {
        rec["errorType"] = json!(e);
    }
    if sh.mi() {
        // AWS's managed-instances RAPID sends every agent's state after the
        // runtime's init and before initReport (runtimeInitWithTelemetry:
        // SendAgentsInitStatus, internal/lambda-managed-instances/rapid/handlers.go).
        let states: Vec<Value> = st
            .exts
            .iter()
            .map(|e| {
                let ready = !e.next_calls.is_empty();
                json!({"name": e.name, "state": if ready { "Ready" } else { "Registered" }, "events": e.events})
            })
            .collect();
        for r in states {
            sh.emit_now(&mut st, "platform.extension", r);
        }
    }
    sh.emit_now(&mut st, "platform.initReport", rec);
    // The subscription window closes when INIT ends.
    st.window_open = false;
    st.replay.clear();
    st.init_done_ms = Some(now);
    st.init_finished = true;
    st.registration_closed = true;
    // On demand, INIT is triggered by an invocation that follows at once:
    // the sandbox is not frozen between INIT and the first INVOKE.
    if status == "success" && sh.cfg.faults.next_unknown_event {
        for e in st.exts.iter_mut() {
            e.queue.push_back(json!({
                "eventType": "FUTURE_EVENT",
                "deadlineMs": to_unix_ms(now) as u64 + 1000,
                "futureField": true,
            }));
        }
    }
    sh.cv.notify_all();
}

// ---------------------------------------------------------------- INVOKE

fn not_invokable(st: &State) -> Option<String> {
    if !st.init_finished {
        return Some("INIT has not finished (call wait_init)".into());
    }
    if let Some(e) = &st.init_error {
        return Some(format!("INIT failed: {e}"));
    }
    if st.shutdown.is_some() || st.shutting_down {
        return Some("sandbox is shut down".into());
    }
    if st.needs_reset {
        return Some("sandbox needs a reset after a timeout/failure: call shutdown".into());
    }
    None
}

fn ext_idle(st: &State, e: &Ext) -> bool {
    let gone = e.proc_idx.map(|p| !st.procs[p].alive()).unwrap_or(false);
    gone || (e.waiting && e.queue.is_empty())
}

fn tracing_value(rid: &str) -> Value {
    let root = format!(
        "1-{:08x}-{}",
        (to_unix_ms(now_ms()) / 1000.0) as u64,
        &rid.replace('-', "")[..24]
    );
    json!({"type": "X-Amzn-Trace-Id", "value": format!("Root={root};Parent={:016x};Sampled=0", crate::util::rand_u64())})
}

fn status_of(inv: &Invocation) -> (&'static str, Option<String>) {
    match inv.status {
        InvokeStatus::Success => ("success", inv.error_type.clone()),
        InvokeStatus::Error => ("error", inv.error_type.clone()),
        InvokeStatus::Timeout => (
            "timeout",
            Some(inv.error_type.clone().unwrap_or("Sandbox.Timeout".into())),
        ),
        InvokeStatus::OutOfMemory => (
            "error",
            Some(
                inv.error_type
                    .clone()
                    .unwrap_or("Runtime.OutOfMemory".into()),
            ),
        ),
    }
}

/// Emit platform.start, the function's lines spread over the duration, and
/// (on demand only) runtimeDone. Returns when the function responded.
fn run_function(
    sh: &Arc<Shared>,
    inv: &Invocation,
    rid: &str,
    start: f64,
    tracing: &Option<Value>,
    after_start: &dyn Fn(),
) -> f64 {
    {
        let mut st = sh.lock();
        let mut rec = json!({"requestId": rid, "version": sh.cfg.function.version});
        if let Some(t) = tracing {
            let mut t = t.clone();
            t["spanId"] = json!(format!("{:016x}", crate::util::rand_u64()));
            rec["tracing"] = t;
        }
        sh.emit(
            &mut st,
            Event {
                time: start,
                ty: "platform.start".into(),
                record: rec,
            },
        );
    }
    after_start();
    let n = inv.log_lines.len();
    for (k, line) in inv.log_lines.iter().enumerate() {
        sleep_until(start + inv.duration_ms as f64 * (k + 1) as f64 / (n + 1) as f64);
        let t = now_ms();
        let mut st = sh.lock();
        let rec = log_record(sh.cfg.log_format, line, t, Some(rid));
        sh.emit(
            &mut st,
            Event {
                time: t,
                ty: "function".into(),
                record: rec,
            },
        );
    }
    sleep_until(start + inv.duration_ms as f64);
    let done = now_ms();
    if sh.mi() {
        // Managed instances emit no platform.runtimeDone (the report carries
        // status, errorType and the spans; see invoke_managed).
        return done;
    }
    let (status, err) = status_of(inv);
    let runtime_ms = round3(done - start);
    let mut rec = json!({
        "requestId": rid,
        "status": status,
        "metrics": {"durationMs": runtime_ms, "producedBytes": inv.produced_bytes},
        "spans": response_spans(start, runtime_ms),
    });
    if let Some(e) = err {
        rec["errorType"] = json!(e);
    }
    let mut st = sh.lock();
    sh.emit(
        &mut st,
        Event {
            time: done,
            ty: "platform.runtimeDone".into(),
            record: rec,
        },
    );
    // runtimeDone is pushed to subscribers promptly, so the extension sees it
    // before it decides to call next.
    sh.flush_all_now(&mut st);
    done
}

/// `responseLatency` (until the response's first byte; 98 % of the runtime
/// here) and `responseDuration` (the rest).
fn response_spans(start: f64, runtime_ms: f64) -> Value {
    let latency = round3(runtime_ms * 0.98);
    json!([
        {"name": "responseLatency", "start": rfc3339(start), "durationMs": latency},
        {"name": "responseDuration", "start": rfc3339(start + latency), "durationMs": round3(runtime_ms - latency)},
    ])
}

fn invoke_on_demand(sh: &Arc<Shared>, inv: Invocation) -> InvokeOutcome {
    let rid = uuid();
    let mut out = InvokeOutcome {
        request_id: rid.clone(),
        ..Default::default()
    };
    let tracing = if inv.tracing {
        Some(tracing_value(&rid))
    } else {
        None
    };
    let deadline;
    {
        let mut st = sh.lock();
        if let Some(e) = not_invokable(&st) {
            out.error = Some(e);
            return out;
        }
        while st.invoking {
            st = sh.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        // Wait until the sandbox is idle: everyone parked in next.
        let until = now_ms() + 10_000.0;
        while !st.exts.iter().all(|e| ext_idle(&st, e)) {
            if now_ms() >= until {
                out.error = Some("extensions never became idle (not waiting in next)".into());
                return out;
            }
            st = sh.wait_until(st, until);
        }
        st.invoking = true;
        sh.thaw(&mut st);
        let start = now_ms();
        out.started_ms = start;
        deadline = start + sh.cfg.function.timeout_ms as f64;
        let mut ev = json!({
            "eventType": "INVOKE",
            "deadlineMs": to_unix_ms(deadline) as u64,
            "requestId": rid,
            "invokedFunctionArn": sh.cfg.function.arn(),
        });
        if let Some(t) = &tracing {
            ev["tracing"] = t.clone();
        }
        out.event = ev.clone();
        for e in st.exts.iter_mut().filter(|e| e.wants("INVOKE")) {
            e.queue.push_back(ev.clone());
        }
        sh.cv.notify_all();
    }
    let start = out.started_ms;
    let done = run_function(sh, &inv, &rid, start, &tracing, &|| {});
    out.runtime_done_ms = done;
    let (status, err) = status_of(&inv);
    out.status = status.into();
    out.error_type = err.clone();
    let mut st = sh.lock();
    let mut end = done;
    if inv.status == InvokeStatus::Timeout {
        // The deadline passed: the platform does not wait for extensions.
        out.needs_reset = true;
    } else {
        // The invocation ends when every INVOKE extension called next again.
        loop {
            let mut pending = vec![];
            let mut last = None::<f64>;
            for e in st.exts.iter().filter(|e| e.wants("INVOKE")) {
                let gone = e.proc_idx.map(|p| !st.procs[p].alive()).unwrap_or(false);
                if gone {
                    continue;
                }
                let got_it = e.last_invoke.as_deref() == Some(rid.as_str());
                if got_it && e.waiting {
                    let t = *e.next_calls.last().unwrap();
                    last = Some(last.map_or(t, |l: f64| l.max(t)));
                } else {
                    pending.push(e.name.clone());
                }
            }
            if pending.is_empty() {
                if let Some(t) = last {
                    out.extensions_next_ms = Some(t);
                    out.post_runtime_ms = Some(round3((t - done).max(0.0)));
                    end = end.max(t);
                }
                break;
            }
            if now_ms() >= deadline {
                out.extension_errors.extend(
                    pending
                        .iter()
                        .map(|n| format!("{n}: did not call next before the deadline")),
                );
                out.needs_reset = true;
                end = now_ms();
                break;
            }
            st = sh.wait_until(st, deadline);
        }
        for e in st.exts.iter().filter(|e| e.wants("INVOKE")) {
            if e.proc_idx.map(|p| !st.procs[p].alive()).unwrap_or(false) {
                out.extension_errors
                    .push(format!("{}: exited during the invocation", e.name));
                out.needs_reset = true;
            }
        }
    }
    if inv.status == InvokeStatus::OutOfMemory {
        out.needs_reset = true;
    }
    let dur = round3(end - start);
    out.report_duration_ms = dur;
    out.billed_duration_ms = dur.ceil().max(1.0) as u64;
    let mem = sh.cfg.function.memory_mb;
    let used = inv
        .max_memory_used_mb
        .unwrap_or(if inv.status == InvokeStatus::OutOfMemory {
            mem
        } else {
            64.min(mem)
        });
    let mut metrics = json!({
        "durationMs": dur,
        "billedDurationMs": out.billed_duration_ms,
        "memorySizeMB": mem,
        "maxMemoryUsedMB": used,
    });
    if st.invocations == 0 {
        if let Some(d) = st.init_done_ms {
            let init = round3(d - st.init_start_ms);
            metrics["initDurationMs"] = json!(init);
            out.init_duration_ms = Some(init);
        }
    }
    st.invocations += 1;
    let mut rec = json!({"requestId": rid, "status": status, "metrics": metrics});
    if let Some(e) = &err {
        rec["errorType"] = json!(e);
    }
    if let Some(t) = &tracing {
        rec["tracing"] = t.clone();
    }
    // Sandbox freezes as soon as everyone waits in next; the report is
    // emitted then, so it is delivered at the next thaw.
    if !out.needs_reset {
        sh.freeze(&mut st, end);
    }
    sh.emit(
        &mut st,
        Event {
            time: end,
            ty: "platform.report".into(),
            record: rec,
        },
    );
    if out.needs_reset {
        st.needs_reset = true;
    }
    st.invoking = false;
    sh.cv.notify_all();
    out
}

fn invoke_managed(sh: &Arc<Shared>, inv: Invocation, started: &std::sync::Barrier) -> InvokeOutcome {
    let rid = uuid();
    let mut out = InvokeOutcome {
        request_id: rid.clone(),
        ..Default::default()
    };
    let tracing = if inv.tracing {
        Some(tracing_value(&rid))
    } else {
        None
    };
    let start = now_ms();
    out.started_ms = start;
    let done = run_function(sh, &inv, &rid, start, &tracing, &|| {
        started.wait();
    });
    out.runtime_done_ms = done;
    let (status, err) = status_of(&inv);
    out.status = status.into();
    out.error_type = err.clone();
    let dur = round3(done - start);
    out.report_duration_ms = dur;
    out.billed_duration_ms = dur.ceil().max(1.0) as u64;
    // As AWS's managed-instances emulator: status, errorType?, only
    // durationMs, and the responseLatency/responseDuration spans
    // (internal/lambda-managed-instances/aws-lambda-rie/test/rie_test.go).
    let mut rec = json!({
        "requestId": rid,
        "status": status,
        "metrics": {"durationMs": dur},
        "spans": response_spans(start, dur),
    });
    if let Some(e) = &err {
        rec["errorType"] = json!(e);
    }
    let mut st = sh.lock();
    st.invocations += 1;
    sh.emit(
        &mut st,
        Event {
            time: done,
            ty: "platform.report".into(),
            record: rec,
        },
    );
    out
}

// ---------------------------------------------------------------- SHUTDOWN

fn do_shutdown(sh: &Arc<Shared>, reason: &str) -> ShutdownOutcome {
    let mut st = sh.lock();
    if let Some(o) = &st.shutdown {
        return o.clone();
    }
    while st.invoking {
        st = sh.cv.wait(st).unwrap_or_else(|e| e.into_inner());
    }
    st.shutting_down = true;
    sh.thaw(&mut st);
    let started = now_ms();
    let deadline = started + sh.cfg.shutdown_budget_ms as f64;
    let ev = json!({"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": to_unix_ms(deadline) as u64});
    for e in st.exts.iter_mut().filter(|e| e.wants("SHUTDOWN")) {
        e.queue.push_back(ev.clone());
    }
    sh.flush_all_now(&mut st);
    // Wait for the extensions that registered SHUTDOWN to exit (others are
    // killed once those are gone).
    let shutdown_procs: Vec<usize> = st
        .exts
        .iter()
        .filter(|e| e.wants("SHUTDOWN"))
        .filter_map(|e| e.proc_idx)
        .collect();
    while shutdown_procs.iter().any(|&p| st.procs[p].alive()) && now_ms() < deadline {
        st = sh.wait_until(st, deadline);
    }
    drop(st);
    let killed_any = kill_alive(sh);
    // Reap (the watcher threads record exit status).
    let until = now_ms() + 2000.0;
    let mut st = sh.lock();
    while st
        .procs
        .iter()
        .any(|p| !p.is_thread && p.exited_ms.is_none())
        && now_ms() < until
    {
        st = sh.wait_until(st, until);
    }
    // Let the output readers drain what the processes printed last.
    let until = now_ms() + 1000.0;
    while st.readers_open > 0 && now_ms() < until {
        st = sh.wait_until(st, until);
    }
    let last_exit = st
        .procs
        .iter()
        .map(|p| p.exited_ms.unwrap_or(now_ms()))
        .fold(started, f64::max);
    let undelivered = st
        .subs
        .iter()
        .filter(|s| !s.closed)
        .map(|s| s.queue.len())
        .sum();
    let out = ShutdownOutcome {
        reason: reason.into(),
        started_ms: started,
        deadline_ms: deadline,
        processes: st.procs.iter().map(|p| p.info()).collect(),
        killed: killed_any,
        elapsed_ms: round3(last_exit - started),
        undelivered_records: undelivered,
    };
    st.shutdown = Some(out.clone());
    st.shutting_down = false;
    drop(st);
    stop_everything(sh, false);
    out
}

/// SIGKILL every process still alive; mark threads killed. Returns whether anything was killed.
fn kill_alive(sh: &Arc<Shared>) -> bool {
    let alive: Vec<usize> = {
        let st = sh.lock();
        st.procs
            .iter()
            .enumerate()
            .filter(|(_, p)| p.alive())
            .map(|(i, _)| i)
            .collect()
    };
    if alive.is_empty() {
        return false;
    }
    let children = sh.children.lock().unwrap().clone();
    for (idx, child) in children {
        if alive.contains(&idx) {
            let _ = child.lock().unwrap().kill();
        }
    }
    let mut st = sh.lock();
    for &i in &alive {
        st.procs[i].killed = true;
        if st.procs[i].is_thread {
            st.procs[i].exited_ms.get_or_insert(now_ms());
        }
    }
    // Connections of killed in-thread extensions are closed below by stop.
    sh.cv.notify_all();
    true
}

fn stop_everything(sh: &Arc<Shared>, kill: bool) {
    if kill {
        kill_alive(sh);
    }
    {
        let mut st = sh.lock();
        if st.stopping {
            return;
        }
        st.stopping = true;
        // Unblock delivery threads waiting on a subscriber that never answers.
        for f in st.in_flight.iter() {
            if let Some(sock) = &f.sock {
                let _ = sock.shutdown(Shutdown::Both);
            }
        }
        sh.cv.notify_all();
    }
    for c in sh.conns.lock().unwrap().drain(..) {
        let _ = c.shutdown(Shutdown::Both);
    }
    // Wake the accept loop.
    let _ = TcpStream::connect_timeout(&sh.api_addr, Duration::from_millis(200));
    let hs: Vec<_> = sh.threads.lock().unwrap().drain(..).collect();
    for h in hs {
        let _ = h.join();
    }
    // Reap children so no zombies are left.
    for (_, c) in sh.children.lock().unwrap().iter() {
        let mut c = c.lock().unwrap();
        if let Ok(None) = c.try_wait() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------- delivery

fn delivery_loop(sh: Arc<Shared>, idx: usize) {
    let mut conn: Option<ClientConn> = None;
    loop {
        // Wait for a due batch.
        let (batch, info) = {
            let mut st = sh.lock();
            loop {
                if st.stopping || st.subs[idx].closed {
                    return;
                }
                let frozen = st.frozen;
                let s = &st.subs[idx];
                if !frozen && !s.queue.is_empty() {
                    let due_at = s.queue.front().unwrap().0 + s.info.timeout_ms as f64;
                    let due = s.flush_now
                        || s.queue.len() >= s.info.max_items
                        || s.queued_bytes >= s.info.max_bytes
                        || now_ms() >= due_at;
                    if due {
                        break;
                    }
                    st = sh.wait_until(st, due_at);
                } else {
                    st = sh.wait_until(st, now_ms() + 50.0);
                }
            }
            let s = &mut st.subs[idx];
            let mut batch = vec![];
            let mut bytes = 0;
            while let Some((_, _, size)) = s.queue.front() {
                if batch.len() >= s.info.max_items
                    || (bytes >= s.info.max_bytes && !batch.is_empty())
                {
                    break;
                }
                bytes += *size;
                let (_, el, size) = s.queue.pop_front().unwrap();
                s.queued_bytes -= size;
                batch.push(el);
            }
            if s.queue.is_empty() {
                s.flush_now = false;
            }
            (batch, s.info.clone())
        };
        let body = serde_json::to_vec(&Value::Array(batch.clone())).unwrap();
        let attempts = 1 + sh.cfg.delivery_retries;
        let mut delivered = false;
        for attempt in 1..=attempts {
            let key = DELIVERY_KEY.fetch_add(1, Ordering::Relaxed);
            let started;
            {
                // No delivery attempt starts while the sandbox is frozen.
                let mut st = sh.lock();
                while st.frozen && !st.stopping {
                    st = sh.wait_until(st, now_ms() + 50.0);
                }
                if st.stopping {
                    return;
                }
                st.in_flight.push(InFlight {
                    key,
                    sock: None,
                    answered: false,
                });
                started = now_ms();
            }
            let fault = {
                let mut st = sh.lock();
                if st.delivery_faults_left > 0 {
                    st.delivery_faults_left -= 1;
                    true
                } else {
                    false
                }
            };
            let res = if fault {
                post_truncated(&info, &body)
            } else {
                post(&sh, &mut conn, &info, &body, key)
            };
            let finished = now_ms();
            let spanned_freeze = {
                let mut st = sh.lock();
                st.in_flight.retain(|f| f.key != key);
                let hit = st.spanned.contains(&key);
                st.spanned.retain(|k| *k != key);
                hit
            };
            let (status, error) = match res {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            let ok = matches!(status, Some(s) if (200..300).contains(&s));
            let last = attempt == attempts;
            {
                let mut st = sh.lock();
                st.deliveries.push(Delivery {
                    ext: info.ext.clone(),
                    started_ms: started,
                    finished_ms: finished,
                    attempt,
                    records: batch.clone(),
                    body_bytes: body.len(),
                    status,
                    error,
                    dropped: !ok && last,
                    spanned_freeze,
                });
                sh.cv.notify_all();
            }
            if ok {
                delivered = true;
                break;
            }
            conn = None;
            if !last {
                std::thread::sleep(Duration::from_millis(
                    sh.cfg.delivery_backoff_ms << (attempt - 1),
                ));
            }
        }
        if !delivered {
            let mut st = sh.lock();
            if st.stopping || st.subs[idx].closed {
                return;
            }
            let ev = Event {
                time: now_ms(),
                ty: "platform.logsDropped".into(),
                record: json!({"reason": LOGS_DROPPED_REASON, "droppedRecords": batch.len(), "droppedBytes": body.len()}),
            };
            st.events.push(ev.clone());
            let now = now_ms();
            enqueue(&mut st.subs[idx], &ev, now);
            sh.cv.notify_all();
        }
    }
}

/// POST a batch, reusing the keep-alive connection when possible.
fn post(
    sh: &Shared,
    conn: &mut Option<ClientConn>,
    info: &Subscription,
    body: &[u8],
    key: u64,
) -> Result<u16, String> {
    let timeout = Duration::from_millis(sh.cfg.delivery_timeout_ms);
    let host = format!("sandbox.localdomain:{}", info.addr.port());
    let headers = [
        ("Content-Type", "application/json"),
        ("User-Agent", "lambda-emulator"),
    ];
    for fresh_try in 0..2 {
        let reused = conn.is_some();
        if conn.is_none() {
            let c = ClientConn::connect(info.addr, Duration::from_millis(500))
                .map_err(|e| format!("connect: {e}"))?;
            c.set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            *conn = Some(c);
        }
        let c = conn.as_mut().unwrap();
        if let Ok(clone) = c.reader.get_ref().try_clone() {
            let mut st = sh.lock();
            if let Some(f) = st.in_flight.iter_mut().find(|f| f.key == key) {
                f.sock = Some(clone);
            }
        }
        let res = c.send("POST", &info.path, &host, &headers, body).and_then(|()| {
            // The answer is there (peeked): record that before consuming it.
            if c.wait_answer() {
                let mut st = sh.lock();
                if let Some(f) = st.in_flight.iter_mut().find(|f| f.key == key) {
                    f.answered = true;
                }
            }
            c.read()
        });
        match res {
            Ok(r) => {
                if !r.keep_alive() {
                    *conn = None;
                }
                return Ok(r.status);
            }
            Err(e) => {
                *conn = None;
                // A reused idle connection the server already closed: retry once fresh.
                let stale = reused
                    && fresh_try == 0
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::BrokenPipe
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::ConnectionAborted
                    );
                if !stale {
                    return Err(format!("{:?}: {e}", e.kind()));
                }
            }
        }
    }
    Err("unreachable".into())
}

/// Fault: send the headers and half the body, then close.
fn post_truncated(info: &Subscription, body: &[u8]) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&info.addr, Duration::from_millis(500))
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: sandbox.localdomain:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        info.path,
        info.addr.port(),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(&body[..body.len() / 2]);
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Both);
    Err("injected fault: connection closed mid-body".into())
}
