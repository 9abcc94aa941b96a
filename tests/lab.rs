//! End-to-end tests on the lab: five real Debian bookworm hosts (Docker containers with sshd,
//! no systemd) started by `lab/lab.sh up`. These tests never skip: without Docker or
//! debootstrap they fail, saying so.
//!
//! The tests share one lab and take turns (a mutex); each starts from a converged fleet
//! (`converge`) except the fresh-lab test, which recreates the hosts when they are not new.
//! Checks read the hosts through `docker exec`, not through dbfleet.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const DB_HOSTS: [&str; 3] = ["db1", "db2", "db3"];
const ALL_HOSTS: [&str; 5] = ["db1", "db2", "db3", "backup1", "proxy1"];
const CNF: &str = "/etc/mysql/mariadb.conf.d/90-dbfleet.cnf";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

struct Lab {
    /// No apply has run since the hosts were created.
    fresh: bool,
}

/// The shared lab, brought up once per test run.
fn lab() -> MutexGuard<'static, Lab> {
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
    // A failed test poisons the mutex; the next test converges the lab anyway.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Every command a test runs is bounded (coreutils `timeout`, TERM then KILL): a hang fails
/// the test with what the command printed so far, instead of eating CI's time budget.
const DBFLEET_LIMIT_S: &str = "900";
const EXEC_LIMIT_S: &str = "300";

fn bounded(limit_s: &str, program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["--kill-after=10", limit_s, program]);
    c
}

