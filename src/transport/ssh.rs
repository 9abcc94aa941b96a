//! SSH through the `openssh` crate: the system `ssh` with a ControlMaster socket, so
//! ~/.ssh/config, the agent and ProxyJump work as they do for the operator, and each host
//! costs one handshake however many scripts run. The control folder lives under the
//! system temp dir to keep the socket path short (108-byte limit; ansible/ansible#16840).

use openssh::Stdio;
use std::time::Duration;

use openssh::{KnownHosts, Session, SessionBuilder};
use tokio::io::AsyncWriteExt;

use super::{Output, TransportError};
use crate::inventory::{Host, HostKeyPolicy};

/// An open connection to one host.
pub struct SshHost {
    pub name: String,
    session: Session,
}

impl SshHost {
    /// Opens the master connection (one handshake).
    ///
    /// Errors: [`TransportError::Connect`] with ssh's own words (host key mismatch,
    /// refused, timeout) when it fails.
    pub async fn connect(
        host: &Host,
        policy: HostKeyPolicy,
        timeout: Duration,
    ) -> Result<SshHost, TransportError> {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(match policy {
            HostKeyPolicy::Strict => KnownHosts::Strict,
            HostKeyPolicy::AcceptNew => KnownHosts::Add,
        });
        b.connect_timeout(timeout);
        b.server_alive_interval(Duration::from_secs(15));
        b.control_directory(std::env::temp_dir());
        if let Some(u) = &host.ssh.user {
            b.user(u.clone());
        }
        if let Some(p) = host.ssh.port {
            b.port(p);
        }
        if let Some(k) = &host.ssh.identity {
            b.keyfile(k);
        }
        if let Some(c) = &host.ssh.config {
            b.config_file(c);
        }
        let t0 = std::time::Instant::now();
        let session = b
            .connect(&host.address)
            .await
            .map_err(|e| TransportError::Connect(flatten(&e)))?;
        tracing::debug!(host = %host.name, address = %host.address, ms = t0.elapsed().as_millis() as u64, "connected");
        Ok(SshHost {
            name: host.name.clone(),
            session,
        })
    }

    /// Runs `script` with `sh -s` on the host, the script on stdin.
    ///
    /// Errors: [`TransportError::Run`] when the connection fails (not when the script exits
    /// non-zero: that is in [`Output::code`]).
    pub async fn run(&self, script: &str) -> Result<Output, TransportError> {
        let t0 = std::time::Instant::now();
        let mut child = self
            .session
            .command("sh")
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| TransportError::Run(flatten(&e)))?;
        if let Some(mut stdin) = child.stdin().take() {
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|e| TransportError::Run(e.to_string()))?;
            stdin
                .shutdown()
                .await
                .map_err(|e| TransportError::Run(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| TransportError::Run(flatten(&e)))?;
        // Sizes and timing only: a script may carry a secret-bearing file's content.
        tracing::debug!(host = %self.name, script_bytes = script.len(), code = out.status.code().unwrap_or(-1), stdout_bytes = out.stdout.len(), ms = t0.elapsed().as_millis() as u64, "ran script");
        Ok(Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Streams the stdout of `from_cmd` on this host into the stdin of `to_cmd` on `to`,
    /// through this process (the hosts need no access to each other). Both commands are
    /// plain argv: they must carry no secret. Returns the bytes streamed.
    ///
    /// Errors: [`TransportError::Run`] when either side fails, with both sides' stderr tail.
    pub async fn pipe_to(
        &self,
        from_cmd: &str,
        to: &SshHost,
        to_cmd: &str,
    ) -> Result<u64, TransportError> {
        let run = |e: &dyn std::error::Error| TransportError::Run(flatten(e));
        let mut src = self
            .session
            .command("sh")
            .arg("-c")
            .arg(from_cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| run(&e))?;
        let mut dst = to
            .session
            .command("sh")
            .arg("-c")
            .arg(to_cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| run(&e))?;
        let (Some(mut out), Some(mut inp)) = (src.stdout().take(), dst.stdin().take()) else {
            return Err(TransportError::Run("no pipe to stream through".into()));
        };
        let copied = tokio::io::copy(&mut out, &mut inp).await;
        let _ = inp.shutdown().await;
        drop(inp);
        let (so, dout) = (
            src.wait_with_output().await.map_err(|e| run(&e))?,
            dst.wait_with_output().await.map_err(|e| run(&e))?,
        );
        let tail = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ")
        };
        if !so.status.success() {
            return Err(TransportError::Run(format!(
                "{} on {}: {}",
                from_cmd,
                self.name,
                tail(&so.stderr)
            )));
        }
        if !dout.status.success() {
            return Err(TransportError::Run(format!(
                "{} on {}: {}",
                to_cmd,
                to.name,
                tail(&dout.stderr)
            )));
        }
        copied
            .map_err(|e| TransportError::Run(format!("streaming {} → {}: {e}", self.name, to.name)))
    }

    /// Starts `client` (the `mariadb`/`mysql` command line, carrying no secret) as one
    /// database session that stays open between calls of [`SqlSession::query`]: what a
    /// lock such as FLUSH TABLES WITH READ LOCK needs, since it lasts as long as its session.
    ///
    /// The session holds the host's dbfleet lock (`flock` on `/var/lib/dbfleet`, as every
    /// task script takes it) for its whole life: a restart of the same server planned in
    /// the same apply waits until the session is over, instead of killing the server under
    /// a switchover's freeze (seen when a semi-sync change and a switchover were applied
    /// together: the undo then failed and the cluster had no writer). A session started
    /// while such a script runs waits for it.
    ///
    /// Errors: [`TransportError::Run`] when the remote command cannot start.
    pub async fn sql_session(&self, client: &str) -> Result<SqlSession<'_>, TransportError> {
        self.sql_session_with(client, true).await
    }

