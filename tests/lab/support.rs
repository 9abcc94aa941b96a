//! What the lab tests share: the lab itself (one set of hosts, taken in turns), running
//! dbfleet and commands on the hosts (bounded), and the checks several areas make.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

pub const DB_HOSTS: [&str; 3] = ["db1", "db2", "db3"];

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub struct Lab {
    /// No apply has run since the hosts were created.
    pub fresh: bool,
}

/// Which share of the machine a test holds: the main lab's, or the one the other labs
/// (the server matrix, the package check) take in turns. Two labs at once: the machine has
/// 2 cores; a lab's hosts mostly wait (on the network, on fsync, on timeouts), so two use
/// them, and more would slow the timing checks. The main lab keeps its own share: its
/// tests are the longest queue, and the run ends when it does.
#[derive(Clone, Copy, PartialEq)]
enum Share {
    Main,
    Other,
}

/// The machine's two shares (whether each is free), and how many tests wait to have the
/// machine alone (they go first: a timing or saturation check must not wait behind a
/// stream of new tests).
struct Machine {
    state: Mutex<MachineState>,
    changed: Condvar,
}

struct MachineState {
    main_free: bool,
    other_free: bool,
    alone_waiting: u32,
    /// Main-lab tests that asked for their turn and have not ended, and whether one ever
    /// did: once the main lab's queue is done (`main_seen` and none pending), the other
    /// labs' tests take its share too, two at a time. Every test thread starts at once
    /// (`RUST_TEST_THREADS` in .cargo/config.toml is above the number of lab tests), so
    /// after the first main-lab turn a count of zero means the main queue is empty, not
    /// that a test has yet to ask. Why: CI's turn table (stop 40's run) had about 4,000 s
    /// of other labs' tests beside the main lab's 3,300 s (drills left out): past the main
    /// queue they would run one at a time on a half-idle machine.
    main_pending: u32,
    main_seen: bool,
    /// Tests of the [`LONGEST_FIRST`] labs waiting for a share: the other labs' tests let
    /// them go first.
    first_waiting: u32,
}

/// The labs whose one test is the longest of the other labs' (held 600–1,250 s in CI
/// beside the main lab, against 50–350 s for the rest): they take a free share before the
/// others' tests, so the run does not end with one of them alone on a half-idle machine
/// (seen: Group Replication started at 2,730 s, after every short test, and ran alone on
/// to 3,451 s, the main lab's queue having ended at 3,158 s).
const LONGEST_FIRST: [&str; 3] = ["labgr", "labg", "labmy"];

impl MachineState {
    fn free(&mut self, share: Share) -> &mut bool {
        match share {
            Share::Main => &mut self.main_free,
            Share::Other => &mut self.other_free,
        }
    }
}

fn machine() -> &'static Machine {
    static M: OnceLock<Machine> = OnceLock::new();
    M.get_or_init(|| Machine {
        state: Mutex::new(MachineState {
            main_free: true,
            other_free: true,
            alone_waiting: 0,
            main_pending: 0,
            main_seen: false,
            first_waiting: 0,
        }),
        changed: Condvar::new(),
    })
}