fn dbfleet_with(inventory: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
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

fn dbfleet(args: &[&str]) -> Out {
    dbfleet_with(&repo().join("inventories/lab.yml"), args, &[])
}

/// Runs `sh -c cmd` in a lab host's container (not through dbfleet).
fn on(host: &str, cmd: &str) -> String {
    let o = bounded(EXEC_LIMIT_S, "docker")
        .args(["exec", &format!("lab-{host}"), "sh", "-c", cmd])
        .output()
        .expect("docker exec");
    assert!(
        o.status.success(),
        "on {host}: `{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn sql(host: &str, query: &str) -> String {
    on(host, &format!("mariadb -N -B -e \"{query}\""))
}

fn sha256(host: &str, path: &str) -> String {
    on(host, &format!("sha256sum {path} | cut -c1-64"))
}

/// Applies until converged and checks that a re-plan is empty.
fn converge(lab: &mut Lab) {
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "apply:\n{}", a.all());
    lab.fresh = false;
    assert_empty_plan();
}

fn assert_empty_plan() {
    let p = dbfleet(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    assert!(
        p.stdout
            .contains("No changes: 5 hosts match the inventory."),
        "{}",
        p.stdout
    );
}

fn plan_json(args: &[&str]) -> (i32, serde_json::Value) {
    let mut a = vec!["plan", "--json"];
    a.extend_from_slice(args);
    let p = dbfleet(&a);
    let v = serde_json::from_str(&p.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", p.all()));
    (p.code, v)
}

/// Host → task names with a change, from a JSON plan.
fn changed_tasks(plan: &serde_json::Value) -> BTreeMap<String, Vec<String>> {
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

fn pids() -> Vec<String> {
    DB_HOSTS.iter().map(|h| on(h, "pidof mariadbd")).collect()
}

#[test]
fn fresh_lab_plan_lists_creates_apply_converges_and_replan_is_empty() {
    let mut lab = lab();
    if !lab.fresh {
        let o = Command::new("bash")
            .arg(repo().join("lab/lab.sh"))
            .arg("reset")
            .args(ALL_HOSTS)
            .output()
            .expect("reset");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // 1. plan --detailed-exitcode: 2, with creates on every host.
    let p = dbfleet(&["plan", "--detailed-exitcode", "--json"]);
    assert_eq!(p.code, 2, "{}", p.all());
    let plan: serde_json::Value = serde_json::from_str(&p.stdout).expect("json");
    for host in ALL_HOSTS {
        let hp = plan["hosts"]
            .as_array()
            .expect("hosts")
            .iter()
            .find(|h| h["host"] == host)
            .unwrap_or_else(|| panic!("{host} missing from plan"));
        let creates = hp["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .filter(|c| c["action"] == "create")
            .count();
        assert!(creates > 0, "{host} has no creates: {hp}");
    }
    // apply installs MariaDB 10.11 with per-role mysqld.cnf.
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    lab.fresh = false;
    for (host, id, ro) in [("db1", 1, 0), ("db2", 2, 1), ("db3", 3, 1)] {
        let row = sql(
            host,
            "SELECT @@server_id, @@read_only, @@log_bin, @@bind_address, @@version",
        );
        let f: Vec<&str> = row.split('\t').collect();
        assert_eq!(
            &f[..4],
            &[id.to_string().as_str(), &ro.to_string(), "1", "0.0.0.0"],
            "{host}: {row}"
        );
        assert!(
            f[4].starts_with("10.11."),
            "{host} runs MariaDB 10.11: {row}"
        );
    }
    assert!(on("proxy1", "service haproxy status >/dev/null && echo up") == "up");
    // 2. A second plan: zero changes.
    assert_empty_plan();
}

#[test]
fn hand_edited_cnf_shows_one_diff_and_restarts_only_that_server() {
    let mut lab = lab();
    converge(&mut lab);
    on(
        "db2",
        &format!("sed -i 's/^max_connections .*/max_connections = 999/' {CNF}"),
    );
    let before = pids();

    let p = dbfleet(&["plan", "--detailed-exitcode"]);
    assert_eq!(p.code, 2, "{}", p.all());
    insta::assert_snapshot!("hand_edit_plan", p.stdout);
    let (_, json) = plan_json(&[]);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([(
            "db2".to_string(),
            vec!["mysqld.cnf".to_string(), "restart server".to_string()]
        )])
    );

    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    let after = pids();
    assert_eq!(before[0], after[0], "db1's server was not restarted");
    assert_ne!(before[1], after[1], "db2's server was restarted");
    assert_eq!(before[2], after[2], "db3's server was not restarted");
    assert_eq!(sql("db2", "SELECT @@max_connections"), "200");
    assert_empty_plan();
}

#[test]
fn stale_saved_plan_is_refused_and_changes_nothing() {
    let mut lab = lab();
    converge(&mut lab);
    let limits = "/etc/security/limits.d/90-dbfleet-mysql.conf";
    on("db1", &format!("echo '# edit B' >> {limits}"));
    on("db2", &format!("echo '# edit A' >> {CNF}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let planfile = dir.path().join("p.json");
    let p = dbfleet(&["plan", "--out", planfile.to_str().expect("path")]);
    assert_eq!(p.code, 0, "{}", p.all());

    // Out of band, after the plan: db2's file changes again.
    on("db2", &format!("echo '# edit C' >> {CNF}"));
    let (db1_before, db2_before, pids_before) = (sha256("db1", limits), sha256("db2", CNF), pids());
    let a = dbfleet(&["apply", planfile.to_str().expect("path")]);
    assert_eq!(a.code, 1, "a stale plan must be refused:\n{}", a.all());
    assert!(a.stderr.contains("stale"), "{}", a.all());
    assert!(a.stderr.contains("db2"), "names the host: {}", a.all());
    assert_eq!(sha256("db1", limits), db1_before, "db1 untouched");
    assert_eq!(sha256("db2", CNF), db2_before, "db2 untouched");
    assert_eq!(pids(), pids_before, "no server restarted");

    // A fresh saved plan applies, and then nothing is left.
    let p2 = dir.path().join("p2.json");
    assert_eq!(
        dbfleet(&["plan", "--out", p2.to_str().expect("path")]).code,
        0
    );
    let a2 = dbfleet(&["apply", p2.to_str().expect("path")]);
    assert_eq!(a2.code, 0, "{}", a2.all());
    assert_empty_plan();
}

/// A variant of the lab inventory, written to `dir/name`: each `(from, to)` edit must match
/// (a change to lab.yml cannot silently leave a test on the plain inventory), and the
/// ssh_config path is made absolute since the copy lives elsewhere.
fn lab_variant(dir: &Path, name: &str, edits: &[(&str, &str)]) -> PathBuf {
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

/// Docker arguments running a one-off container on the lab network at `ip`: a host the
/// inventory does not know.
fn outsider(ip: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["inspect", "lab-db1", "--format", "{{.Config.Image}}"])
        .output()
        .expect("inspect");
    let image = String::from_utf8_lossy(&out.stdout).trim().to_string();
    [
        "run",
        "--rm",
        "--network",
        "dbfleet-lab",
        "--ip",
        ip,
        &image,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn canary_secret_appears_in_no_output_plan_file_or_remote_ps() {
    let mut lab = lab();
    converge(&mut lab);
    let canary = format!("canary{:016x}", rand_u64());
    // The replication password travels in CHANGE MASTER: a second canary for it.
    let canary_repl = format!("replcanary{:016x}", rand_u64());
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "canary.yml",
        &[
            (
                "monitor_password: { generate: 32 }",
                "monitor_password: { env: DBFLEET_TEST_CANARY }",
            ),
            (
                "replication_password: { generate: 32 }",
                "replication_password: { env: DBFLEET_TEST_CANARY_REPL }",
            ),
        ],
    );
    let env = [
        ("DBFLEET_TEST_CANARY", canary.as_str()),
        ("DBFLEET_TEST_CANARY_REPL", canary_repl.as_str()),
    ];

    // Watch every process command line on the database hosts while dbfleet works.
    let watchers: Vec<_> = DB_HOSTS
        .iter()
        .map(|h| {
            on(h, "rm -f /tmp/stop-ps");
            Command::new("docker")
                .args([
                    "exec",
                    &format!("lab-{h}"),
                    "sh",
                    "-c",
                    "while [ ! -e /tmp/stop-ps ]; do ps -eww -o args; sleep 0.02; done",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("ps watcher")
        })
        .collect();

    let planfile = dir.path().join("plan.json");
    let mut outputs = Vec::new();
    outputs.push(
        dbfleet_with(
            &inv,
            &["-vv", "plan", "--out", planfile.to_str().expect("path")],
            &env,
        )
        .all(),
    );
    outputs.push(dbfleet_with(&inv, &["plan", "--json"], &env).all());
    let a = dbfleet_with(&inv, &["-vv", "apply", "--auto-approve"], &env);
    assert_eq!(a.code, 0, "{}", a.all());
    outputs.push(a.all());
    outputs.push(std::fs::read_to_string(&planfile).expect("plan file"));

    for h in DB_HOSTS {
        on(h, "touch /tmp/stop-ps");
    }
    let mut ps_lines = 0;
    for w in watchers {
        let o = w.wait_with_output().expect("watcher");
        let text = String::from_utf8_lossy(&o.stdout);
        ps_lines += text.lines().count();
        assert!(
            !text.contains(&canary) && !text.contains(&canary_repl),
            "a canary showed in a remote `ps`"
        );
    }
    assert!(ps_lines > 100, "the ps watchers sampled ({ps_lines} lines)");
    for (i, o) in outputs.iter().enumerate() {
        assert!(
            !o.contains(&canary) && !o.contains(&canary_repl),
            "output {i} holds a canary:\n{o}"
        );
    }
    assert!(
        outputs[2]
            .contains("repoint replication to db1 by GTID (the replication password changed)"),
        "the new replication password was applied through CHANGE MASTER:\n{}",
        outputs[2]
    );
    for h in ["db2", "db3"] {
        assert_eq!(
            slave_status(h)["Slave_IO_Running"],
            "Yes",
            "{h} replicates with the canary password"
        );
    }
    assert!(
        outputs[0].contains("(sensitive)"),
        "the secret-bearing file shows as sensitive:\n{}",
        outputs[0]
    );
    for h in DB_HOSTS {
        // It did reach the file it belongs in, mode 0600 ...
        assert_eq!(on(h, "stat -c %a /etc/dbfleet/monitor.cnf"), "600");
        assert!(on(h, "cat /etc/dbfleet/monitor.cnf").contains(&canary));
        // ... and nowhere else on the host.
        let found = on(
            h,
            &format!(
                "grep -rl {canary} /etc /tmp /var/log /var/lib/dbfleet /root 2>/dev/null || true"
            ),
        );
        assert_eq!(
            found, "/etc/dbfleet/monitor.cnf",
            "{h}: canary found in {found}"
        );
        // The replication canary lives only in the server's own replica info (datadir).
        let found = on(
            h,
            &format!(
                "grep -rl {canary_repl} /etc /tmp /var/log /var/lib/dbfleet /root 2>/dev/null || true"
            ),
        );
        assert_eq!(found, "", "{h}: replication canary found in {found}");
    }
    // The local state folder is private too.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.path().join(".dbfleet/digest.key");
    assert_eq!(
        std::fs::metadata(&key)
            .expect("digest key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    converge(&mut lab);
}

fn rand_u64() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;
    t ^ (std::process::id() as u64).rotate_left(32)
}

#[test]
fn sigkill_mid_apply_leaves_no_partial_file_and_next_apply_converges() {
    let mut lab = lab();
    converge(&mut lab);
    // The desired content of every managed file, rendered offline.
    let out = tempfile::tempdir().expect("tempdir");
    let r = dbfleet(&[
        "plan",
        "--offline",
        "--out-dir",
        out.path().to_str().expect("path"),
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    let mut files: Vec<(String, String, String)> = Vec::new(); // host, path, desired sha256
    for host in ALL_HOSTS {
        let root = out.path().join(host);
        let mut stack = vec![root.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    // Files holding secrets or TLS material render as placeholders offline.
                    let bytes = std::fs::read(&p).expect("read");
                    let text = String::from_utf8_lossy(&bytes);
                    if text.contains("<secret:") || text.contains("<tls") {
                        continue;
                    }
                    let path = format!("/{}", p.strip_prefix(&root).expect("prefix").display());
                    files.push((host.to_string(), path, sha256_hex(&bytes)));
                }
            }
        }
    }
    assert!(files.len() >= 12, "{files:?}");

    let mut partial_rounds = 0;
    for round in 0..4u64 {
        // Every managed file differs from the inventory, so the apply rewrites them all.
        let mut tampered = BTreeMap::new();
        for (h, p, _) in &files {
            // A copy swapped in: the proxy's check script may be running (ETXTBSY on `>>`).
            on(
                h,
                &format!("cp -p {p} {p}.t && echo '# tampered' >> {p}.t && mv {p}.t {p}"),
            );
            tampered.insert((h.clone(), p.clone()), sha256(h, p));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
            .current_dir(repo())
            .env("NO_COLOR", "1")
            .args(["-i", "inventories/lab.yml", "apply", "--auto-approve"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill it once the first task has finished, plus a little more each round.
        // Lines arrive through a channel so that a silent apply cannot block the test.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(" … changed") => break,
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        std::thread::sleep(Duration::from_millis(round * 40));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let mut rewritten = 0;
        for (h, p, want) in &files {
            let got = sha256(h, p);
            assert!(
                got == *want || got == tampered[&(h.clone(), p.clone())],
                "round {round}: {h}:{p} is neither the old nor the new content (partial write)"
            );
            rewritten += (got == *want) as usize;
        }
        assert!(
            rewritten > 0,
            "round {round}: the kill came after the first write"
        );
        partial_rounds += (rewritten < files.len()) as usize;
    }
    assert!(
        partial_rounds > 0,
        "at least one kill landed with files still to write"
    );
    // The next apply converges (restarts interrupted by the kill are still pending) ...
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    for h in DB_HOSTS {
        assert_eq!(
            on(h, "ls /var/lib/dbfleet/pending | wc -l"),
            "0",
            "{h}: no handler left pending"
        );
    }
    // ... and the plan after it is empty.
    assert_empty_plan();
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn handlers_run_even_when_a_later_task_fails() {
    let mut lab = lab();
    converge(&mut lab);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo().join("playbooks/defaults.yml"),
        dir.path().join("defaults.yml"),
    )
    .expect("defaults");
    std::fs::write(
        dir.path().join("probe.yml"),
        "roles: [primary]\n\
         tasks:\n\
         \x20 - name: marker file\n    copy: {content: \"x\\n\", dest: /tmp/dbfleet-handler-test.txt}\n    notify: [note handler]\n\
         \x20 - name: failing step\n    command: {run: \"echo boom >&2; exit 7\", creates: /nonexistent-dbfleet}\n\
         handlers:\n\
         \x20 - name: note handler\n    command: {run: \"date > /tmp/dbfleet-handler-ran\"}\n",
    )
    .expect("playbook");
    on(
        "db1",
        "rm -f /tmp/dbfleet-handler-test.txt /tmp/dbfleet-handler-ran",
    );
    let pb = dir.path().to_str().expect("path");
    let a = dbfleet(&["--playbooks", pb, "apply", "--auto-approve"]);
    assert_eq!(a.code, 1, "{}", a.all());
    assert!(
        a.stdout.contains("db1: failing step … FAILED"),
        "{}",
        a.all()
    );
    assert!(
        a.stdout.contains("boom"),
        "the failure says why: {}",
        a.all()
    );
    assert!(
        a.stdout.contains("db1: note handler … changed"),
        "{}",
        a.all()
    );
    assert_eq!(
        on("db1", "test -s /tmp/dbfleet-handler-ran && echo ran"),
        "ran"
    );
    // Only the failing task is left; its handler is not pending any more.
    let (_, json) = plan_json(&["--playbooks", pb]);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db1".to_string(), vec!["failing step".to_string()])])
    );
    on(
        "db1",
        "rm -f /tmp/dbfleet-handler-test.txt /tmp/dbfleet-handler-ran",
    );
    assert_empty_plan();
}

/// `app.NAME (id, v)` made afresh on db1 with rows 1..=n whose `v` is `label`, and waited
/// for on db2 (where the backup jobs run).
fn fresh_table(name: &str, label: &str, n: u32) {
    sql(
        "db1",
        &format!(
            "USE app; DROP TABLE IF EXISTS app.{name}; CREATE TABLE app.{name} (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO app.{name} SELECT seq, '{label}' FROM seq_1_to_{n}"
        ),
    );
    eventually(
        "db2",
        &format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = '{name}'"
        ),
        "1",
    );
    eventually(
        "db2",
        &format!("SELECT COUNT(*) FROM app.{name}"),
        &n.to_string(),
    );
}

/// `SHOW SLAVE STATUS` of a replica, field → value.
fn slave_status(host: &str) -> BTreeMap<String, String> {
    on(host, "mariadb -E -e 'SHOW SLAVE STATUS'")
        .lines()
        .filter_map(|l| {
            l.split_once(": ")
                .or_else(|| l.trim_end().strip_suffix(':').map(|k| (k, "")))
        })
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Waits up to 20 s for `query` on `host` to return `want`.
fn eventually(host: &str, query: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = sql(host, query);
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

/// Replication statements a server has executed since it started.
fn replication_statements(host: &str) -> String {
    sql(
        host,
        "SELECT SUM(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN \
         ('COM_CHANGE_MASTER', 'COM_START_SLAVE', 'COM_STOP_SLAVE', 'COM_START_ALL_SLAVES', 'COM_STOP_ALL_SLAVES')",
    )
}

#[test]
fn replicas_replicate_by_gtid_over_verified_tls_and_a_second_apply_issues_nothing() {
    let mut lab = lab();
    converge(&mut lab);
    for h in ["db2", "db3"] {
        let st = slave_status(h);
        for (field, want) in [
            ("Master_Host", "172.29.77.11"),
            ("Using_Gtid", "Slave_Pos"),
            ("Slave_IO_Running", "Yes"),
            ("Slave_SQL_Running", "Yes"),
            ("Master_SSL_Allowed", "Yes"),
            ("Master_SSL_Verify_Server_Cert", "Yes"),
        ] {
            assert_eq!(
                st.get(field).map(String::as_str),
                Some(want),
                "{h}: {field}"
            );
        }
    }
    // A row written on db1 appears on both replicas.
    let marker = format!("row-{:x}", rand_u64());
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.flow (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64))",
    );
    sql(
        "db1",
        &format!("INSERT INTO app.flow (v) VALUES ('{marker}')"),
    );
    for h in ["db2", "db3"] {
        eventually(
            h,
            &format!("SELECT COUNT(*) FROM app.flow WHERE v = '{marker}'"),
            "1",
        );
    }
    // Second apply: zero changes, and no replication statement reaches a replica.
    let before: Vec<String> = ["db2", "db3"]
        .iter()
        .map(|h| replication_statements(h))
        .collect();
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout
            .contains("No changes: 5 hosts match the inventory."),
        "{}",
        a.all()
    );
    let after: Vec<String> = ["db2", "db3"]
        .iter()
        .map(|h| replication_statements(h))
        .collect();
    assert_eq!(
        before, after,
        "no CHANGE MASTER / START SLAVE / STOP SLAVE on a healthy replica"
    );
    assert_empty_plan();
}

#[test]
fn a_fresh_replica_is_seeded_from_a_loaded_primary() {
    let mut lab = lab();
    converge(&mut lab);
    // 100,000 rows on db1 (the sequence engine makes them in one statement).
    sql(
        "db1",
        "USE app; DROP TABLE IF EXISTS app.big; CREATE TABLE app.big (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB; \
         INSERT INTO app.big SELECT seq, MD5(seq) FROM seq_1_to_100000",
    );
    // History written under another server_id (as by an earlier primary), then more by db1,
    // so that the copy's position is db1's: the seeded replica must still inherit the older
    // history in its gtid_binlog_state (issue 10, case 3).
    let history = sql(
        "db1",
        "SET SESSION server_id = 7; INSERT INTO app.big VALUES (0, 'history'); SET SESSION server_id = 1; \
         SELECT @@GLOBAL.gtid_binlog_pos; INSERT INTO app.big VALUES (-1, 'after the history')",
    );
    assert!(history.starts_with("0-7-"), "{history}");
    // db3 comes back as a bare host (sshd only): it has to be provisioned and seeded.
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .args(["reset", "db3"])
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, plan) = plan_json(&["--detailed-exitcode", "--limit", "db3"]);
    assert_eq!(code, 2);
    let db3 = &plan["hosts"].as_array().expect("hosts")[0];
    let repl = db3["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["task"] == "replication")
        .expect("a replication change");
    assert_eq!(repl["summary"], "bootstrap replication from db1");

    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    let st = slave_status("db3");
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str(),
            st["Using_Gtid"].as_str()
        ),
        ("Yes", "Yes", "Slave_Pos")
    );
    assert_eq!(sql("db3", "SELECT COUNT(*) FROM app.big"), "100002");
    let state = sql("db3", "SELECT @@GLOBAL.gtid_binlog_state");
    assert!(
        state.split(',').any(|g| g == history),
        "db3's gtid_binlog_state {state} holds the copy's history {history}"
    );
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.big"),
        sql("db1", "CHECKSUM TABLE app.big"),
        "db3's copy equals db1's"
    );
    // And it keeps replicating.
    sql(
        "db1",
        "INSERT INTO app.big VALUES (100001, 'after the seed')",
    );
    eventually(
        "db3",
        "SELECT v FROM app.big WHERE id = 100001",
        "after the seed",
    );
    assert_empty_plan();
}

#[test]
fn app_user_cannot_write_on_a_replica_and_hardening_holds() {
    let mut lab = lab();
    converge(&mut lab);
    let store =
        std::fs::read_to_string(repo().join("inventories/.dbfleet/secrets.json")).expect("store");
    let secrets: serde_json::Value = serde_json::from_str(&store).expect("json");
    let pw = secrets["app_password"]
        .as_str()
        .expect("app password")
        .to_string();
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.w (id INT PRIMARY KEY)",
    );
    let as_app = |host: &str, addr: &str, stmt: &str| {
        Command::new("docker")
            .args([
                "exec",
                "-e",
                &format!("MYSQL_PWD={pw}"),
                &format!("lab-{host}"),
                "mariadb",
                "-h",
                addr,
                "-u",
                "app",
                "-N",
                "-e",
                stmt,
            ])
            .output()
            .expect("docker exec")
    };
    let on_replica = as_app("db2", "172.29.77.12", "INSERT INTO app.w VALUES (1)");
    assert!(
        !on_replica.status.success(),
        "the app user wrote on a read-only replica"
    );
    let err = String::from_utf8_lossy(&on_replica.stderr);
    assert!(err.contains("read-only"), "{err}");
    let on_primary = as_app("db1", "172.29.77.11", "REPLACE INTO app.w VALUES (1)");
    assert!(
        on_primary.status.success(),
        "{}",
        String::from_utf8_lossy(&on_primary.stderr)
    );
    let grants = sql("db1", "SHOW GRANTS FOR 'app'@'%'");
    assert!(
        !grants.contains("SUPER")
            && !grants.contains("READ ONLY ADMIN")
            && !grants.contains("ALL PRIVILEGES"),
        "{grants}"
    );

    // Hardening: an anonymous user, a remote root and a test database appear out of band ...
    sql(
        "db1",
        "CREATE USER ''@'%'; CREATE USER 'root'@'10.%' IDENTIFIED BY 'x'; CREATE DATABASE test",
    );
    let (code, json) = plan_json(&["--detailed-exitcode"]);
    assert_eq!(code, 2);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db1".to_string(), vec!["hardening".to_string()])])
    );
    // ... and apply removes them on the primary and, by replication, everywhere.
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM mysql.user WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'))",
            "0",
        );
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'",
            "0",
        );
    }
    assert_empty_plan();
}

#[test]
fn status_is_healthy_then_names_an_errant_replica() {
    let mut lab = lab();
    converge(&mut lab);
    // A server the apply restarted has replicas whose IO threads reconnect on their next
    // retry (MASTER_CONNECT_RETRY): healthy within 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = dbfleet(&["status"]);
        if s.code == 0 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(s.code, 0, "a converged fleet is healthy:\n{}", s.all());
    for h in DB_HOSTS {
        assert!(
            s.stdout
                .lines()
                .any(|l| l.starts_with(h) && l.trim_end().ends_with("ok")),
            "{h} row:\n{}",
            s.stdout
        );
    }
    let (_, json) = {
        let o = dbfleet(&["status", "--json"]);
        (
            o.code,
            serde_json::from_str::<serde_json::Value>(&o.stdout).expect("status --json"),
        )
    };
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["hosts"].as_array().expect("rows").len(), 3);

    // Issue 10, case 5: db1's packets to db2 are dropped (a one-way partition). db2's
    // threads still say Yes and Seconds_Behind_Master 0, but it falls behind: status names
    // the GTID distance.
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.behind (id INT PRIMARY KEY)",
    );
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'behind'",
        "1",
    );
    fault(&["partition", "db2", "--in", "db1"]);
    for i in 1..=25 {
        sql("db1", &format!("INSERT INTO app.behind VALUES ({i})"));
    }
    let st = slave_status("db2");
    let s = dbfleet(&["status"]);
    fault(&["heal", "db2"]);
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str()
        ),
        ("Yes", "Yes"),
        "the threads still look healthy"
    );
    assert_eq!(s.code, 1, "{}", s.all());
    assert!(
        s.stderr
            .contains("db2: 25 transaction(s) behind the primary: did not reach its position"),
        "{}",
        s.all()
    );
    assert!(s.stdout.contains("25 trx"), "{}", s.all());
    eventually("db2", "SELECT COUNT(*) FROM app.behind", "25");
    assert_eq!(dbfleet(&["status"]).code, 0);

    // root holds READ ONLY ADMIN on 10.11: its write on a replica is an errant transaction.
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.w (id INT PRIMARY KEY)",
    );
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'w'",
        "1",
    );
    sql("db2", "INSERT INTO app.w VALUES (4242)");
    let s = dbfleet(&["status"]);
    assert_eq!(s.code, 1, "{}", s.all());
    assert!(
        s.stderr
            .contains("db2: errant transaction(s) written on the replica itself: 0-2-"),
        "{}",
        s.all()
    );
    assert!(
        !s.stderr.contains("db3:"),
        "only db2 is named:\n{}",
        s.all()
    );

    // An errant replica is rebuilt: a bare host in its place, seeded again by apply.
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .args(["reset", "db2"])
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    converge(&mut lab);
    assert_eq!(dbfleet(&["status"]).code, 0);
}

