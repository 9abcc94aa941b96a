//! The only place that writes to the terminal (uv's `printer.rs` role).
//!
//! [`render_plan`] turns a plan into the human text (`+ ~ - !` lines, coloured unified
//! diffs, `(sensitive)` for secret-bearing files, a summary line); `--json` prints the plan
//! value itself. [`Reporter`] is the engine's [`EventSink`]: a progress bar on stderr
//! (hidden when stderr is not a terminal or with `--quiet`) and one line per applied task.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use owo_colors::OwoColorize;

use crate::events::{Event, EventSink, Outcome};
use crate::plan::Plan;
use crate::tasks::Action;

/// Output settings decided once by the CLI.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
    pub quiet: bool,
}

fn paint(color: bool, s: &str, f: impl Fn(&str) -> String) -> String {
    if color { f(s) } else { s.to_string() }
}

fn action_color(color: bool, a: Action, s: &str) -> String {
    paint(color, s, |s| match a {
        Action::Create => s.green().to_string(),
        Action::Update => s.yellow().to_string(),
        Action::Delete => s.red().to_string(),
        Action::Run => s.cyan().to_string(),
    })
}

/// The plan as an operator reads it.
pub fn render_plan(plan: &Plan, style: Style) -> String {
    let c = style.color;
    let mut out = String::new();
    let width = plan
        .hosts
        .iter()
        .flat_map(|h| h.changes.iter().map(|c| c.task.chars().count()))
        .max()
        .unwrap_or(0);
    for hp in plan.hosts.iter().filter(|h| !h.changes.is_empty()) {
        let _ = writeln!(
            out,
            "{} ({})",
            paint(c, &hp.host, |s| s.bold().to_string()),
            crate::diagnostics::plural(hp.changes.len(), "change")
        );
        for ch in &hp.changes {
            let sym = action_color(c, ch.action, &ch.action.symbol().to_string());
            let mut line = ch.summary.clone();
            if !ch.notified_by.is_empty() {
                line.push_str(&format!(" (notified by {})", ch.notified_by.join(", ")));
            }
            if ch.sensitive {
                line.push_str(" (sensitive)");
            }
            let _ = writeln!(out, "  {sym} {:<width$}  {line}", ch.task);
            for n in &ch.notes {
                let _ = writeln!(out, "      note: {n}");
            }
            if let Some(d) = &ch.diff {
                for l in d.lines() {
                    let l2 = if l.starts_with("+++") || l.starts_with("---") {
                        paint(c, l, |s| s.bold().to_string())
                    } else if l.starts_with('+') {
                        paint(c, l, |s| s.green().to_string())
                    } else if l.starts_with('-') {
                        paint(c, l, |s| s.red().to_string())
                    } else if l.starts_with("@@") {
                        paint(c, l, |s| s.cyan().to_string())
                    } else {
                        l.to_string()
                    };
                    let _ = writeln!(out, "      {l2}");
                }
            }
        }
        out.push('\n');
    }
    out.push_str(&summary_line(plan));
    out.push('\n');
    if !plan.is_empty() {
        out.push_str(&risk_line(plan));
        out.push('\n');
    }
    out
}

/// The plan's changes grouped by risk (issue 28): how many are live, which hosts restart
/// in a rolling restart (one server of a cluster at a time), and each change that destroys
/// something, or `none`: "Risk: 12 live changes; rolling restarts: db3, db2, db1 (one
/// server of a cluster at a time); destructive: none."
pub fn risk_line(plan: &Plan) -> String {
    let mut live = 0;
    let mut rolling: Vec<&str> = Vec::new();
    let mut destructive: Vec<String> = Vec::new();
    for h in &plan.hosts {
        for c in &h.changes {
            if let Some(d) = &c.destroys {
                destructive.push(format!("{} {} ({d})", h.host, c.task));
            } else if c.rolling {
                if !rolling.contains(&h.host.as_str()) {
                    rolling.push(&h.host);
                }
            } else {
                live += 1;
            }
        }
    }
    let rolling = if rolling.is_empty() {
        "none".to_string()
    } else {
        format!("{} (one server of a cluster at a time)", rolling.join(", "))
    };
    let destructive = if destructive.is_empty() {
        "none".to_string()
    } else {
        destructive.join("; ")
    };
    format!(
        "Risk: {}; rolling restarts: {rolling}; destructive: {destructive}.",
        crate::diagnostics::plural(live, "live change")
    )
}

