//! Detached runs (issue 26): a long step that must outlive the operator's session (a
//! replica's data copy: seeding, rebuild; a point-in-time restore on a primary) runs on
//! its host under a supervisor, not under the SSH session that started it. A laptop that sleeps, a VPN that drops or a killed
//! `dbfleet` leaves the copy going; the same command started again attaches to it.
//!
//! On the host, one folder per run, `/var/lib/dbfleet/runs/NAME/` (root only):
//! - `script` (what runs), `out`, `err`, `rc` (its exit code, written last, atomically);
//! - `lock`: held (flock) by the run for as long as it lives. A run is *running* while its
//!   lock is held, *finished* once `rc` exists, *lost* with neither (the host rebooted or
//!   the supervisor was killed): a lost or failed run is never taken for a finished copy;
//! - `lease`: `CLIENT EPOCH`, renewed every [`POLL`] by the `dbfleet` attached to it. A
//!   lease renewed by another client means another `dbfleet` is watching this run: a
//!   second command is refused (never two copies, never two drivers); a lease nobody
//!   renews any more (that `dbfleet` was killed or cut off) is taken over: attach;
//! - `holds`: the service the run keeps stopped (`mariadb`): the service task refuses to
//!   start it while the folder exists (`crate::tasks::service`), so no plan, saved or
//!   fresh, starts a server on a half-copied data folder;
//! - whatever the caller keeps there to finish the step (`aside`: where the replica's old
//!   data folder went).
//!
//! The supervisor is a transient systemd unit (`systemd-run --collect`) where systemd is
//! PID 1, else a `setsid` process with no terminal (containers, the lab): either way no
//! SIGHUP reaches it when the SSH session ends. Progress is read from the host (bytes of
//! the target folder against the expected total) and sent as [`Event::Progress`]; the
//! operator's connection carries nothing else.

use std::time::{Duration, Instant};

use crate::events::{Event, EventSink};
use crate::tasks::q;
use crate::transport::Transport;

pub use crate::tasks::RUNS_DIR;

/// How often an attached `dbfleet` reads the run's state and renews its lease.
pub const POLL: Duration = Duration::from_secs(1);

/// A lease not renewed for this long belongs to a `dbfleet` that is gone: it is taken over.
/// Several polls, so that a slow round trip never makes a live driver look gone.
pub const LEASE_S: u64 = 6;

/// How long one state read may take before the client counts its connection as lost
/// (the run goes on; the client stops and says how to attach again).
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One run on one host: its name (a folder under [`RUNS_DIR`]), this client's identity
/// for the lease, and what it reports progress on.
pub struct Run<'a> {
    pub host: &'a dyn Transport,
    /// A folder name: `[a-z0-9-]` only (checked by [`Run::new`]).
    pub name: &'static str,
    /// What the run does, for messages ("seeding from db1").
    pub what: String,
    /// The folder whose size is the run's progress, and the expected total in bytes.
    pub target: &'static str,
    pub total_bytes: Option<u64>,
    client: String,
}

/// What the host says of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No folder: nothing started, or finished and cleared.
    None,
    Running(Seen),
    /// Its exit code and the end of its stderr.
    Finished {
        rc: i32,
        err: String,
        seen: Seen,
    },
    /// Neither running nor finished: its supervisor died without a result.
    Lost(Seen),
}

/// The parts of a run's state every state carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The host's clock (epoch seconds) and when the run started.
    pub now: u64,
    pub started: u64,
    /// The lease: who renewed it last and when (epoch seconds, the host's clock).
    pub lease_client: String,
    pub lease_at: u64,
    /// Bytes in the target folder now.
    pub bytes: u64,
    /// Files the caller keeps in the run's folder (`aside`): name and first line.
    pub kept: Vec<(String, String)>,
}

/// Why attaching did not end with the run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detached {
    /// Another `dbfleet` drives this run (its lease is renewed): refused, nothing touched.
    Driven { client_age_s: u64 },
    /// The run ended with a non-zero exit or without a result: the caller undoes its step.
    Failed(String),
    /// This client lost the host (the run goes on there): attach again later.
    Disconnected(String),
}

