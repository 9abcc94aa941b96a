//! `dbfleet monitor` and `dbfleet adopt`: the failover monitor's daemon, as `apply` installs
//! it on hosts with the `monitor` role, and the operator's side of what it did (writing a
//! recorded failover into the inventory). The loop and the lock are
//! `crate::runbooks::monitor`'s; the failover is `crate::runbooks::failover`'s.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::events::{Event, EventSink};
use crate::inventory::Role;
use crate::report::{self, Reporter, Style};
use crate::runbooks::monitor::{self, Settings};

/// `dbfleet monitor HOST`: runs the failover monitor of monitor host HOST from the
/// inventory copy `opts.inventory` in the monitor's home (its folder: `secrets.json`,
/// `ssh_config`). Logs one dated line per new decision on stdout. Runs until stopped.
///
/// Errors: the inventory's; [`Error::Refused`] when HOST is not a monitor host or the
/// fleet's server cannot be failed over by dbfleet.
pub fn run(
    opts: &Options,
    host: &str,
    cluster: Option<String>,
    style: Style,
) -> Result<Exit, Error> {
    let home = opts
        .inventory
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let opts = Options {
        monitor_home: Some(home),
        connect_timeout: Duration::from_secs(2),
        limit: None,
        tags: None,
        ..opts.clone()
    };
    let engine = Engine::load(opts.clone())?;
    crate::runbooks::require_proven(engine.runbook_dialect(), "failover")?;
    if !engine.inv.host(host).is_some_and(|h| h.has(Role::Monitor)) {
        return Err(Error::Refused(format!(
            "{host} is not a host with the monitor role in {}",
            opts.inventory.display()
        )));
    }
    let settings = Settings::of(&engine, host, cluster);
    drop(engine);
    let events: Arc<dyn EventSink> = Arc::new(Journal(Reporter::new(style)));
    crate::engine::runtime()?.block_on(monitor::watch(opts, settings, events))?;
    Ok(Exit::Ok)
}

/// `dbfleet adopt`: writes the failovers the monitors recorded into the inventory (the
/// failover's own edit: the new primary, the old one a replica of it) and the local
/// anti-flap record, showing the diff. Nothing to adopt is not an error.
///
/// Errors: the inventory's, the edit's, I/O errors writing the inventory or the record.
pub fn adopt(opts: &Options) -> Result<Exit, Error> {
    let engine = Engine::load(opts.clone())?;
    let found = crate::engine::runtime()?.block_on(monitor::recorded(&engine));
    if found.is_empty() {
        report::print(&format!(
            "No failover recorded by a monitor is missing from {}.\n",
            opts.inventory.display()
        ));
        return Ok(Exit::Ok);
    }
    for (m, rec) in &found {
        // Each edit reads the file as the previous one left it.
        let (before, after) = monitor::edit_for(&engine, rec)?;
        crate::inventory::edit::write(&opts.inventory, &after)?;
        crate::runbooks::failover::record(&engine, rec)?;
        report::print(&format!(
            "Adopted the failover of cluster {} by the monitor on {m}: {} is the primary, {} a replica of it.\nUpdated {}:\n{}",
            rec.cluster,
            rec.to,
            rec.from,
            opts.inventory.display(),
            crate::inventory::edit::diff(&opts.inventory, &before, &after)
        ));
    }
    Ok(Exit::Ok)
}

/// The monitor's output: each event on stdout (the service's log file), and each decision
/// also to syslog, which the journal reads on systemd hosts (`logger -t dbfleet-monitor`,
/// run without a shell; where no syslog listens it is a no-op).
struct Journal(Reporter);

impl EventSink for Journal {
    fn emit(&self, event: Event) {
        if let Event::Monitor { cluster, text } = &event {
            let child = std::process::Command::new("logger")
                .args(["-t", "dbfleet-monitor", "-p", "daemon.notice", "--"])
                .arg(format!("{cluster}: {text}"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
            if let Ok(mut c) = child {
                // Reaped off the monitor's path: logger returns at once.
                std::thread::spawn(move || c.wait());
            }
        }
        self.0.emit(event);
    }
}