#[test]
fn monitoring_cron_job_logs_and_writes_metrics_and_a_stopped_replica_is_restarted_by_apply() {
    let mut lab = lab();
    converge(&mut lab);
    let prom = "/var/lib/node_exporter/textfile_collector/dbfleet_replication.prom";
    let log = "/var/log/dbfleet/replication-check.log";
    // cron itself runs the check (every minute).
    on("db2", &format!("rm -f {log} {prom}"));
    let deadline = Instant::now() + Duration::from_secs(75);
    while on("db2", &format!("test -s {prom} && echo yes || echo no")) != "yes" {
        assert!(
            Instant::now() < deadline,
            "cron did not run the replication check within 75 s"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let metrics = on("db2", &format!("cat {prom}"));
    assert!(
        metrics.contains("dbfleet_replication_sql_running{host=\"db2\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dbfleet_replication_healthy{host=\"db2\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dbfleet_replication_lag_seconds{host=\"db2\"} 0"),
        "{metrics}"
    );
    assert!(on("db2", &format!("tail -n 1 {log}")).contains("ok role=replica io=Yes sql=Yes"));
    on("db1", "/usr/local/lib/dbfleet/replication-check");
    assert!(on("db1", &format!("cat {prom}")).contains("role=\"primary\"} 1"));

    // A stopped replica raises the seed's alert ...
    sql("db3", "STOP SLAVE");
    let check = Command::new("docker")
        .args([
            "exec",
            "lab-db3",
            "/usr/local/lib/dbfleet/replication-check",
        ])
        .status()
        .expect("check");
    assert_eq!(check.code(), Some(1), "the check exits 1 on an alert");
    assert!(
        on("db3", &format!("tail -n 1 {log}"))
            .contains("ALERT replication threads not running (IO: No, SQL: No)")
    );
    assert!(
        on("db3", &format!("cat {prom}")).contains("dbfleet_replication_healthy{host=\"db3\"} 0")
    );
    assert_eq!(dbfleet(&["status"]).code, 1);
    // ... and apply starts it again (no reseed: the data is kept).
    let (_, json) = plan_json(&[]);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db3".to_string(), vec!["replication".to_string()])])
    );
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout.contains("start replication from db1"),
        "{}",
        a.all()
    );
    on("db3", "/usr/local/lib/dbfleet/replication-check");
    assert_eq!(dbfleet(&["status"]).code, 0);
    assert_empty_plan();
}

/// Whether `addr:port` accepts a TCP connection from `from` (a lab container) within 3 s.
fn can_connect<S: AsRef<std::ffi::OsStr>>(from: &[S], addr: &str, port: u16) -> bool {
    let probe = format!("timeout 3 bash -c '</dev/tcp/{addr}/{port}' && echo open || echo closed");
    let o = Command::new("docker")
        .args(from)
        .args(["bash", "-c", probe.as_str()])
        .output()
        .expect("docker");
    String::from_utf8_lossy(&o.stdout).trim() == "open"
}