impl Machine {
    fn state(&self) -> MutexGuard<'_, MachineState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `share`, or for another lab's test the main lab's share once the main queue
    /// is done; returns the share taken. `first`: a [`LONGEST_FIRST`] lab's test, which
    /// the other labs' tests let go first.
    fn take(&self, share: Share, first: bool) -> Share {
        let mut st = self.state();
        if first {
            st.first_waiting += 1;
        }
        loop {
            if st.alone_waiting == 0 && (share == Share::Main || first || st.first_waiting == 0) {
                let taken = if *st.free(share) {
                    Some(share)
                } else if share == Share::Other
                    && st.main_free
                    && st.main_seen
                    && st.main_pending == 0
                {
                    Some(Share::Main)
                } else {
                    None
                };
                if let Some(t) = taken {
                    *st.free(t) = false;
                    if first {
                        st.first_waiting -= 1;
                    }
                    return t;
                }
            }
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn main_asked(&self) {
        self.state().main_pending += 1;
    }

    fn main_got(&self) {
        self.state().main_seen = true;
    }

    fn main_ended(&self) {
        let mut st = self.state();
        st.main_pending -= 1;
        self.changed.notify_all();
    }

    fn take_all(&self) {
        let mut st = self.state();
        st.alone_waiting += 1;
        while !(st.main_free && st.other_free) {
            st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.alone_waiting -= 1;
        st.main_free = false;
        st.other_free = false;
    }

    fn give(&self, shares: &[Share]) {
        let mut st = self.state();
        for s in shares {
            *st.free(*s) = true;
        }
        self.changed.notify_all();
    }
}

/// A test's turn: its lab (held alone: tests of one lab take turns) and its share of the
/// machine (or all of it while [`Turn::alone`] is held). Released on drop, the share first.
pub struct Turn<T: 'static> {
    share: Share,
    /// A turn of the main lab (counted in `main_pending` until it ends).
    main_lab: bool,
    lab: Option<MutexGuard<'static, T>>,
    /// When the test asked for its turn and got it, since when it holds the machine alone
    /// (`Some` exactly while it does), and how long it held it alone before: written to
    /// [`TIMES`] on drop, so a run says where its time went.
    asked: Instant,
    got: Instant,
    alone_since: Option<Instant>,
    alone_s: f64,
}

/// Where each lab test's turn is logged when it ends (`.ci/run` prints it): the test, how
/// long it waited for its lab and share, how long it held them, and how much of that it
/// held the machine alone, in seconds.
pub const TIMES: &str = "target/lab-times.txt";

impl<T> Turn<T> {
    fn take(m: &'static Mutex<T>, share: Share, first: bool) -> Self {
        hook_panics();
        let asked = Instant::now();
        // The lab first, then the share: a test never holds a share while it waits for
        // its lab, so the labs that can run do.
        let lab = m.lock().unwrap_or_else(|e| e.into_inner());
        let main_lab = share == Share::Main;
        let share = machine().take(share, first);
        if main_lab {
            machine().main_got();
        }
        Turn {
            share,
            main_lab,
            lab: Some(lab),
            asked,
            got: Instant::now(),
            alone_since: None,
            alone_s: 0.0,
        }
    }

    /// The machine alone until the guard drops: for a check that times what it sees (a
    /// throttled link against an unthrottled one) or saturates the CPUs (a stress-ng
    /// drill), which another lab's test beside it would skew or be skewed by.
    pub fn alone(&mut self) -> Alone<'_, T> {
        // Give the share back before waiting for both: two tests that both want the
        // machine alone would otherwise each hold the share the other waits for.
        machine().give(&[self.share]);
        machine().take_all();
        self.alone_since = Some(Instant::now());
        Alone(self)
    }

    fn shares(&self) -> Vec<Share> {
        if self.alone_since.is_some() {
            vec![Share::Main, Share::Other]
        } else {
            vec![self.share]
        }
    }
}

/// See [`Turn::alone`]: back to the test's own share on drop.
pub struct Alone<'a, T: 'static>(&'a mut Turn<T>);

impl<T> Drop for Alone<'_, T> {
    fn drop(&mut self) {
        // Keep its own share: given back and taken again, it went to a waiting test, and
        // this one, holding its lab, waited a whole test for it (seen: a Galera test's
        // alone section, then 881 s waiting behind the MySQL test that took its share).
        let others: Vec<Share> = [Share::Main, Share::Other]
            .into_iter()
            .filter(|s| *s != self.0.share)
            .collect();
        machine().give(&others);
        if let Some(t) = self.0.alone_since.take() {
            self.0.alone_s += t.elapsed().as_secs_f64();
        }
    }
}

impl<T> Drop for Turn<T> {
    fn drop(&mut self) {
        machine().give(&self.shares());
        self.lab.take();
        if self.main_lab {
            machine().main_ended();
        }
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let line = format!(
            "{}\twaited {:.0} s\theld {:.0} s\talone {:.0} s{}\n",
            name,
            self.got.duration_since(self.asked).as_secs_f64(),
            self.got.elapsed().as_secs_f64(),
            self.alone_s + self.alone_since.map_or(0.0, |t| t.elapsed().as_secs_f64()),
            if std::thread::panicking() {
                let why = panics()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&name)
                    .unwrap_or_default();
                format!("\tFAILED: {why}")
            } else {
                String::new()
            },
        );
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(repo().join(TIMES))
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

impl<T> std::ops::Deref for Turn<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lab.as_ref().expect("held until drop")
    }
}