/// "Plan: 3 to create, 1 to update, 0 to delete, 1 to run, on 2 of 5 hosts." or
/// "No changes: 5 hosts match the inventory."
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    if plan.is_empty() {
        return format!(
            "No changes: {} match the inventory.",
            crate::diagnostics::plural(s.hosts, "host")
        );
    }
    format!(
        "Plan: {} to create, {} to update, {} to delete, {} to run, on {} of {}.",
        s.create,
        s.update,
        s.delete,
        s.run,
        s.hosts_changed,
        crate::diagnostics::plural(s.hosts, "host")
    )
}

/// Prints to stdout (the one writer of stdout).
pub fn print(text: &str) {
    // The last line of defence: no secret any redactor knows reaches stdout.
    let text = crate::secrets::redact_everywhere(text);
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

/// Asks `question` on the terminal; only `yes` approves.
///
/// Errors: [`Error::Usage`](crate::error::Error::Usage) when stdin is not a terminal (the
/// caller's `--auto-approve` goes ahead without asking);
/// [`Error::Io`](crate::error::Error::Io) when the answer cannot be read.
pub fn confirm(question: &str) -> Result<bool, crate::error::Error> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(crate::error::Error::Usage(
            "stdin is not a terminal: pass --auto-approve to go ahead without asking".into(),
        ));
    }
    print(&format!("{question} Only 'yes' approves: "));
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| crate::error::Error::io("reading the answer", e))?;
    Ok(line.trim() == "yes")
}

/// The engine's event sink for the terminal.
pub struct Reporter {
    style: Style,
    bar: Mutex<Option<ProgressBar>>,
    /// When the last plain progress line was printed (not on a terminal).
    progress_at: Mutex<Option<std::time::Instant>>,
}

impl Reporter {
    pub fn new(style: Style) -> Reporter {
        Reporter {
            style,
            bar: Mutex::new(None),
            progress_at: Mutex::new(None),
        }
    }
    fn new_bar(&self, len: usize, what: &str) {
        let target = if self.style.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(len as u64), target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(old) = self
            .bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }
    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            f(b);
        }
    }
    fn line(&self, text: String) {
        if self.style.quiet {
            return;
        }
        let guard = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(b) => b.suspend(|| print(&text)),
            None => print(&text),
        }
    }
    /// Clears the progress bar (before printing a plan or an error).
    pub fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