#[test]
fn firewall_admits_fleet_peers_to_the_database_port_and_nobody_else() {
    let mut lab = lab();
    converge(&mut lab);
    let outsider = outsider("172.29.77.99");
    assert!(
        !can_connect(&outsider, "172.29.77.11", 3306),
        "3306 on db1 is closed to a host outside the inventory"
    );
    assert!(
        !can_connect(&outsider, "172.29.77.11", 22),
        "so is SSH (admin network only)"
    );
    assert!(
        can_connect(&["exec", "lab-db2"], "172.29.77.11", 3306),
        "db2, a fleet peer, reaches db1's 3306"
    );
    assert_eq!(slave_status("db2")["Slave_IO_Running"], "Yes");

    // A rule set that would cut off the operator's own SSH is refused; nothing changes.
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "lockout.yml",
        &[(
            "admin_networks: [172.29.77.1/32]",
            "admin_networks: [10.0.0.0/8]",
        )],
    );
    let rules_before = sha256("db1", "/etc/dbfleet/firewall.nft");
    let p = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(p.code, 1, "{}", p.all());
    // The diagnostic wraps long lines with a `│` gutter: compare words.
    let words = |t: &str| {
        t.split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        words(&p.stderr).contains("the firewall would cut off your own SSH session to backup1 (this session comes from 172.29.77.1)"),
        "{}",
        p.all()
    );
    assert_eq!(sha256("db1", "/etc/dbfleet/firewall.nft"), rules_before);

    // Rules flushed out of band (a reboot, `nft flush`) show in the plan and are reloaded.
    on("db3", "nft delete table inet dbfleet");
    let (_, json) = plan_json(&[]);
    assert_eq!(
        changed_tasks(&json),
        BTreeMap::from([("db3".to_string(), vec!["firewall loaded".to_string()])])
    );
    converge(&mut lab);
    assert!(!can_connect(&outsider, "172.29.77.13", 3306));
}

#[test]
fn ufw_backend_loads_checked_rules_and_converges() {
    let mut lab = lab();
    converge(&mut lab);
    // backup1 moves to the seed's ufw; dbfleet's nftables table goes first so ufw alone filters.
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "ufw.yml",
        &[(
            "admin_networks: [172.29.77.1/32]",
            "backend: ufw\n  admin_networks: [172.29.77.1/32]",
        )],
    );
    on("backup1", "nft delete table inet dbfleet");
    let a = dbfleet_with(
        &inv,
        &["--limit", "backup1", "apply", "--auto-approve"],
        &[],
    );
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout.contains("backup1: ufw rules … changed")
            && a.stdout.contains("backup1: ufw loaded … changed"),
        "{}",
        a.all()
    );
    let status = on("backup1", "ufw status");
    assert!(status.contains("Status: active"), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("22/tcp") && l.contains("ALLOW") && l.contains("172.29.77.1")),
        "{status}"
    );
    let outsider = outsider("172.29.77.98");
    assert!(
        !can_connect(&outsider, "172.29.77.21", 22),
        "ufw keeps a host outside the inventory off SSH"
    );
    // Converged: the next plan with ufw is empty.
    let p = dbfleet_with(
        &inv,
        &["--limit", "backup1", "plan", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(p.code, 0, "{}", p.all());
    // Back to nftables for the other tests.
    on(
        "backup1",
        "ufw --force reset >/dev/null && ufw --force disable >/dev/null",
    );
    converge(&mut lab);
}

fn global_status(host: &str, name: &str) -> String {
    sql(
        host,
        &format!(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{name}'"
        ),
    )
}

#[test]
fn semi_sync_on_request_is_lossless_after_sync_with_the_declared_timeout() {
    let mut lab = lab();
    converge(&mut lab);
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "semisync.yml",
        &[(
            "    max_connections: 200",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert_eq!(
        sql(
            "db1",
            "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_master_wait_point, @@rpl_semi_sync_master_timeout"
        ),
        "1\tAFTER_SYNC\t5000"
    );
    for h in ["db2", "db3"] {
        assert_eq!(
            sql(
                h,
                "SELECT @@rpl_semi_sync_slave_enabled, @@rpl_semi_sync_master_enabled"
            ),
            "1\t0",
            "{h}"
        );
    }
    // Both replicas connect as semi-sync clients, and a commit is acknowledged by one.
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    let acked: u64 = global_status("db1", "RPL_SEMI_SYNC_MASTER_YES_TX")
        .parse()
        .expect("number");
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.semi (id INT AUTO_INCREMENT PRIMARY KEY); INSERT INTO app.semi VALUES ()",
    );
    assert_eq!(global_status("db1", "RPL_SEMI_SYNC_MASTER_STATUS"), "ON");
    let acked_after: u64 = global_status("db1", "RPL_SEMI_SYNC_MASTER_YES_TX")
        .parse()
        .expect("number");
    assert!(
        acked_after > acked,
        "the commits were acknowledged semi-synchronously ({acked} → {acked_after})"
    );
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());
    // Back to the lab's asynchronous replication.
    converge(&mut lab);
    assert_eq!(sql("db1", "SELECT @@rpl_semi_sync_master_enabled"), "0");
}

/// The lab's application password, from lab.yml's secrets store.
fn app_password() -> String {
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("inventories/.dbfleet/secrets.json")).expect("secrets store"),
    )
    .expect("json");
    store["app_password"]
        .as_str()
        .expect("app_password")
        .to_string()
}

const WRITER: &str = include_str!("../lab/writer.sh");

/// Feeds `input` to `sh -c cmd` in a lab host's container.
fn on_with_input(host: &str, cmd: &str, input: &str) {
    use std::io::Write;
    let mut c = Command::new("docker")
        .args(["exec", "-i", &format!("lab-{host}"), "sh", "-c", cmd])
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker exec");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    assert!(c.wait().expect("wait").success(), "on {host}: {cmd}");
}