impl<T> std::ops::DerefMut for Turn<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.lab.as_mut().expect("held until drop")
    }
}

/// Each failing lab test's panic message (its first 1,500 characters, on one line), by
/// test thread, for its line in [`TIMES`]: CI keeps only the tail of a run's output, where
/// that table is printed, and the captured output of the failures was cut off (seen: four
/// failures and not one reason).
fn panics() -> &'static Mutex<BTreeMap<String, String>> {
    static P: OnceLock<Mutex<BTreeMap<String, String>>> = OnceLock::new();
    P.get_or_init(Default::default)
}

fn hook_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let at = info
                .location()
                .map(|l| format!("{}:{}: ", l.file(), l.line()))
                .unwrap_or_default();
            let one_line: String = format!("{at}{msg}")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(1500)
                .collect();
            if let Some(name) = std::thread::current().name() {
                panics()
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(name.to_string())
                    .or_insert(one_line);
            }
            default(info);
        }));
    });
}

/// The shared lab, brought up once per test run; its tests take turns, beside one test of
/// another lab.
pub fn lab() -> Turn<Lab> {
    hook_panics();
    // Counted before the lab comes up, so no other lab's test takes this share meanwhile.
    machine().main_asked();
    static LAB: OnceLock<Mutex<Lab>> = OnceLock::new();
    let m = LAB.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join("lab/lab.sh"))
            .arg("up")
            .output()
            .expect("run lab/lab.sh");
        assert!(
            out.status.success(),
            "lab/lab.sh up failed: the lab tests need Docker and debootstrap and never skip.\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mutex::new(Lab { fresh: true })
    });
    // A failed test poisons the mutex and may leave the fleet anywhere (a failover half
    // done, monitors' topology): the next test starts from fresh database hosts, as the
    // tests that change the topology end, instead of failing on what the failed one left
    // (seen: one failed monitor drill, then five tests failed converging after it).
    let mut turn = Turn::take(m, Share::Main, false);
    // Read once the lock is held: the flag stays set until cleared.
    if m.is_poisoned() {
        m.clear_poison();
        reset(&DB_HOSTS);
        turn.fresh = true;
    }
    turn
}