impl<'a> Run<'a> {
    /// A run named `name` on `host`. `name` must be a plain folder name (a constant of
    /// the caller's).
    pub fn new(
        host: &'a dyn Transport,
        name: &'static str,
        what: String,
        target: &'static str,
        total_bytes: Option<u64>,
    ) -> Run<'a> {
        debug_assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        let client = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        Run {
            host,
            name,
            what,
            target,
            total_bytes,
            client,
        }
    }

    fn dir(&self) -> String {
        format!("{RUNS_DIR}/{}", self.name)
    }

    /// Reads the run's state, renewing this client's lease when `renew` (only a client
    /// that drives the run renews it).
    ///
    /// Errors: the transport's, as text (the host did not answer).
    pub async fn state(&self, renew: bool) -> Result<State, String> {
        let d = q(&self.dir());
        let renew = if renew {
            format!(
                "[ -d {d} ] && echo \"{} $(date +%s)\" > {d}/lease\n",
                self.client
            )
        } else {
            String::new()
        };
        let script = state_script(&d, &q(self.target), &renew);
        let out = tokio::time::timeout(READ_TIMEOUT, self.host.run(&script))
            .await
            .map_err(|_| {
                format!(
                    "{} did not answer within {} s",
                    self.host.name(),
                    READ_TIMEOUT.as_secs()
                )
            })?
            .map_err(|e| e.to_string())?;
        Ok(parse_state(&out.stdout))
    }

    /// Starts `script` (bash) on the host as this run, detached, with `kept` files in its
    /// folder and the service `holds` kept stopped; returns once the run holds its lock.
    /// The script gets no stdin and must carry no secret (it is stored on the host).
    ///
    /// Errors: the host refused to start it (the folder exists: a run of that name is
    /// there already), or did not answer.
    pub async fn start(
        &self,
        script: &str,
        holds: Option<&str>,
        kept: &[(&str, &str)],
    ) -> Result<(), String> {
        let d = q(&self.dir());
        let mut keep = String::new();
        for (k, v) in kept {
            keep.push_str(&format!("printf '%s\\n' {} > {d}/kept-{k}\n", q(v)));
        }
        if let Some(s) = holds {
            keep.push_str(&format!("printf '%s\\n' {} > {d}/holds\n", q(s)));
        }
        // The wrapper the supervisor runs: takes the run's lock for its whole life, then
        // writes the exit code last (rename: never a half-written rc). It waits for the
        // lock: the starter's own check below holds it for an instant (seen in the lab:
        // a wrapper that gave up at once never ran, on a loaded host).
        let wrapper = "exec 9>\"$1/lock\"; flock -w 30 9 || exit 75; \
                       bash \"$1/script\" >\"$1/out\" 2>\"$1/err\" </dev/null; \
                       echo $? > \"$1/rc.tmp\"; mv \"$1/rc.tmp\" \"$1/rc\"";
        let unit = format!("dbfleet-run-{}", self.name);
        let start = format!(
            "set -eu\nmkdir -p {RUNS_DIR}\nchmod 0700 {RUNS_DIR}\n\
             mkdir -m 0700 {d} 2>/dev/null || {{ echo 'a run of this name is already on this host' >&2; exit 3; }}\n\
             cat > {d}/script <<'DBFLEET_RUN_SCRIPT'\n{script}DBFLEET_RUN_SCRIPT\n\
             date +%s > {d}/started\necho \"{client} $(date +%s)\" > {d}/lease\n{keep}\
             if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; then\n\
               systemctl reset-failed {unit} >/dev/null 2>&1 || true\n\
               systemd-run --quiet --collect --unit={unit} /bin/bash -c {w} dbfleet-run {d}\n\
             else\n\
               setsid /bin/bash -c {w} dbfleet-run {d} </dev/null >/dev/null 2>&1 9<&- &\n\
             fi\n\
             i=0; while flock -n {d}/lock true 2>/dev/null && [ ! -f {d}/rc ]; do \
               i=$((i+1)); [ $i -gt 300 ] && {{ echo 'the run did not start within 30 s' >&2; exit 1; }}; sleep 0.1; done\n",
            client = self.client,
            w = q(wrapper),
        );
        let o = self
            .host
            .run(&start)
            .await
            .map_err(|e| format!("starting {} on {}: {e}", self.what, self.host.name()))?;
        if o.code != 0 {
            return Err(format!(
                "starting {} on {} failed (exit {}): {}",
                self.what,
                self.host.name(),
                o.code,
                o.stderr.trim()
            ));
        }
        Ok(())
    }

    /// Takes the run over when nobody else drives it: a lease renewed by another client
    /// within [`LEASE_S`] (watched across one lease period when it is fresh) is refused.
    ///
    /// Errors: [`Detached::Driven`]; [`Detached::Disconnected`] when the host does not
    /// answer.
    pub async fn take_over(&self) -> Result<(), Detached> {
        let first = self.state(false).await.map_err(Detached::Disconnected)?;
        let seen = match &first {
            State::None => return Ok(()),
            State::Running(s) | State::Finished { seen: s, .. } | State::Lost(s) => s.clone(),
        };
        if seen.lease_client == self.client || seen.now.saturating_sub(seen.lease_at) >= LEASE_S {
            return Ok(());
        }
        // Fresh: renewed by a live driver, or by one killed a moment ago. Watch it.
        let deadline = Instant::now() + Duration::from_secs(LEASE_S + 1);
        loop {
            tokio::time::sleep(POLL).await;
            let s = match self.state(false).await.map_err(Detached::Disconnected)? {
                State::None => return Ok(()),
                State::Running(s) | State::Finished { seen: s, .. } | State::Lost(s) => s,
            };
            if s.lease_at != seen.lease_at || s.lease_client != seen.lease_client {
                return Err(Detached::Driven {
                    client_age_s: s.now.saturating_sub(s.lease_at),
                });
            }
            if s.now.saturating_sub(s.lease_at) >= LEASE_S || Instant::now() > deadline {
                return Ok(());
            }
        }
    }

    /// Waits for the run to end, renewing the lease and sending [`Event::Progress`] every
    /// [`POLL`]. Returns the run's last state seen (finished with 0) on success.
    ///
    /// Errors: [`Detached::Failed`] for a non-zero exit (the end of its stderr) or a lost
    /// run; [`Detached::Disconnected`] when the host stops answering (the run goes on).
    pub async fn wait(&self, events: &dyn EventSink) -> Result<Seen, Detached> {
        let mut last: Option<(Instant, u64)> = None;
        let mut rate = 0.0f64;
        loop {
            let st = self.state(true).await.map_err(Detached::Disconnected)?;
            match st {
                State::None => {
                    return Err(Detached::Failed(format!(
                        "{} on {}: its state folder is gone",
                        self.what,
                        self.host.name()
                    )));
                }
                State::Finished { rc: 0, seen, .. } => return Ok(seen),
                State::Finished { rc, err, .. } => {
                    return Err(Detached::Failed(format!(
                        "{} on {} failed (exit {rc}): {}",
                        self.what,
                        self.host.name(),
                        super::stderr_tail(&err)
                    )));
                }
                State::Lost(_) => {
                    return Err(Detached::Failed(format!(
                        "{} on {} ended without a result (its supervisor died: the host rebooted, or the process was killed)",
                        self.what,
                        self.host.name()
                    )));
                }
                State::Running(seen) => {
                    let now = Instant::now();
                    if let Some((t, b)) = last {
                        let dt = now.duration_since(t).as_secs_f64();
                        if dt > 0.0 && seen.bytes >= b {
                            let r = (seen.bytes - b) as f64 / dt;
                            // Smoothed: a copy's size moves in bursts (mbstream's chunks).
                            rate = if rate == 0.0 { r } else { 0.7 * rate + 0.3 * r };
                        }
                    }
                    last = Some((now, seen.bytes));
                    events.emit(Event::Progress {
                        host: self.host.name().to_string(),
                        what: self.what.clone(),
                        done_bytes: seen.bytes,
                        total_bytes: self.total_bytes,
                        bytes_per_s: rate as u64,
                        elapsed_s: seen.now.saturating_sub(seen.started),
                    });
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The run's standard output (`out`), whole: what its script printed for the report.
    ///
    /// Errors: the transport's, as text.
    pub async fn output(&self) -> Result<String, String> {
        let o = self
            .host
            .run(&format!("cat {}/out 2>/dev/null; true\n", q(&self.dir())))
            .await
            .map_err(|e| e.to_string())?;
        Ok(o.stdout)
    }

    /// Removes the run's folder (its step is finished or undone).
    ///
    /// Errors: the transport's, as text.
    pub async fn clear(&self) -> Result<(), String> {
        let o = self
            .host
            .run(&format!("rm -rf {}\n", q(&self.dir())))
            .await
            .map_err(|e| e.to_string())?;
        if o.code != 0 {
            return Err(o.stderr);
        }
        Ok(())
    }
}

/// The shell script that reads a run's state (`d`, `target`: quoted paths; `renew`: the
/// lines that renew the lease, or none), for [`parse_state`].
///
/// The lock is read before `rc`, never after: the wrapper writes `rc` while it still holds
/// the lock, so once the lock is free `rc` is final. Read the other way round, a run that
/// ended between the two reads (no `rc` yet, then a free lock) looked lost: seen in CI, a
/// seed copy that had finished was undone as "its supervisor died".
fn state_script(d: &str, target: &str, renew: &str) -> String {
    format!(
        "{renew}d={d}\n\
         if [ ! -d \"$d\" ]; then echo state=none; exit 0; fi\n\
         if flock -n \"$d/lock\" true 2>/dev/null; then s=lost; else s=running; fi\n\
         if [ -f \"$d/rc\" ]; then echo state=finished; echo \"rc=$(cat \"$d/rc\")\"; else echo state=$s; fi\n\
         echo \"now=$(date +%s)\"; echo \"started=$(cat \"$d/started\" 2>/dev/null)\"\n\
         echo \"lease=$(cat \"$d/lease\" 2>/dev/null)\"\n\
         echo \"bytes=$(du -sb {target} 2>/dev/null | cut -f1)\"\n\
         for f in \"$d\"/kept-*; do [ -f \"$f\" ] && echo \"kept=${{f##*/kept-}} $(head -n 1 \"$f\")\"; done\n\
         [ -f \"$d/err\" ] && tail -n 4 \"$d/err\" | cut -c1-300 | sed 's/^/err=/'\n\
         true\n"
    )
}

/// Parses [`Run::state`]'s output.
fn parse_state(out: &str) -> State {
    let mut state = "";
    let mut rc = -1;
    let mut err = String::new();
    let mut s = Seen::default();
    for line in out.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "state" => state = if v == "none" { "none" } else { v },
            "rc" => rc = v.trim().parse().unwrap_or(-1),
            "now" => s.now = v.trim().parse().unwrap_or(0),
            "started" => s.started = v.trim().parse().unwrap_or(0),
            "lease" => {
                let mut w = v.split_whitespace();
                s.lease_client = w.next().unwrap_or("").to_string();
                s.lease_at = w.next().and_then(|x| x.parse().ok()).unwrap_or(0);
            }
            "bytes" => s.bytes = v.trim().parse().unwrap_or(0),
            "kept" => {
                let (name, value) = v.split_once(' ').unwrap_or((v, ""));
                s.kept.push((name.to_string(), value.to_string()));
            }
            "err" => {
                err.push_str(v);
                err.push('\n');
            }
            _ => {}
        }
    }
    match state {
        "running" => State::Running(s),
        "finished" => State::Finished {
            rc,
            err: err.trim_end().to_string(),
            seen: s,
        },
        "lost" => State::Lost(s),
        _ => State::None,
    }
}

impl Seen {
    /// The first line of the kept file `name`, if the run's folder has it.
    pub fn kept(&self, name: &str) -> Option<&str> {
        self.kept
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// "312 MiB of 1.0 GiB (31 %), 45 MB/s, about 15 s left": a progress line for logs.
pub fn describe(done: u64, total: Option<u64>, bytes_per_s: u64) -> String {
    let mib = |b: u64| b as f64 / 1_048_576.0;
    let mut s = match total {
        Some(t) if t > 0 => format!(
            "{:.0} MiB of {:.0} MiB ({:.0} %)",
            mib(done),
            mib(t),
            (done as f64 * 100.0 / t as f64).min(100.0)
        ),
        _ => format!("{:.0} MiB", mib(done)),
    };
    if bytes_per_s > 0 {
        s.push_str(&format!(", {:.1} MB/s", bytes_per_s as f64 / 1e6));
        if let Some(t) = total.filter(|t| *t > done) {
            s.push_str(&format!(
                ", about {} s left",
                (t - done) / bytes_per_s.max(1)
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_with_their_lease_progress_and_kept_files() {
        let out = "state=running\nnow=1000\nstarted=990\nlease=123-abcd 998\nbytes=4096\nkept=aside /var/lib/mysql.dbfleet-replaced-5\n";
        let State::Running(s) = parse_state(out) else {
            panic!("running expected");
        };
        assert_eq!(
            (s.now, s.started, s.lease_at, s.bytes),
            (1000, 990, 998, 4096)
        );
        assert_eq!(s.lease_client, "123-abcd");
        assert_eq!(s.kept("aside"), Some("/var/lib/mysql.dbfleet-replaced-5"));
        let done =
            parse_state("state=finished\nrc=2\nnow=1\nerr=broken pipe\nerr=mbstream: error\n");
        assert!(
            matches!(done, State::Finished { rc: 2, ref err, .. } if err == "broken pipe\nmbstream: error")
        );
        assert!(matches!(parse_state("state=lost\nnow=5\n"), State::Lost(_)));
        assert_eq!(parse_state("state=none\n"), State::None);
        // No answer at all (an empty output) is no run, never a finished one.
        assert_eq!(parse_state(""), State::None);
    }

    #[test]
    fn progress_reads_as_bytes_share_rate_and_time_left() {
        assert_eq!(
            describe(512 * 1_048_576, Some(1024 * 1_048_576), 50_000_000),
            "512 MiB of 1024 MiB (50 %), 50.0 MB/s, about 10 s left"
        );
        assert_eq!(describe(3 * 1_048_576, None, 0), "3 MiB");
    }

    /// The CI failure: the run's wrapper wrote `rc` and let its lock go between the state
    /// script's reads. A `flock` shim ends the run (writes `rc`) just before the lock is
    /// read, which is that interleaving on every run: the state must be finished, not lost.
    #[test]
    fn a_run_that_ends_while_its_state_is_read_is_finished_never_lost() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let (run, bin) = (tmp.path().join("run"), tmp.path().join("bin"));
        std::fs::create_dir_all(&run).expect("run folder");
        std::fs::create_dir_all(&bin).expect("bin folder");
        let real = std::process::Command::new("sh")
            .args(["-c", "command -v flock"])
            .output()
            .expect("sh");
        let shim = format!(
            "#!/bin/sh\necho 0 > {}/rc\nexec {} \"$@\"\n",
            run.display(),
            String::from_utf8_lossy(&real.stdout).trim()
        );
        let flock = bin.join("flock");
        std::fs::write(&flock, shim).expect("shim");
        std::fs::set_permissions(&flock, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dir = q(&run.display().to_string());
        let out = std::process::Command::new("bash")
            .args(["-c", &state_script(&dir, &dir, "")])
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .expect("bash");
        let state = parse_state(&String::from_utf8_lossy(&out.stdout));
        assert!(matches!(state, State::Finished { rc: 0, .. }), "{state:?}");
    }

    #[tokio::test]
    async fn a_lease_renewed_by_another_client_is_refused_and_a_stale_one_taken_over() {
        use crate::transport::fake::Scripted;
        // Renewed between two reads: another dbfleet drives the run.
        let live = Scripted::new("db3").answer(
            "state=",
            &[
                "state=running\nnow=100\nstarted=50\nlease=other 99\nbytes=1\n",
                "state=running\nnow=101\nstarted=50\nlease=other 101\nbytes=2\n",
            ],
        );
        let r = Run::new(&live, "seed", "seeding".into(), "/var/lib/mysql", None);
        assert!(matches!(r.take_over().await, Err(Detached::Driven { .. })));
        // Last renewed LEASE_S ago: its driver is gone.
        let stale = Scripted::new("db3").answer(
            "state=",
            &["state=running\nnow=100\nstarted=50\nlease=other 90\nbytes=1\n"],
        );
        let r = Run::new(&stale, "seed", "seeding".into(), "/var/lib/mysql", None);
        assert_eq!(r.take_over().await, Ok(()));
    }
}