/// Starts a writer on backup1 (an application host): a loop inserting increasing sequence
/// numbers from `from` into app.seq through the proxy, logging the acknowledged ones.
fn start_writer(primary: &str, from: u64) {
    sql(
        primary,
        "CREATE TABLE IF NOT EXISTS app.seq (n BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    );
    on_with_input(
        "backup1",
        "umask 077; cat > /root/app.cnf",
        &format!("[client]\nuser=app\npassword={}\n", app_password()),
    );
    on_with_input(
        "backup1",
        "cat > /root/writer.sh; chmod +x /root/writer.sh; touch /root/writer.run",
        WRITER,
    );
    let ok = Command::new("docker")
        .args([
            "exec",
            "-d",
            "lab-backup1",
            "sh",
            "-c",
            &format!("/root/writer.sh {from} > /root/writer.log 2>/dev/null"),
        ])
        .status()
        .expect("docker exec");
    assert!(ok.success());
    let t0 = Instant::now();
    while on("backup1", "wc -l < /root/writer.log")
        .parse::<u64>()
        .unwrap_or(0)
        < 20
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the writer does not write"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops the writer; returns the acknowledged numbers and the longest gap between two
/// acknowledged writes, in seconds.
fn stop_writer() -> (Vec<u64>, f64) {
    let rows = stop_writer_acks();
    let gap = rows.windows(2).map(|w| w[1].0 - w[0].0).fold(0.0, f64::max);
    (rows.into_iter().map(|(_, n, _)| n).collect(), gap)
}

/// Stops the writer; returns each acknowledged insert as (epoch seconds, number, the
/// server_id that acknowledged it), in order.
fn stop_writer_acks() -> Vec<(f64, u64, u32)> {
    on("backup1", "rm -f /root/writer.run; sleep 1");
    let log = on("backup1", "cat /root/writer.log");
    log.lines()
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

/// lab/fault.sh with `args` (the fault-injection harness).
fn fault(args: &[&str]) {
    let o = bounded(EXEC_LIMIT_S, "bash")
        .arg(repo().join("lab/fault.sh"))
        .args(args)
        .output()
        .expect("lab/fault.sh");
    assert!(
        o.status.success(),
        "lab/fault.sh {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Reads through the proxy's reader port `n` times (new connections, from backup1, as the
/// application): each answer's (server_id, read_only).
fn reader_answers(n: usize) -> Vec<(u32, bool)> {
    on(
        "backup1",
        &format!(
            "for i in $(seq 1 {n}); do mariadb --defaults-extra-file=/root/app.cnf -h 172.29.77.31 -P 3307 -N --connect-timeout=2 \
             -e 'SELECT @@server_id, @@read_only' 2>/dev/null; done; true"
        ),
    )
    .lines()
    .filter_map(|l| {
        let (id, ro) = l.split_once('\t')?;
        Some((id.trim().parse().ok()?, ro.trim() == "1"))
    })
    .collect()
}

/// HAProxy's servers of `backend` that are up and not in maintenance (runtime state).
fn proxy_up(backend: &str) -> Vec<String> {
    on(
        "proxy1",
        &format!(
            "echo 'show servers state {backend}' | socat stdio unix-connect:/run/haproxy/admin.sock"
        ),
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[1] == backend && f[5] == "2" && f[6] == "0").then(|| f[3].to_string())
    })
    .collect()
}

/// Every acknowledged number is in app.seq on `host`.
fn assert_all_present(host: &str, acked: &[u64]) {
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

/// Once each of `hosts` has the last acknowledged number, every acknowledged number is in
/// app.seq there.
fn assert_everywhere(hosts: &[&str], acked: &[u64]) {
    let last = acked.iter().max().expect("acknowledged inserts");
    for h in hosts {
        eventually(
            h,
            &format!("SELECT COUNT(*) FROM app.seq WHERE n = {last}"),
            "1",
        );
        assert_all_present(h, acked);
    }
}

/// HAProxy's writer backend: servers that are up and not in maintenance (runtime state).
fn proxy_writers() -> Vec<String> {
    on(
        "proxy1",
        "echo 'show servers state writer' | socat stdio unix-connect:/run/haproxy/admin.sock",
    )
    .lines()
    .filter_map(|l| {
        // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ...
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 6 && f[1] == "writer" && f[5] == "2" && f[6] == "0").then(|| f[3].to_string())
    })
    .collect()
}

fn docker(args: &[&str]) {
    let o = Command::new("docker").args(args).output().expect("docker");
    assert!(
        o.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn switchover_under_write_load_keeps_every_acknowledged_insert_and_refuses_unready_candidates() {
    let mut lab = lab();
    converge(&mut lab);
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "switchover.yml",
        &[(
            "    server_id: 2\n",
            "    server_id: 2\n    vars:\n      max_replica_lag_seconds: 2\n",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let before = std::fs::read_to_string(&inv).expect("inventory");

    // Must-show 2: a stopped candidate is refused and nothing changes ...
    sql("db2", "STOP SLAVE");
    let r = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains("db2 is not replicating (IO thread: No, SQL thread: No)"),
        "{}",
        r.all()
    );
    assert!(
        r.stderr.contains("switchover to db2 refused"),
        "{}",
        r.all()
    );
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    sql("db2", "START SLAVE");
    // ... and so is a lagging one (it applies 30 s late; its limit is 2 s).
    sql(
        "db2",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 30; START SLAVE",
    );
    sql(
        "db1",
        "CREATE TABLE IF NOT EXISTS app.lag (id INT PRIMARY KEY); REPLACE INTO app.lag VALUES (1)",
    );
    std::thread::sleep(Duration::from_secs(4));
    let r = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("db2 lags"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    sql(
        "db2",
        "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE",
    );
    // The delayed CREATE TABLE may not be applied yet: wait for the table, then its row.
    eventually(
        "db2",
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = 'lag'",
        "1",
    );
    eventually("db2", "SELECT COUNT(*) FROM app.lag", "1");

    // Must-show 1: db1 → db2 while the writer inserts through the proxy.
    start_writer("db1", 1_000_000);
    let s = dbfleet_with(&inv, &["switchover", "--to", "db2", "--auto-approve"], &[]);
    let (acked, gap) = stop_writer();
    assert_eq!(s.code, 0, "{}", s.all());
    assert!(s.stdout.contains("writes were blocked for"), "{}", s.all());
    eprintln!(
        "switchover: {} acknowledged inserts, longest gap between two {gap:.3} s",
        acked.len()
    );
    assert!(acked.len() > 20);
    assert_eq!(proxy_writers(), vec!["db2".to_string()]);
    for h in ["db1", "db3"] {
        assert_eq!(slave_status(h)["Master_Host"], "172.29.77.12", "{h}");
        assert_eq!(sql(h, "SELECT @@GLOBAL.read_only"), "1", "{h}");
    }
    assert_eq!(sql("db2", "SELECT @@GLOBAL.read_only"), "0");
    assert_everywhere(&DB_HOSTS, &acked);
    // The inventory says so now, its comments kept; a re-plan is empty.
    let after = std::fs::read_to_string(&inv).expect("inventory");
    assert!(
        after.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]"),
        "{after}"
    );
    assert!(
        after.contains("    roles: [replica]\n    server_id: 1"),
        "{after}"
    );
    assert!(after.starts_with("# The lab fleet"));
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());
    // The demoted db1 still holds its own GTIDs from its time as primary; db2 has them too,
    // so they are history, not errant: status is healthy.
    let st = dbfleet_with(&inv, &["status"], &[]);
    assert_eq!(st.code, 0, "status after a switchover:\n{}", st.all());

    // And back to lab.yml's topology.
    let s = dbfleet_with(&inv, &["switchover", "--to", "db1", "--auto-approve"], &[]);
    assert_eq!(s.code, 0, "{}", s.all());
    converge(&mut lab);
}

#[test]
fn failover_after_a_killed_primary_loses_no_acknowledged_insert_then_rejoin_and_refusals() {
    let mut lab = lab();
    converge(&mut lab);
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = lab_variant(
        dir.path(),
        "failover.yml",
        &[(
            "    max_connections: 200",
            "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: 5000",
        )],
    );
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );

    // Must-show 4a: the primary is alive: refused.
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("db1 is alive"), "{}", r.all());

    // Must-show 3: kill the primary under write load, then fail over.
    start_writer("db1", 2_000_000);
    docker(&["kill", "lab-db1"]);
    let f = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    std::thread::sleep(Duration::from_secs(1));
    let (acked, gap) = stop_writer();
    assert_eq!(f.code, 0, "{}", f.all());
    eprintln!(
        "failover: {} acknowledged inserts, longest gap between two {gap:.3} s",
        acked.len()
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let new = if text.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]") {
        "db2"
    } else {
        "db3"
    };
    let other = if new == "db2" { "db3" } else { "db2" };
    let new_addr = if new == "db2" {
        "172.29.77.12"
    } else {
        "172.29.77.13"
    };
    assert!(
        f.stdout.contains(&format!("{new} is the primary")),
        "{}",
        f.all()
    );
    assert_eq!(proxy_writers(), vec![new.to_string()]);
    assert_eq!(sql(new, "SELECT @@GLOBAL.read_only"), "0");
    assert_eq!(sql(other, "SELECT @@GLOBAL.read_only"), "1");
    assert_eq!(slave_status(other)["Master_Host"], new_addr);
    assert_everywhere(&[new, other], &acked);

    // Must-show 4b: a second failover inside the anti-flap window refuses.
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("failover_anti_flap_seconds"),
        "{}",
        r.all()
    );

    // Must-show 5a: the killed host comes back and rejoins as a replica of the new primary.
    docker(&["start", "lab-db1"]);
    std::thread::sleep(Duration::from_secs(2));
    let d = dbfleet_with(&inv, &["rejoin", "db1", "--dry-run"], &[]);
    assert_eq!(d.code, 0, "{}", d.all());
    assert!(
        d.stdout
            .contains(&format!("Rejoin db1 as a replica of {new}"))
            && d.stdout.contains("Dry run: nothing was changed"),
        "{}",
        d.all()
    );
    let r = dbfleet_with(&inv, &["rejoin", "db1", "--auto-approve"], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    let st = slave_status("db1");
    assert_eq!(st["Slave_SQL_Running"], "Yes");
    assert_eq!(st["Master_Host"], new_addr);
    assert_all_present("db1", &acked);
    // The restarted container lost its cron daemon and firewall rules: apply restores them.
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(p.code, 0, "{}", p.all());

    // Must-show 4c and 5b: an errant transaction on `other` (root bypasses read_only), an
    // extra one on the primary that no replica receives; then the primary dies.
    sql(
        other,
        "CREATE TABLE IF NOT EXISTS app.errant (id INT PRIMARY KEY); INSERT INTO app.errant VALUES (1)",
    );
    sql("db1", "STOP SLAVE IO_THREAD");
    sql(other, "STOP SLAVE IO_THREAD");
    sql(
        new,
        "SET GLOBAL rpl_semi_sync_master_enabled = 0; CREATE TABLE app.extra (id INT PRIMARY KEY)",
    );
    let extra_gtid = sql(new, "SELECT @@GLOBAL.gtid_binlog_pos");
    docker(&["kill", &format!("lab-{new}")]);
    let r = dbfleet_with(
        &inv,
        &["failover", "--force", "--to", other, "--auto-approve"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr
            .contains(&format!("{other} has errant transactions")),
        "{}",
        r.all()
    );
    // Issue 12, must-show 4: the failover as a plan value. --json shows the statements that
    // will run (the replication password as a placeholder); --out saves the plan; a saved
    // plan whose inventory changed is refused, changing nothing; unchanged, it runs.
    let j = dbfleet_with(&inv, &["failover", "--force", "--to", "db1", "--json"], &[]);
    assert_eq!(j.code, 0, "{}", j.all());
    let plan: serde_json::Value = serde_json::from_str(&j.stdout).expect("plan JSON");
    assert_eq!(plan["runbook"]["verb"], "failover", "{}", j.stdout);
    let steps = plan["steps"].as_array().expect("steps");
    assert!(
        steps.iter().any(|s| s["hosts"][0] == "db1"
            && s["action"]["do"] == "sql"
            && s["action"]["statements"]
                .as_str()
                .is_some_and(|t| t.contains("RESET SLAVE ALL"))),
        "db1's promotion is a step with its statements:\n{}",
        j.stdout
    );
    assert!(
        j.stdout.contains("[secret: replication password]"),
        "the repoint names the password by placeholder:\n{}",
        j.stdout
    );
    let store = std::fs::read_to_string(dir.path().join(".dbfleet/secrets.json")).expect("store");
    let secrets: serde_json::Value = serde_json::from_str(&store).expect("json");
    let repl_pw = secrets["replication_password"]
        .as_str()
        .expect("replication password");
    assert!(!j.stdout.contains(repl_pw), "no secret in the plan");
    let saved = dir.path().join("failover-plan.json");
    let saved_arg = saved.display().to_string();
    let o = dbfleet_with(
        &inv,
        &["failover", "--force", "--to", "db1", "--out", &saved_arg],
        &[],
    );
    assert_eq!(o.code, 0, "{}", o.all());
    assert!(o.stdout.contains("Saved the plan"), "{}", o.all());
    assert!(
        !std::fs::read_to_string(&saved)
            .expect("saved")
            .contains(repl_pw)
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    std::fs::write(&inv, format!("{text}# edited after the plan was saved\n")).expect("edit");
    let stale = dbfleet_with(&inv, &["apply", &saved_arg], &[]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("inventory"),
        "{}",
        stale.all()
    );
    assert_eq!(
        sql("db1", "SELECT @@GLOBAL.read_only"),
        "1",
        "nothing changed"
    );
    std::fs::write(&inv, &text).expect("restore the inventory");
    let r = dbfleet_with(&inv, &["apply", &saved_arg], &[]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains("db1 is the primary"), "{}", r.all());
    assert_eq!(sql("db1", "SELECT @@GLOBAL.read_only"), "0");
    docker(&["start", &format!("lab-{new}")]);
    std::thread::sleep(Duration::from_secs(2));
    let r = dbfleet_with(&inv, &["rejoin", new, "--auto-approve"], &[]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.stderr.contains("never saw"), "{}", r.all());
    assert!(
        r.stderr.contains(extra_gtid.trim()),
        "the extra transaction {extra_gtid} is named:\n{}",
        r.all()
    );

    // Back to a fresh, converged lab.
    let ok = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .args(["reset", "db1", "db2", "db3"])
        .status()
        .expect("lab reset");
    assert!(ok.success());
    lab.fresh = true;
    converge(&mut lab);
}

/// The lab with semi-sync on (`semi_sync_timeout_ms: timeout`) as inventory `name` in
/// `dir`, applied, with both replicas connected as semi-sync clients.
fn semi_sync_lab(dir: &Path, name: &str, timeout: &str) -> PathBuf {
    let vars = format!(
        "    max_connections: 200\n    semi_sync: true\n    semi_sync_timeout_ms: {timeout}"
    );
    let inv = lab_variant(dir, name, &[("    max_connections: 200", vars.as_str())]);
    let a = dbfleet_with(&inv, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = dbfleet_with(&inv, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    eventually(
        "db1",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_CLIENTS'",
        "2",
    );
    inv
}

/// Issue 10, cases 1 and 2, with the fault harness (lab/fault.sh): the primary is cut off
/// from this machine and from its replicas, but not from the proxy, while the application
/// writes through the proxy.
/// - With semi-sync that may fall back to async (a timeout in ms), the cut-off primary keeps
///   acknowledging writes only it has: `failover` refuses (the proxy still reaches it) and,
///   once healed, every acknowledged insert is everywhere.
/// - With lossless semi-sync (`semi_sync_timeout_ms: never`) its commits block: `failover`
///   fences it on the proxy and promotes a replica; every acknowledged insert survives, all
///   acknowledged by the primary of their moment; once its network is back the old primary
///   is served by neither backend (the reader port never answers from a writable server),
///   and `rejoin` leaves it read-only whatever it decides.
#[test]
fn partitioned_primary_still_reached_by_the_proxy_loses_no_acknowledged_write_and_never_makes_two_writers()
 {
    let mut lab = lab();
    converge(&mut lab);
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = semi_sync_lab(dir.path(), "fallback.yml", "3000");
    let before = std::fs::read_to_string(&inv).expect("inventory");

    // Case 1 with a fallback: refused, nothing changed, nothing lost.
    start_writer("db1", 3_000_000);
    fault(&["partition", "db1", "operator", "db2", "db3"]);
    std::thread::sleep(Duration::from_secs(6));
    let r = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    fault(&["heal", "db1"]);
    let acks = stop_writer_acks();
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(
        r.stderr.contains("db1's database port answers from proxy1"),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("nothing was changed"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&inv).expect("inventory"), before);
    assert_eq!(proxy_up("writer"), vec!["db1".to_string()]);
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(acks.iter().all(|a| a.2 == 1), "only db1 acknowledged");
    assert_everywhere(&DB_HOSTS, &acked);
    eprintln!(
        "partition with fallback: failover refused, 0 of {} acknowledged inserts lost",
        acked.len()
    );

    // Case 1 lossless, then case 2.
    let inv = semi_sync_lab(dir.path(), "lossless.yml", "never");
    assert_eq!(
        sql(
            "db1",
            "SELECT @@rpl_semi_sync_master_timeout, @@rpl_semi_sync_master_wait_no_slave"
        ),
        "31536000000\t1"
    );
    start_writer("db1", 4_000_000);
    fault(&["partition", "db1", "operator", "db2", "db3"]);
    std::thread::sleep(Duration::from_secs(4));
    let f = dbfleet_with(&inv, &["failover", "--auto-approve"], &[]);
    std::thread::sleep(Duration::from_secs(2));
    let acks = stop_writer_acks();
    assert_eq!(f.code, 0, "{}", f.all());
    assert!(
        f.stdout.contains("fenced there first") || f.stderr.contains("fenced there first"),
        "{}",
        f.all()
    );
    let text = std::fs::read_to_string(&inv).expect("inventory");
    let (new, other, new_id) =
        if text.contains("  db2:\n    address: 172.29.77.12\n    roles: [primary]") {
            ("db2", "db3", 2)
        } else {
            ("db3", "db2", 3)
        };
    let acked: Vec<u64> = acks.iter().map(|a| a.1).collect();
    assert!(
        acks.iter().any(|a| a.2 == new_id),
        "writes resumed on {new}"
    );
    // Acknowledged by the primary of their moment: db1's acks all come before the new
    // primary's first, and no other server acknowledged anything.
    let first_new = acks.iter().position(|a| a.2 == new_id).expect("new acks");
    assert!(
        acks[..first_new].iter().all(|a| a.2 == 1)
            && acks[first_new..].iter().all(|a| a.2 == new_id),
        "two writers acknowledged inserts: {:?}",
        acks.iter().map(|a| a.2).collect::<Vec<_>>()
    );
    assert_everywhere(&[new, other], &acked);
    eprintln!(
        "lossless partition: failover fenced db1 on the proxy, 0 of {} acknowledged inserts lost",
        acked.len()
    );

    // Case 2: db1's network comes back, writable, with commits waiting for an ack.
    fault(&["heal", "db1"]);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        sql("db1", "SELECT @@read_only"),
        "0",
        "the old primary came back writable"
    );
    assert_eq!(proxy_up("writer"), vec![new.to_string()]);
    assert!(
        !proxy_up("reader").contains(&"db1".to_string()),
        "db1 is no reader"
    );
    let answers = reader_answers(20);
    assert!(!answers.is_empty(), "the reader port answers");
    assert!(
        answers.iter().all(|(id, ro)| *ro && *id != 1),
        "the reader port served a writable server: {answers:?}"
    );
    let r = dbfleet_with(&inv, &["rejoin", "db1", "--auto-approve"], &[]);
    assert_eq!(
        sql("db1", "SELECT @@read_only"),
        "1",
        "rejoin (exit {}) fenced db1:\n{}",
        r.code,
        r.all()
    );

    // Back to a fresh, converged lab.
    reset(&DB_HOSTS);
    lab.fresh = true;
    converge(&mut lab);
}

/// HAProxy's count of UP → DOWN transitions per `backend/server` (`show stat`, column
/// `chkdown`).
fn proxy_downs() -> BTreeMap<String, u64> {
    let csv = on(
        "proxy1",
        "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock",
    );
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (px, sv, down) = (col("pxname"), col("svname"), col("chkdown"));
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let server = f.get(sv)?;
            (*server != "FRONTEND" && *server != "BACKEND").then(|| {
                Some((
                    format!("{}/{server}", f.get(px)?),
                    f.get(down)?.parse().ok()?,
                ))
            })?
        })
        .collect()
}

/// Issue 10, case 4: the proxy host's CPUs saturated (stress-ng, 8 workers on 2 cores)
/// while the application writes through it: no healthy server is marked down, and writes
/// keep flowing. The checks are answered by the long-lived checker from its last read, with
/// no fork per check. (bench/nemesis.sh runs the 2-minute version and prints figures.)
#[test]
fn proxy_checks_keep_healthy_servers_up_on_a_saturated_proxy_host() {
    let mut lab = lab();
    converge(&mut lab);
    start_writer("db1", 5_000_000);
    // The writer is going, so every server has been checked: take the counters now.
    let before = proxy_downs();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    fault(&["stress", "proxy1", "40", "8"]);
    std::thread::sleep(Duration::from_secs(40));
    let acks = stop_writer_acks();
    let after = proxy_downs();
    let during: Vec<f64> = acks.iter().map(|a| a.0).filter(|t| *t > t0 + 1.0).collect();
    let gap = during.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    eprintln!(
        "saturated proxy: {} acknowledged inserts in 40 s, longest gap {gap:.3} s; chkdown before {before:?} after {after:?}",
        during.len()
    );
    for (server, n) in &after {
        if server.starts_with("writer/db1")
            || server.starts_with("reader/db2")
            || server.starts_with("reader/db3")
        {
            assert_eq!(
                before.get(server),
                Some(n),
                "{server} was marked down under load"
            );
        }
    }
    assert!(
        during.len() > 20,
        "writes kept flowing: {} in 40 s",
        during.len()
    );
    assert_eq!(proxy_writers(), vec!["db1".to_string()]);
    on("proxy1", "pkill stress-ng || true");
}

#[test]
fn backup_jobs_run_from_cron_files_to_the_backup_server_prune_to_retention_and_leak_no_secret() {
    let mut lab = lab();
    converge(&mut lab);
    // Rows for the restores to check, replicated to db2 (the jobs' host) before they run.
    fresh_table("verified", "checked", 1000);
    // Must-show 1: the cron files on the hosts are exactly the rendered ones.
    let rendered = tempfile::tempdir().expect("tempdir");
    let o = dbfleet(&[
        "plan",
        "--offline",
        "--out-dir",
        &rendered.path().display().to_string(),
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    for h in ["db1", "db2", "proxy1"] {
        let want =
            std::fs::read_to_string(rendered.path().join(h).join("etc/cron.d/dbfleet-backup"))
                .expect("rendered cron file");
        assert_eq!(
            on(h, "cat /etc/cron.d/dbfleet-backup"),
            want.trim_end(),
            "{h}"
        );
    }
    assert!(
        !rendered
            .path()
            .join("db3/etc/cron.d/dbfleet-backup")
            .exists()
    );
    let want = std::fs::read_to_string(
        rendered
            .path()
            .join("backup1/etc/cron.d/dbfleet-backup-verify"),
    )
    .expect("rendered verify cron file");
    assert_eq!(
        on("backup1", "cat /etc/cron.d/dbfleet-backup-verify"),
        want.trim_end()
    );
    // Each job, triggered, lands on backup1.
    for (job, mode) in [
        ("app-logical", "run"),
        ("app-physical", "full"),
        ("app-physical", "incremental"),
        ("binlogs", "run"),
        ("proxy-config", "run"),
    ] {
        let host = match job {
            "binlogs" => "db1",
            "proxy-config" => "proxy1",
            _ => "db2",
        };
        // The hosts share this machine's clock; restic keeps whole seconds.
        let started = chrono::Utc::now() - chrono::Duration::seconds(1);
        let r = dbfleet(&["backup", "run", job, "--mode", mode]);
        assert_eq!(r.code, 0, "{job} {mode}: {}", r.all());
        assert!(
            r.stdout.contains(&format!("{job} {mode}: ok")),
            "{}",
            r.all()
        );
        // This run's snapshot is in the repository on backup1 (read back through SFTP).
        let snaps: serde_json::Value = serde_json::from_str(&on(
            host,
            &format!("/usr/local/lib/dbfleet/backup-{job} snapshots"),
        ))
        .expect("json");
        let fresh = snaps.as_array().expect("array").iter().any(|s| {
            let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap_or(""));
            t.is_ok_and(|t| t >= started)
                && s["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|t| t == mode))
        });
        assert!(fresh, "{job} {mode}: no snapshot of this run: {snaps}");
        assert_ne!(
            on(
                "backup1",
                &format!("ls /srv/dbfleet-backups/{job}/snapshots | wc -l")
            ),
            "0"
        );
    }
    let l = dbfleet(&["backup", "list", "--json"]);
    assert_eq!(l.code, 0, "{}", l.all());
    let list: serde_json::Value = serde_json::from_str(&l.stdout).expect("json");
    assert_eq!(list["format_version"], 1);
    let physical = list["jobs"]
        .as_array()
        .expect("array")
        .iter()
        .find(|j| j["job"] == "app-physical")
        .expect("app-physical listed");
    let tags: Vec<String> = physical["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .flat_map(|s| s["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert!(tags.contains(&"full".to_string()) && tags.contains(&"incremental".to_string()));
    assert_eq!(physical["within_rpo"], true);
    // A second apply changes nothing.
    assert_empty_plan();

    // Must-show 3: `backup verify` restores every job's newest backup on backup1 and
    // checks it; the logical one against the manifest db2 recorded at backup time.
    let v = dbfleet(&["backup", "verify"]);
    assert_eq!(v.code, 0, "{}", v.all());
    for want in [
        "rows readable, row counts and checksums match the manifest",
        "app-logical ok: ",
        "app-physical ok: full ",
        "binlogs ok: ",
        "proxy-config ok: ",
    ] {
        assert!(v.stdout.contains(want), "`{want}` in:\n{}", v.all());
    }
    assert!(
        v.stdout.contains("1 incremental(s) prepared and started"),
        "{}",
        v.all()
    );
    assert!(
        on(
            "backup1",
            "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_app-logical.prom"
        )
        .contains("dbfleet_backup_verify_ok{job=\"app-logical\"} 1")
    );
    // db2's SQL thread, paused for the manifest and dump, runs again.
    assert_eq!(slave_status("db2")["Slave_SQL_Running"], "Yes");
    // A pack file of the logical job truncated on backup1: verify fails, naming the job
    // and the pack.
    let pack = on(
        "backup1",
        "find /srv/dbfleet-backups/app-logical/data -type f -printf '%s %p\\n' | sort -n | tail -n 1 | cut -d' ' -f2",
    );
    let pack_id = pack.rsplit('/').next().expect("pack id").to_string();
    on(
        "backup1",
        &format!("cp -p {pack} /tmp/pack.good && truncate -s 100 {pack}"),
    );
    let bad = dbfleet(&["backup", "verify", "app-logical"]);
    on("backup1", &format!("mv /tmp/pack.good {pack}"));
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stdout.contains(&format!(
            "app-logical FAILED: restic check: pack {pack_id}: unexpected file size"
        )),
        "{}",
        bad.all()
    );
    assert!(
        bad.stderr
            .contains("backup verification failed: app-logical"),
        "{}",
        bad.all()
    );
    assert!(
        on(
            "backup1",
            "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_app-logical.prom"
        )
        .contains("dbfleet_backup_verify_ok{job=\"app-logical\"} 0")
    );

    // Must-show 2: retention. proxy-config keeps 14 days (relative to its newest backup):
    // backups dated 40, 20, 15, 13, 7 and 1 days back are pruned to those within 14 days.
    let now = chrono::Utc::now();
    for days in [40i64, 20, 15, 13, 7, 1] {
        let at = (now - chrono::Duration::days(days)).format("%Y-%m-%d %H:%M:%S");
        on(
            "proxy1",
            &format!("DBFLEET_BACKUP_TIME='{at}' /usr/local/lib/dbfleet/backup-proxy-config run"),
        );
    }
    let ages = snapshot_ages(
        &on(
            "proxy1",
            "/usr/local/lib/dbfleet/backup-proxy-config snapshots",
        ),
        now,
    );
    // Kept: 13, 7 and 1 days back, and today's runs; pruned: 15, 20 and 40 days back.
    let dated: Vec<i64> = ages.iter().copied().filter(|a| *a > 0).collect();
    assert_eq!(
        dated,
        vec![1, 7, 13],
        "kept exactly the backups within 14 days: {ages:?}"
    );
    assert!(ages.contains(&0));

    // Must-show 8: no secret in any cron file, script, log or output.
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("inventories/.dbfleet/secrets.json")).expect("secrets"),
    )
    .expect("json");
    let mut seen = String::new();
    for h in ["db1", "db2", "proxy1"] {
        seen.push_str(&on(
            h,
            "cat /etc/cron.d/dbfleet-backup /usr/local/lib/dbfleet/backup-* /var/log/dbfleet/backup-*.log",
        ));
    }
    seen.push_str(&on(
        "backup1",
        "cat /etc/cron.d/dbfleet-backup-verify /usr/local/lib/dbfleet/backup-verify /var/log/dbfleet/backup-verify.log",
    ));
    seen.push_str(&l.all());
    seen.push_str(&v.all());
    seen.push_str(&bad.all());
    for (name, value) in store.as_object().expect("object") {
        let v = value.as_str().expect("string");
        assert!(
            !seen.contains(v),
            "secret {name} leaked into backup files or output"
        );
    }
}

/// The age in whole days before `now` of each snapshot in `restic snapshots --json`, sorted.
fn snapshot_ages(json: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<i64> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    let mut a: Vec<i64> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().expect("time"))
                .expect("rfc3339");
            (now - t.with_timezone(&chrono::Utc)).num_hours() / 24
        })
        .collect();
    a.sort();
    a
}