impl EventSink for Reporter {
    fn emit(&self, event: Event) {
        let c = self.style.color;
        match event {
            Event::ProbeStarted { hosts } => self.new_bar(hosts, "reading facts"),
            Event::Probed { host, .. } => self.with_bar(|b| {
                b.inc(1);
                b.set_message(format!("reading facts ({host} done)"));
            }),
            // The error that ends the run lists every unreachable host with its reason.
            Event::Unreachable { .. } => self.with_bar(|b| b.inc(1)),
            Event::ApplyStarted { changes } => self.new_bar(changes, "applying"),
            Event::TaskStarted { host, task, .. } => {
                self.with_bar(|b| b.set_message(format!("{host}: {task}")))
            }
            Event::Step { host, text } => self.line(format!("  {host}: {text}\n")),
            // A terminal gets it on the bar's line; a log a plain line every 10 s.
            Event::Progress {
                host,
                what,
                done_bytes,
                total_bytes,
                bytes_per_s,
                elapsed_s,
            } => {
                let text = format!(
                    "{host}: {what}: {} ({elapsed_s} s)",
                    crate::runbooks::detached::describe(done_bytes, total_bytes, bytes_per_s)
                );
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !self.style.quiet {
                    let mut have = false;
                    self.with_bar(|b| {
                        have = true;
                        b.set_message(text.clone())
                    });
                    if have {
                        return;
                    }
                }
                let mut last = self.progress_at.lock().unwrap_or_else(|e| e.into_inner());
                // The first line two seconds in, once a rate is measured; then every 10 s.
                let now = std::time::Instant::now();
                let at = *last
                    .get_or_insert_with(|| now.checked_sub(Duration::from_secs(8)).unwrap_or(now));
                if at.elapsed() >= Duration::from_secs(10) {
                    *last = Some(std::time::Instant::now());
                    drop(last);
                    self.line(format!("  {text}\n"));
                }
            }
            // The monitor's log (its init script sends stdout to a file): one dated line.
            Event::Monitor { cluster, text } => self.line(format!(
                "{} {cluster}: {text}\n",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
            )),
            Event::TaskFinished {
                host,
                task,
                outcome,
                elapsed,
            } => {
                self.with_bar(|b| b.inc(1));
                let secs = format!("{:.2}s", elapsed.as_secs_f64());
                let text = match outcome {
                    Outcome::Changed => format!(
                        "{host}: {task} … {} ({secs})\n",
                        paint(c, "changed", |s| s.green().to_string())
                    ),
                    Outcome::Failed(e) => format!(
                        "{host}: {task} … {} ({secs}): {e}\n",
                        paint(c, "FAILED", |s| s.red().bold().to_string())
                    ),
                    Outcome::Skipped(r) => format!(
                        "{host}: {task} … {} ({r})\n",
                        paint(c, "skipped", |s| s.yellow().to_string())
                    ),
                };
                self.line(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Change, HostPlan, Plan};

    fn change(task: &str, action: Action, summary: &str) -> Change {
        Change {
            task: task.into(),
            action,
            kind: crate::tasks::Kind::Template,
            target: "/x".into(),
            before_digest: String::new(),
            after_digest: String::new(),
            handler: false,
            pending: false,
            notified_by: vec![],
            summary: summary.into(),
            diff: None,
            sensitive: false,
            notes: vec![],
            destroys: None,
            rolling: false,
        }
    }

    /// A plan of `hosts` (name, changes) of lab.yml, not summarized.
    fn plan_of(hosts: Vec<(&str, Vec<Change>)>) -> Plan {
        Plan {
            format_version: 1,
            dbfleet_version: "0".into(),
            inventory: "lab.yml".into(),
            inventory_digest: String::new(),
            limit: None,
            tags: None,
            hosts: hosts
                .into_iter()
                .map(|(host, changes)| HostPlan {
                    host: host.into(),
                    changes,
                })
                .collect(),
            summary: Default::default(),
        }
    }

    #[test]
    fn the_risk_line_groups_live_rolling_and_destructive_changes() {
        let mut restart = change("restart server", Action::Run, "restart mariadb");
        restart.handler = true;
        restart.rolling = true;
        let mut hardening = change("hardening", Action::Run, "run SQL: hardening");
        hardening.destroys = Some("the test database".into());
        let plan = |db1: Vec<Change>| {
            plan_of(vec![
                ("db1", db1),
                (
                    "db2",
                    vec![
                        change("mysqld.cnf", Action::Update, "update"),
                        restart.clone(),
                    ],
                ),
            ])
        };
        assert_eq!(
            risk_line(&plan(vec![change("a", Action::Create, "create /a")])),
            "Risk: 2 live changes; rolling restarts: db2 (one server of a cluster at a time); destructive: none."
        );
        assert_eq!(
            risk_line(&plan(vec![hardening])),
            "Risk: 1 live change; rolling restarts: db2 (one server of a cluster at a time); destructive: db1 hardening (the test database)."
        );
    }

    #[test]
    fn plan_output() {
        let mut cnf = change(
            "mysqld.cnf",
            Action::Update,
            "update /etc/mysql/mariadb.conf.d/90-dbfleet.cnf (content)",
        );
        cnf.diff = Some(crate::tasks::file::unified_diff(
            "/etc/mysql/mariadb.conf.d/90-dbfleet.cnf",
            b"a\nmax_connections = 999\nc\n",
            b"a\nmax_connections = 200\nc\n",
            false,
        ));
        let mut secret = change(
            "monitor credentials",
            Action::Update,
            "update /etc/dbfleet/monitor.cnf (content)",
        );
        secret.sensitive = true;
        let mut restart = change("restart server", Action::Run, "restart mariadb");
        restart.handler = true;
        restart.notified_by = vec!["mysqld.cnf".into()];
        let mut plan = plan_of(vec![
            ("db1", vec![]),
            (
                "db2",
                vec![
                    cnf,
                    secret,
                    restart,
                    change("base packages", Action::Create, "install cron"),
                ],
            ),
        ]);
        plan.summarize();
        insta::assert_snapshot!(render_plan(
            &plan,
            Style {
                color: false,
                quiet: false
            }
        ));
        plan.hosts[1].changes.clear();
        plan.summarize();
        assert_eq!(
            render_plan(
                &plan,
                Style {
                    color: false,
                    quiet: false
                }
            ),
            "No changes: 2 hosts match the inventory.\n"
        );
    }
}