/// The turn of a test on another lab than the main one (`name`: `LAB_NAME`): its tests take
/// turns, and the other labs' tests take turns with them, beside the main lab's.
pub fn other_lab(name: &'static str) -> Turn<()> {
    static LABS: OnceLock<Mutex<BTreeMap<&'static str, &'static Mutex<()>>>> = OnceLock::new();
    let m: &'static Mutex<()> = LABS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name)
        .or_insert_with(|| Box::leak(Box::new(Mutex::new(()))));
    Turn::take(m, Share::Other, LONGEST_FIRST.contains(&name))
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Standard output and error as one line of words: a diagnostic's text with its
    /// wrapping and `│` gutter undone, for checks of a phrase wherever the renderer
    /// broke its lines.
    pub fn flat(&self) -> String {
        self.all()
            .replace('│', " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Both streams; an apply's FAILED task lines first (CI's log keeps the start and the
    /// end of a long message, and a plan's diffs fill the middle).
    pub fn all(&self) -> String {
        let failed: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.contains(" … FAILED ("))
            .collect();
        let head = if failed.is_empty() {
            String::new()
        } else {
            format!("--- failed tasks\n{}\n", failed.join("\n"))
        };
        format!(
            "{head}--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Every command a test runs is bounded (coreutils `timeout`, TERM then KILL): a hang fails
/// the test with what the command printed so far, instead of eating CI's time budget.
pub const DBFLEET_LIMIT_S: &str = "900";

pub const EXEC_LIMIT_S: &str = "300";

pub fn bounded(limit_s: &str, program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["--kill-after=10", limit_s, program]);
    c
}

pub fn dbfleet_with(inventory: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = bounded(DBFLEET_LIMIT_S, env!("CARGO_BIN_EXE_dbfleet"));
    c.current_dir(repo())
        .env("NO_COLOR", "1")
        .arg("-i")
        .arg(inventory)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().expect("run dbfleet");
    assert!(
        !matches!(o.status.code(), Some(124) | Some(137)),
        "dbfleet {args:?} did not finish within {DBFLEET_LIMIT_S} s:\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Asserts that `o` exits 1 (a refusal, or the problems `status` finds) and says `phrase` (on the
/// unwrapped text, [`Out::flat`]).
pub fn assert_refused(o: &Out, phrase: &str) {
    assert_eq!(o.code, 1, "{}", o.all());
    assert!(o.flat().contains(phrase), "`{phrase}` in:\n{}", o.all());
}

pub fn dbfleet(args: &[&str]) -> Out {
    dbfleet_with(&repo().join("inventories/lab.yml"), args, &[])
}

/// Runs `sh -c cmd` in a lab host's container (not through dbfleet).
pub fn on(host: &str, cmd: &str) -> String {
    exec_in(&format!("lab-{host}"), cmd)
}

/// Runs `sh -c cmd` in `container`, a host of any lab (`lab-db1`, `lab13-db1`), bounded;
/// its standard output, trimmed.
pub fn exec_in(container: &str, cmd: &str) -> String {
    try_exec_in(container, cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// `exec_in` that returns a failure as `Err(message)` instead of panicking: for checks
/// that wait for a state in which the command succeeds (a replicated table, say).
pub fn try_exec_in(container: &str, cmd: &str) -> Result<String, String> {
    let o = bounded(EXEC_LIMIT_S, "docker")
        .args(["exec", container, "sh", "-c", cmd])
        .output()
        .expect("docker exec");
    if !o.status.success() {
        return Err(format!(
            "in {container}: `{cmd}` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

pub fn sql(host: &str, query: &str) -> String {
    on(host, &format!("mariadb -N -B -e \"{query}\""))
}

pub fn sha256(host: &str, path: &str) -> String {
    on(host, &format!("sha256sum {path} | cut -c1-64"))
}

/// Applies until converged and checks that a re-plan is empty.
pub fn converge(lab: &mut Lab) {
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "apply:\n{}", a.all());
    lab.fresh = false;
    assert_empty_plan();
    replication_running();
}

/// Waits up to 30 s until every replica's IO and SQL threads run. A converged plan does
/// not imply it: an apply that restarted the primary leaves each replica's IO thread
/// "Connecting" until its next retry (`MASTER_CONNECT_RETRY` 10 s), which the plan rightly
/// treats as running. Tests that start from a converged lab read replication at once.
pub fn replication_running() {
    let deadline = Instant::now() + Duration::from_secs(30);
    for h in DB_HOSTS {
        loop {
            let st = slave_status(h);
            if st.is_empty() {
                break;
            }
            let io = st.get("Slave_IO_Running").map(String::as_str);
            let sql = st.get("Slave_SQL_Running").map(String::as_str);
            if io == Some("Yes") && sql == Some("Yes") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{h}: replication did not resume within 30 s (IO {io:?}, SQL {sql:?}, {:?})",
                st.get("Last_IO_Error")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

pub fn assert_empty_plan() {
    let p = dbfleet(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    assert!(
        p.stdout
            .contains("No changes: 6 hosts match the inventory."),
        "{}",
        p.stdout
    );
}

pub fn plan_json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = vec!["plan", "--json"];
    a.extend_from_slice(args);
    let p = dbfleet(&a);
    let v = serde_json::from_str(&p.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", p.all()));
    (p.code, v)
}

/// Host → task names with a change, from a JSON plan.
pub fn changed_tasks(plan: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for h in plan["hosts"].as_array().expect("hosts") {
        let tasks: Vec<String> = h["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .map(|c| c["task"].as_str().expect("task").to_string())
            .collect();
        if !tasks.is_empty() {
            m.insert(h["host"].as_str().expect("host").to_string(), tasks);
        }
    }
    m
}

/// A variant of the lab inventory, written to `dir/name`: each `(from, to)` edit must match
/// (a change to lab.yml cannot silently leave a test on the plain inventory), and the
/// ssh_config path is made absolute since the copy lives elsewhere.
pub fn lab_variant(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("inventories/lab.yml")).expect("lab.yml");
    let ssh_config = format!("config: {}", repo().join(".lab/ssh_config").display());
    for (from, to) in edits
        .iter()
        .copied()
        .chain([("config: ../.lab/ssh_config", ssh_config.as_str())])
    {
        assert!(text.contains(from), "lab.yml no longer contains `{from}`");
        text = text.replacen(from, to, 1);
    }
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    // The same secrets and TLS material as lab.yml: a variant changes what it says only.
    let store = repo().join("inventories/.dbfleet");
    if store.exists() && !dir.join(".dbfleet").exists() {
        let ok = Command::new("cp")
            .arg("-a")
            .arg(&store)
            .arg(dir.join(".dbfleet"))
            .status()
            .expect("cp");
        assert!(ok.success(), "copying the secrets store");
        // Not the record of an earlier failover: each variant starts outside the window.
        let _ = std::fs::remove_file(dir.join(".dbfleet/failover.json"));
    }
    p
}

pub fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    t ^ (std::process::id() as u64).rotate_left(32)
}

/// `SHOW SLAVE STATUS` of a replica, field → value.
pub fn slave_status(host: &str) -> BTreeMap<String, String> {
    on(host, "mariadb -E -e 'SHOW SLAVE STATUS'")
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .or_else(|| l.trim_end().strip_suffix(':').map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Waits up to 20 s for `query` on `host` to return `want`; an error (a table not
/// replicated yet) counts as not yet.
pub fn eventually(host: &str, query: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = try_exec_in(
            &format!("lab-{host}"),
            &format!("mariadb -N -B -e \"{query}\""),
        )
        .unwrap_or_else(|e| e);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{host}: `{query}` returned {got:?}, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The lab's application password, from lab.yml's secrets store.
pub fn app_password() -> String {
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("inventories/.dbfleet/secrets.json")).expect("secrets store"),
    )
    .expect("json");
    store["app_password"]
        .as_str()
        .expect("app_password")
        .to_string()
}

pub const WRITER: &str = include_str!("../../lab/writer.sh");

/// Feeds `input` to `sh -c cmd` in `container`, a host of any lab.
pub fn exec_in_with_input(container: &str, cmd: &str, input: &str) {
    use std::io::Write;
    let mut c = Command::new("docker")
        .args(["exec", "-i", container, "sh", "-c", cmd])
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker exec");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    assert!(c.wait().expect("wait").success(), "in {container}: {cmd}");
}

/// Starts `lab/writer.sh` in `app` (an application host's container, backup1) as the
/// application user with `password`, inserting from `from` through the proxy's writer port
/// at `proxy`; returns once it has 20 acknowledged inserts (at most 30 s).
pub fn start_writer_in(app: &str, proxy: &str, password: &str, from: u64) {
    exec_in_with_input(
        app,
        "umask 077; cat > /root/app.cnf",
        &format!("[client]\nuser=app\npassword={password}\n"),
    );
    exec_in_with_input(
        app,
        "cat > /root/writer.sh; chmod +x /root/writer.sh; touch /root/writer.run",
        WRITER,
    );
    start_in_background(
        app,
        &format!("/root/writer.sh {from} {proxy} 2>/dev/null"),
        "/root/writer.log",
        20,
        "the writer",
    );
}

/// Starts `cmd` in the background in `app` (`docker exec -d`), its standard output into
/// `log`, and returns once `log` has `lines` lines (at most 30 s, else fails naming `what`).
/// The program runs while its flag file exists ([`stop_in_background`] removes it).
pub fn start_in_background(app: &str, cmd: &str, log: &str, lines: u64, what: &str) {
    docker(&["exec", "-d", app, "sh", "-c", &format!("{cmd} > {log}")]);
    let t0 = Instant::now();
    while exec_in(app, &format!("wc -l < {log}"))
        .parse::<u64>()
        .unwrap_or(0)
        < lines
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{what} does not start writing {log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a program [`start_in_background`] started in `app` (removes its `flag` file and
/// gives it a second to end); what it wrote into `log`.
pub fn stop_in_background(app: &str, flag: &str, log: &str) -> String {
    exec_in(app, &format!("rm -f {flag}; sleep 1"));
    exec_in(app, &format!("cat {log}"))
}

/// Stops the writer in `app`; each acknowledged insert as (epoch seconds, number, the
/// server_id that acknowledged it), in order.
pub fn stop_writer_acks_in(app: &str) -> Vec<(f64, u64, u32)> {
    stop_in_background(app, "/root/writer.run", "/root/writer.log")
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// The longest time between two acknowledged inserts of `acks` ([`stop_writer_acks_in`]'s
/// rows), in seconds.
pub fn longest_gap(acks: &[(f64, u64, u32)]) -> f64 {
    acks.windows(2).map(|w| w[1].0 - w[0].0).fold(0.0, f64::max)
}

/// Where the longest gap of `acks` lies, for a failure message: its two ends as epoch
/// seconds and the server_id that acknowledged each.
pub fn longest_gap_ends(acks: &[(f64, u64, u32)]) -> String {
    match acks
        .windows(2)
        .max_by(|a, b| (a[1].0 - a[0].0).total_cmp(&(b[1].0 - b[0].0)))
    {
        Some(w) => format!(
            "from {:.3} (server_id {}) to {:.3} (server_id {})",
            w[0].0, w[0].2, w[1].0, w[1].2
        ),
        None => "none (fewer than two acknowledged inserts)".into(),
    }
}

/// Stops the writer; returns each acknowledged insert as (epoch seconds, number, the
/// server_id that acknowledged it), in order.
pub fn stop_writer_acks() -> Vec<(f64, u64, u32)> {
    stop_writer_acks_in("lab-backup1")
}

/// lab/fault.sh with `args` (the fault-injection harness).
pub fn fault(args: &[&str]) {
    fault_with(&[], args);
}

/// lab/fault.sh with `args` and `env` (another lab's `LAB_NAME` and `LAB_SUBNET`).
pub fn fault_with(env: &[(&str, String)], args: &[&str]) {
    let o = bounded(EXEC_LIMIT_S, "bash")
        .arg(repo().join("lab/fault.sh"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("lab/fault.sh");
    assert!(
        o.status.success(),
        "lab/fault.sh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every acknowledged number is in app.seq on `host`.
pub fn assert_all_present(host: &str, acked: &[u64]) {
    let have: std::collections::BTreeSet<u64> = sql(host, "SELECT n FROM app.seq")
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let lost: Vec<&u64> = acked.iter().filter(|n| !have.contains(n)).collect();
    assert!(
        lost.is_empty(),
        "{host} lacks {} acknowledged inserts: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

pub fn docker(args: &[&str]) {
    let o = Command::new("docker").args(args).output().expect("docker");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub fn reset(hosts: &[&str]) {
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .arg("reset")
        .args(hosts)
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub fn rows(host: &str) -> String {
    sql(
        host,
        "SELECT CONCAT(COUNT(*), ' ', IFNULL(SUM(v = 'lost'), 0)) FROM app.rebuilt",
    )
}

/// The shared lab, converged: the start of every test that does not need a fresh lab.
pub fn converged() -> Turn<Lab> {
    let mut lab = lab();
    converge(&mut lab);
    lab
}

/// Whether `addr:port` accepts a TCP connection from `from` (a lab container) within 3 s.
pub fn can_connect<S: AsRef<std::ffi::OsStr>>(from: &[S], addr: &str, port: u16) -> bool {
    let probe = format!("timeout 3 bash -c '</dev/tcp/{addr}/{port}' && echo open || echo closed");
    let o = Command::new("docker")
        .args(from)
        .args(["bash", "-c", probe.as_str()])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&o.stdout).trim() == "open"
}

/// `dbfleet status` (of `inventory`, or lab.yml), retried for up to 15 s until it exits 0;
/// the last run. After a restart, a restore or a switchover the servers are right at once,
/// but HAProxy marks a server UP only after `rise 2` checks (about 2 s), and `status` calls
/// a proxy with no writer UP unhealthy, as it is for that moment.
pub fn status_when_healthy(inventory: Option<&Path>) -> Out {
    let t0 = Instant::now();
    loop {
        let s = match inventory {
            Some(inv) => dbfleet_with(inv, &["status"], &[]),
            None => dbfleet(&["status"]),
        };
        if s.code == 0 || t0.elapsed() > Duration::from_secs(15) {
            return s;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The lab's proxies' virtual IP (inventories/lab.yml `proxy_vip`, keepalived).
pub const VIP: &str = "172.29.77.30";

/// Seconds since the Unix epoch, as the writer's acknowledgements are stamped.
pub fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// This machine's side of a lab's network: the Docker bridge of `dbfleet-NAME`. What
/// crosses it is what reaches or leaves the operator (this machine); traffic between the
/// lab's hosts is forwarded between their ports and never passes the bridge device itself.
pub fn bridge_of(lab: &str) -> String {
    let o = Command::new("docker")
        .args([
            "network",
            "inspect",
            &format!("dbfleet-{lab}"),
            "--format",
            "{{.Id}}",
        ])
        .output()
        .expect("docker network inspect");
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(id.len() >= 12, "no network dbfleet-{lab}");
    format!("br-{}", &id[..12])
}

/// The operator's link to a lab cut both ways while this lives: nftables on this machine
/// drops every packet it sends to or receives from the lab's bridge `dev` (the hosts keep
/// talking to each other: their traffic is forwarded, never this machine's input or
/// output). Lifted when dropped.
pub struct Cut;

const CUT_TABLE: &str = "dbfleet_lab_cut";

impl Cut {
    pub fn new(dev: &str) -> Cut {
        let rules = format!(
            "table inet {CUT_TABLE} {{\n chain i {{ type filter hook input priority -20; iifname \"{dev}\" drop; }}\n chain o {{ type filter hook output priority -20; oifname \"{dev}\" drop; }}\n}}\n"
        );
        let mut c = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nft");
        {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(rules.as_bytes())
                .expect("write");
        }
        let o = c.wait_with_output().expect("nft");
        assert!(
            o.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Cut
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", CUT_TABLE])
            .output();
    }
}

/// What lab hosts `from` send to `to` (an address) held to `mbytes` MB/s while this lives
/// (nftables on those hosts, a table of the test's own beside dbfleet's): a copy between
/// hosts then lasts long enough to be interrupted. Lifted when dropped.
pub struct Slowed(Vec<String>);

impl Slowed {
    pub fn new(from: &[&str], to: &str, mbytes: u32) -> Slowed {
        for h in from {
            on(
                h,
                &format!(
                    "nft delete table inet labslow 2>/dev/null; nft add table inet labslow && \
                     nft add chain inet labslow out '{{ type filter hook output priority 10; }}' && \
                     nft add rule inet labslow out ip daddr {to} limit rate over {mbytes} mbytes/second drop"
                ),
            );
        }
        Slowed(from.iter().map(|h| h.to_string()).collect())
    }
}

impl Drop for Slowed {
    fn drop(&mut self) {
        for h in &self.0 {
            let _ = Command::new("docker")
                .args([
                    "exec",
                    &format!("lab-{h}"),
                    "nft",
                    "delete",
                    "table",
                    "inet",
                    "labslow",
                ])
                .output();
        }
    }
}

/// A `dbfleet` command on the lab inventory running in the background, its output in files;
/// killed with SIGKILL by [`Spawned::kill`] (as a closed laptop or `kill -9` would end it).
pub struct Spawned {
    child: std::process::Child,
    out: tempfile::NamedTempFile,
    err: tempfile::NamedTempFile,
}

impl Spawned {
    pub fn new(args: &[&str]) -> Spawned {
        let out = tempfile::NamedTempFile::new().expect("tempfile");
        let err = tempfile::NamedTempFile::new().expect("tempfile");
        let child = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .current_dir(repo())
            .env("NO_COLOR", "1")
            .arg("-i")
            .arg(repo().join("inventories/lab.yml"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.reopen().expect("reopen"))
            .stderr(err.reopen().expect("reopen"))
            .spawn()
            .expect("spawn dbfleet");
        Spawned { child, out, err }
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Whether it has ended (its output is then [`Spawned::wait`]'s).
    pub fn ended(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits (at most `limit`) for it to end: its output as [`Out`].
    pub fn wait(mut self, limit: Duration) -> Out {
        let deadline = Instant::now() + limit;
        let code = loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                break st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "dbfleet did not end within {} s:\n{}",
                    limit.as_secs(),
                    std::fs::read_to_string(self.out.path()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        Out {
            code,
            stdout: std::fs::read_to_string(self.out.path()).unwrap_or_default(),
            stderr: std::fs::read_to_string(self.err.path()).unwrap_or_default(),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A rolling restart's writes went on while each server was down: inside every down
/// interval of `down` ([`stop_ping_samplers_in`]) longer than a second (a restart's), at
/// least one insert of `acks` (the writer's: time, sequence number, acknowledging
/// `server_id`) was acknowledged, and by another server than the one down (`server_id`:
/// host → its id). A primary restarted in place, or two servers at once, leaves the writer
/// waiting the whole interval. Not a timed bound: the writer starts one client process per
/// insert, and on a loaded 2-core machine its pace varies by most of a second (a 1 s bound
/// on the longest gap failed the 11.8 matrix test beside another lab). `context` is printed
/// on failure (the apply's output).
pub fn assert_writes_went_on_while_each_was_down(
    down: &BTreeMap<String, Vec<(f64, f64)>>,
    acks: &[(f64, u64, u32)],
    server_id: &BTreeMap<String, u32>,
    context: &str,
) {
    for (h, intervals) in down {
        for &(from, to) in intervals.iter().filter(|iv| iv.1 - iv.0 > 1.0) {
            let during: Vec<u32> = acks
                .iter()
                .filter(|a| a.0 > from && a.0 < to)
                .map(|a| a.2)
                .collect();
            assert!(
                !during.is_empty() && !during.contains(&server_id[h.as_str()]),
                "while {h} was down ({from:.3}–{to:.3}) the inserts acknowledged came from server_ids {during:?}; longest gap {}:\n{context}",
                longest_gap_ends(acks),
            );
        }
    }
}

/// No two of `down`'s servers ([`stop_ping_samplers_in`]) were down at once.
pub fn assert_never_two_down(down: &BTreeMap<String, Vec<(f64, f64)>>) {
    let all: Vec<(&str, (f64, f64))> = down
        .iter()
        .flat_map(|(h, ivs)| ivs.iter().map(move |iv| (h.as_str(), *iv)))
        .collect();
    for (i, (h1, a)) in all.iter().enumerate() {
        for (h2, b) in &all[i + 1..] {
            assert!(
                h1 == h2 || a.1 < b.0 || b.1 < a.0,
                "{h1} and {h2} were down at once: {a:?} and {b:?}"
            );
        }
    }
}

/// Starts, in each of `hosts` of lab `lab` (its `LAB_NAME`: containers `LAB-HOST`), a loop
/// recording each 50 ms whether the server answers a ping: "EPOCH.NANOS up|down" lines in
/// /root/ping.log, while /root/ping.run exists.
pub fn start_ping_samplers_in(lab: &str, hosts: &[&str]) {
    for h in hosts {
        let c = format!("{lab}-{h}");
        exec_in(&c, "touch /root/ping.run; rm -f /root/ping.log");
        docker(&[
            "exec",
            "-d",
            &c,
            "sh",
            "-c",
            "while [ -e /root/ping.run ]; do \
               if \"$(command -v mariadb-admin || command -v mysqladmin)\" ping >/dev/null 2>&1; then s=up; else s=down; fi; \
               echo \"$(date +%s.%N) $s\"; sleep 0.05; done > /root/ping.log",
        ]);
    }
}

/// Stops the samplers of [`start_ping_samplers_in`]; each host's intervals (first, last
/// sample time) in which its server did not answer.
pub fn stop_ping_samplers_in(lab: &str, hosts: &[&str]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut down = BTreeMap::new();
    for h in hosts {
        let c = format!("{lab}-{h}");
        exec_in(&c, "rm -f /root/ping.run; sleep 0.2");
        let mut intervals: Vec<(f64, f64)> = Vec::new();
        let mut open: Option<(f64, f64)> = None;
        for line in exec_in(&c, "cat /root/ping.log").lines() {
            let mut f = line.split(' ');
            let (Some(Ok(t)), Some(s)) = (f.next().map(str::parse::<f64>), f.next()) else {
                continue;
            };
            match (s, &mut open) {
                ("down", Some(iv)) => iv.1 = t,
                ("down", None) => open = Some((t, t)),
                (_, _) => intervals.extend(open.take()),
            }
        }
        intervals.extend(open);
        down.insert(h.to_string(), intervals);
    }
    down
}