#[test]
fn restore_to_a_point_in_time_brings_back_a_dropped_table_with_every_row_before_it() {
    let mut lab = lab();
    converge(&mut lab);
    // 100 rows, then the logical backup (on db2), then 50 more rows.
    fresh_table("pitr", "before the backup", 100);
    let b = dbfleet(&["backup", "run", "app-logical"]);
    assert_eq!(b.code, 0, "{}", b.all());
    sql(
        "db1",
        "USE app; INSERT INTO app.pitr SELECT seq, 'after the backup' FROM seq_101_to_150",
    );
    // The time to restore to, whole seconds apart from what comes before and after it.
    std::thread::sleep(Duration::from_millis(2100));
    let to = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    sql(
        "db1",
        "INSERT INTO app.pitr VALUES (151, 'after the time'); DROP TABLE app.pitr",
    );
    // Without the binary logs archived past that time, restore refuses and says why
    // (unless cron's own binlog run, every 30 minutes, fell in these seconds).
    let early = dbfleet(&["restore", "db1", "--to", &to, "--auto-approve"]);
    if early.code != 0 {
        assert!(
            early.stderr.contains("binlog archive") || early.stderr.contains("binlogs"),
            "{}",
            early.all()
        );
    }
    let r = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Shown as a plan first; --dry-run changes nothing.
    let gtid_before = sql("db1", "SELECT @@gtid_binlog_pos");
    let p = dbfleet(&["restore", "db1", "--to", &to, "--dry-run"]);
    assert_eq!(p.code, 0, "{}", p.all());
    for step in [
        "Restore db1 (primary of cluster lab) to",
        "read_only ON on db1",
        "drop and reload app from app-logical backup",
        "replay the archived binary logs of binlogs",
        "read_only OFF on db1",
    ] {
        assert!(p.stdout.contains(step), "`{step}` in:\n{}", p.all());
    }
    assert_eq!(sql("db1", "SELECT @@gtid_binlog_pos"), gtid_before);
    // Without a terminal, approval is required.
    let no = dbfleet(&["restore", "db1", "--to", &to]);
    assert_eq!(no.code, 1, "{}", no.all());
    assert!(no.stderr.contains("--auto-approve"), "{}", no.all());

    // Saved, then the binlog archive moves on: the saved plan is stale and changes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("restore-plan.json").display().to_string();
    let o = dbfleet(&["restore", "db1", "--to", &to, "--out", &saved]);
    assert_eq!(o.code, 0, "{}", o.all());
    let r = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let stale = dbfleet(&["apply", &saved]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("binlogs newest run was"),
        "{}",
        stale.all()
    );
    assert_eq!(sql("db1", "SELECT @@gtid_binlog_pos"), gtid_before);
    let o = dbfleet(&["restore", "db1", "--to", &to, "--out", &saved]);
    assert_eq!(o.code, 0, "{}", o.all());
    let a = dbfleet(&["apply", &saved]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(a.stdout.contains("restored db1 in"), "{}", a.all());
    // Every row inserted before the time is back, none after it, on the primary and, by
    // replication, on both replicas; the primary takes writes again.
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'pitr'",
            "1",
        );
        eventually(
            h,
            "SELECT CONCAT(COUNT(*), ' ', MAX(id)) FROM app.pitr",
            "150 150",
        );
    }
    assert_eq!(sql("db1", "SELECT @@read_only"), "0");
    assert_eq!(
        sql(
            "db1",
            "SELECT COUNT(*) FROM app.pitr WHERE v = 'after the backup'"
        ),
        "50"
    );
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.pitr"),
        sql("db1", "CHECKSUM TABLE app.pitr")
    );
    let s = dbfleet(&["status"]);
    assert_eq!(
        s.code,
        0,
        "the cluster is healthy after the restore:\n{}",
        s.all()
    );
    assert_empty_plan();
}