    /// [`SshHost::sql_session`], holding the host's dbfleet lock only when `host_lock`:
    /// the failover monitor's long-lived lock sessions (`crate::runbooks::monitor`) must
    /// not stop every apply on the host.
    ///
    /// Errors: [`TransportError::Run`] when the remote command cannot start.
    pub async fn sql_session_with(
        &self,
        client: &str,
        host_lock: bool,
    ) -> Result<SqlSession<'_>, TransportError> {
        let command = if host_lock {
            format!(
                "if [ -d {d} ]; then exec flock -w 600 {d} {client} -N -B -n; else exec {client} -N -B -n; fi",
                d = super::STATE_DIR
            )
        } else {
            format!("exec {client} -N -B -n")
        };
        let mut child = self
            .session
            .command("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| TransportError::Run(flatten(&e)))?;
        let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
            return Err(TransportError::Run("no pipes to the SQL session".into()));
        };
        Ok(SqlSession {
            host: self.name.clone(),
            child: Some(child),
            stdin,
            stdout: tokio::io::BufReader::new(stdout),
            marks: 0,
        })
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// One open database session on a host (see [`SshHost::sql_session`]). The client stops
/// at the first failing statement; the session is then gone, and with it any lock it held.
pub struct SqlSession<'s> {
    host: String,
    child: Option<openssh::Child<&'s Session>>,
    stdin: openssh::ChildStdin,
    stdout: tokio::io::BufReader<openssh::ChildStdout>,
    marks: u32,
}

impl SqlSession<'_> {
    /// Sends `statements` and returns their output rows (tab-separated), in order.
    ///
    /// Errors: [`TransportError::Run`] with the server's error when a statement failed
    /// (the session is closed then).
    pub async fn query(&mut self, statements: &str) -> Result<Vec<String>, TransportError> {
        use tokio::io::AsyncBufReadExt;
        self.marks += 1;
        let mark = format!("dbfleet-mark-{}", self.marks);
        let text = format!("{statements}\nSELECT '{mark}';\n");
        let sent = async {
            self.stdin.write_all(text.as_bytes()).await?;
            self.stdin.flush().await
        }
        .await;
        let mut rows = Vec::new();
        if sent.is_ok() {
            let mut line = String::new();
            loop {
                line.clear();
                match self.stdout.read_line(&mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let l = line.trim_end_matches('\n');
                        if l == mark {
                            return Ok(rows);
                        }
                        rows.push(l.to_string());
                    }
                }
            }
        }
        // The client exited: its stderr says why.
        let why = match self.child.take() {
            Some(c) => match c.wait_with_output().await {
                Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                Err(e) => flatten(&e),
            },
            None => "the session was already closed".into(),
        };
        Err(TransportError::Run(format!(
            "SQL session on {}: {why}",
            self.host
        )))
    }

    /// Ends the session (and releases whatever it held).
    pub async fn close(self) {
        let SqlSession {
            mut stdin, child, ..
        } = self;
        // The pipe closes when dropped (shutdown alone does not close it): EOF ends the client.
        let _ = stdin.shutdown().await;
        drop(stdin);
        if let Some(c) = child {
            let _ = c.wait().await;
        }
    }
}

/// An error with its sources, on one line.
fn flatten(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(m.trim());
        }
        cur = c.source();
    }
    s
}

/// The known_hosts lines this machine's ssh holds for `host` (its address, or
/// `[address]:port`), from the files `ssh -G` names for it under the inventory's ssh
/// settings; comment lines left out.
///
/// Errors: no line found (the host key was never verified here), or ssh/ssh-keygen
/// failing to run.
pub fn known_host_lines(host: &Host) -> Result<String, String> {
    use std::process::Command;
    let mut g = Command::new("ssh");
    g.arg("-G");
    if let Some(c) = &host.ssh.config {
        g.arg("-F").arg(c);
    }
    if let Some(p) = host.ssh.port {
        g.arg("-p").arg(p.to_string());
    }
    let o = g
        .arg(&host.address)
        .output()
        .map_err(|e| format!("running ssh -G: {e}"))?;
    let cfg = String::from_utf8_lossy(&o.stdout);
    let home = std::env::var("HOME").unwrap_or_default();
    let files: Vec<String> = cfg
        .lines()
        .filter_map(|l| {
            l.strip_prefix("userknownhostsfile ")
                .or_else(|| l.strip_prefix("globalknownhostsfile "))
        })
        .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .map(|f| match f.strip_prefix("~/") {
            Some(rest) => format!("{home}/{rest}"),
            None => f,
        })
        .collect();
    let name = match host.ssh.port {
        Some(p) if p != 22 => format!("[{}]:{p}", host.address),
        _ => host.address.clone(),
    };
    let mut lines = String::new();
    for f in files {
        if !std::path::Path::new(&f).exists() {
            continue;
        }
        let o = Command::new("ssh-keygen")
            .args(["-F", &name, "-f", &f])
            .output()
            .map_err(|e| format!("running ssh-keygen -F: {e}"))?;
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            if !l.starts_with('#') && !l.trim().is_empty() {
                lines.push_str(l);
                lines.push('\n');
            }
        }
    }
    if lines.is_empty() {
        return Err(format!(
            "no known host key for {} ({name}) on this machine: the failover monitors pin the keys the operator verified; connect to it once (e.g. `dbfleet plan`)",
            host.name
        ));
    }
    Ok(lines)
}