fn reset(hosts: &[&str]) {
    let o = Command::new("bash")
        .arg(repo().join("lab/lab.sh"))
        .arg("reset")
        .args(hosts)
        .output()
        .expect("reset");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn rows(host: &str) -> String {
    sql(
        host,
        "SELECT CONCAT(COUNT(*), ' ', IFNULL(SUM(v = 'lost'), 0)) FROM app.rebuilt",
    )
}

#[test]
fn rebuild_brings_back_a_lost_replica_then_a_lost_cluster_from_backups_alone() {
    let mut lab = lab();
    converge(&mut lab);
    // A full backup, more rows, an incremental, more rows (replicated, not backed up).
    fresh_table("rebuilt", "before the full", 1000);
    for mode in ["full", "incremental"] {
        let b = dbfleet(&["backup", "run", "app-physical", "--mode", mode]);
        assert_eq!(b.code, 0, "{}", b.all());
        sql(
            "db1",
            &format!(
                "USE app; INSERT INTO app.rebuilt SELECT seq, 'after the {mode}' FROM seq_{}_to_{}",
                if mode == "full" { 1001 } else { 2001 },
                if mode == "full" { 1500 } else { 2100 }
            ),
        );
    }

    // Must-show 5: db3 destroyed, a bare host in its place. Its data must come from the
    // backups: the primary cannot make a copy (mariadb-backup taken away on db1).
    reset(&["db3"]);
    on("db1", "chmod -x /usr/bin/mariadb-backup");
    let r = dbfleet(&["rebuild", "db3", "--auto-approve"]);
    on("db1", "chmod +x /usr/bin/mariadb-backup");
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("seeded from app-physical's newest backup chain"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("Rebuilt db3: measured RTO ") && r.stdout.contains("declared RTO 1h"),
        "{}",
        r.all()
    );
    let st = slave_status("db3");
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str()
        ),
        ("Yes", "Yes")
    );
    eventually("db3", "SELECT COUNT(*) FROM app.rebuilt", "1600");
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.rebuilt"),
        sql("db1", "CHECKSUM TABLE app.rebuilt")
    );
    assert_empty_plan();

    // A host that was not lost is refused, and so is the primary alone.
    let not_bare = dbfleet(&["rebuild", "db3", "--auto-approve"]);
    assert_eq!(not_bare.code, 1, "{}", not_bare.all());
    assert!(
        not_bare.stderr.contains("still holds a data folder"),
        "{}",
        not_bare.all()
    );
    let alone = dbfleet(&["rebuild", "db1", "--auto-approve"]);
    assert_eq!(alone.code, 1, "{}", alone.all());
    assert!(alone.stderr.contains("fail over"), "{}", alone.all());

    // Must-show 6: rows archived by the binlog job, then rows written after its run; then
    // every database host is lost.
    sql(
        "db1",
        "USE app; INSERT INTO app.rebuilt SELECT seq, 'archived' FROM seq_3001_to_3050",
    );
    let b = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(b.code, 0, "{}", b.all());
    sql(
        "db1",
        "USE app; INSERT INTO app.rebuilt SELECT seq, 'lost' FROM seq_4001_to_4005",
    );
    assert_eq!(rows("db1"), "1655 5");
    reset(&["db1", "db2", "db3"]);
    let all = dbfleet(&["rebuild", "db1", "db2", "db3", "--auto-approve"]);
    assert_eq!(all.code, 0, "{}", all.all());
    // Everything up to the binlog archive's run is back on all three, nothing after it;
    // the bound on the loss is printed beside the RPO.
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'rebuilt'",
            "1",
        );
        eventually(h, "SELECT COUNT(*) FROM app.rebuilt", "1650");
        assert_eq!(rows(h), "1650 0", "{h}");
    }
    assert_eq!(
        sql("db2", "CHECKSUM TABLE app.rebuilt"),
        sql("db1", "CHECKSUM TABLE app.rebuilt")
    );
    let line = all
        .stdout
        .lines()
        .find(|l| l.starts_with("Recovered up to "))
        .unwrap_or_else(|| panic!("no RPO line:\n{}", all.all()));
    assert!(
        line.contains("declared RPO 1d") && !line.contains("over the RPO"),
        "{line}"
    );
    assert!(
        all.stdout.contains("Rebuilt db1, db2, db3: measured RTO "),
        "{}",
        all.all()
    );
    assert_eq!(sql("db1", "SELECT @@read_only"), "0");
    let s = dbfleet(&["status"]);
    assert_eq!(s.code, 0, "{}", s.all());
    assert_empty_plan();
}

/// Starts the lab's offsite object storage (Garage at .41, outside the inventory) and returns
/// its S3 key as environment variables for dbfleet (`LAB_S3_ACCESS_KEY`,
/// `LAB_S3_SECRET_KEY`), read from the 0600 file lab/lab.sh writes.
fn offsite_storage() -> Vec<(String, String)> {
    let o = bounded("1800", "bash")
        .arg(repo().join("lab/lab.sh"))
        .arg("offsite")
        .output()
        .expect("lab/lab.sh offsite");
    assert!(
        o.status.success(),
        "lab/lab.sh offsite failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(repo().join(".lab/offsite.env"))
        .expect("offsite.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn offsite_copy_to_s3_keeps_its_retention_verifies_and_restores_a_rebuilt_backup_server() {
    let mut lab = lab();
    converge(&mut lab);
    let env = offsite_storage();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Seed 003's bucket: every job copied daily at 03:30, kept 10 days there.
    let inv = lab_variant(
        dir.path(),
        "offsite.yml",
        &[
            (
                "  backup_encryption_password: { generate: 32 }",
                "  backup_encryption_password: { generate: 32 }\n  s3_access_key: { env: LAB_S3_ACCESS_KEY }\n  s3_secret_key: { env: LAB_S3_SECRET_KEY }",
            ),
            (
                "  server: backup1\n",
                "  server: backup1\n  offsite:\n    repository: s3:http://172.29.77.41:3900/dbfleet-offsite/lab\n    access_key_id: s3_access_key\n    secret_access_key: s3_secret_key\n    schedule: \"30 3 * * *\"\n    retention: { days: 10 }\n",
            ),
        ],
    );
    let d = |args: &[&str]| dbfleet_with(&inv, args, &envs);
    let a = d(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = d(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    // The cron file on backup1 is exactly the rendered one; the credentials file is 0600.
    let rendered = tempfile::tempdir().expect("tempdir");
    let o = d(&[
        "plan",
        "--offline",
        "--out-dir",
        &rendered.path().display().to_string(),
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    let want = std::fs::read_to_string(
        rendered
            .path()
            .join("backup1/etc/cron.d/dbfleet-backup-offsite"),
    )
    .expect("rendered cron file");
    assert_eq!(
        on("backup1", "cat /etc/cron.d/dbfleet-backup-offsite"),
        want.trim_end()
    );
    assert_eq!(
        on("backup1", "stat -c '%a %U' /etc/dbfleet/backup-offsite.env"),
        "600 root"
    );

    // Backups dated 20, 12, 8 and 2 days back (kept on backup1: the job keeps 4 weeks),
    // then today's; the copy keeps the 10 days declared for the offsite side.
    fresh_table("offsite", "copied", 500);
    let now = chrono::Utc::now();
    for days in [20i64, 12, 8, 2] {
        let at = (now - chrono::Duration::days(days)).format("%Y-%m-%d %H:%M:%S");
        on(
            "db2",
            &format!("DBFLEET_BACKUP_TIME='{at}' /usr/local/lib/dbfleet/backup-app-logical run"),
        );
    }
    let r = d(&["backup", "run", "app-logical"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let c = d(&["backup", "offsite", "app-logical"]);
    assert_eq!(c.code, 0, "{}", c.all());
    assert!(c.stdout.contains("app-logical ok: "), "{}", c.all());
    let ages = |json: &str| snapshot_ages(json, now);
    let local = ages(&on(
        "db2",
        "/usr/local/lib/dbfleet/backup-app-logical snapshots",
    ));
    let offsite = ages(&on(
        "backup1",
        "/usr/local/lib/dbfleet/backup-offsite --snapshots app-logical",
    ));
    assert!(
        [2, 8, 12, 20].iter().all(|d| local.contains(d)),
        "backup1 keeps 4 weeks: {local:?}"
    );
    assert_eq!(
        offsite
            .iter()
            .copied()
            .filter(|a| *a > 0)
            .collect::<Vec<_>>(),
        vec![2, 8],
        "the offsite copy keeps exactly the backups within 10 days: {offsite:?}"
    );
    assert!(
        offsite.contains(&0),
        "today's backup is offsite: {offsite:?}"
    );
    // The objects really are in the Garage bucket, under the declared prefix.
    let objects = on(
        "offsite1",
        "garage -c /etc/garage.toml bucket info dbfleet-offsite",
    );
    let count: u64 = objects
        .lines()
        .find_map(|l| l.strip_prefix("Objects:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no object count in:\n{objects}"));
    assert!(count > 0, "{objects}");
    let metrics = on(
        "backup1",
        "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_offsite_app-logical.prom",
    );
    assert!(
        metrics.contains("dbfleet_backup_offsite_last_exit_code{job=\"app-logical\"} 0"),
        "{metrics}"
    );

    // The offsite copy restores: the newest dump loaded into a scratch server on backup1
    // matches the manifest db2 recorded at backup time.
    let v = d(&["backup", "verify", "--offsite", "app-logical"]);
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(
        v.stdout
            .contains("rows readable, row counts and checksums match the manifest"),
        "{}",
        v.all()
    );

    // backup1 is lost: a bare host in its place (new SSH host keys, empty disk). Apply
    // provisions it, with the fleet's backup host key, so the job hosts trust it again at
    // once; `backup offsite --pull` brings every copied backup back, owned by the backup
    // account, and the local verify passes.
    reset(&["backup1"]);
    let a2 = d(&["apply", "--auto-approve"]);
    assert_eq!(a2.code, 0, "{}", a2.all());
    let p = d(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    let pull = d(&["backup", "offsite", "--pull", "app-logical"]);
    assert_eq!(pull.code, 0, "{}", pull.all());
    assert!(
        pull.stdout
            .contains(&format!("app-logical ok: {} snapshots", offsite.len())),
        "{}",
        pull.all()
    );
    assert_eq!(
        on(
            "backup1",
            "find /srv/dbfleet-backups/app-logical ! -user dbfleet-backup | wc -l"
        ),
        "0"
    );
    let v = d(&["backup", "verify", "app-logical"]);
    assert_eq!(v.code, 0, "{}", v.all());
    // The job writes into the pulled store again, over SFTP to the rebuilt server, whose
    // host key db2 checks strictly.
    let r = d(&["backup", "run", "app-logical"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // No secret (the S3 key included) in the cron file, the scripts, the logs or output.
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".dbfleet/secrets.json")).expect("secrets"),
    )
    .expect("json");
    let mut seen = on(
        "backup1",
        "cat /etc/cron.d/dbfleet-backup-offsite /usr/local/lib/dbfleet/backup-offsite /usr/local/lib/dbfleet/backup-verify /var/log/dbfleet/backup-offsite.log /var/log/dbfleet/backup-verify.log",
    );
    for o in [&a, &a2, &c, &v, &pull, &r] {
        seen.push_str(&o.all());
    }
    let mut secrets: Vec<String> = store
        .as_object()
        .expect("object")
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    secrets.extend(env.iter().map(|(_, v)| v.clone()));
    for s in secrets {
        assert!(
            !seen.contains(&s),
            "a secret leaked into offsite files or output"
        );
    }
    // Back to the lab's own inventory for the tests after this one.
    converge(&mut lab);
}
