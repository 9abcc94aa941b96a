//! Task kinds: how each kind of managed resource is probed, compared and changed.
//!
//! Every kind follows one contract (jetporch's query → needs → change): [`Resource::probe`]
//! is a POSIX sh fragment that prints the resource's current state (all of a host's probes
//! run in one SSH round trip, see `crate::facts`); [`Resource::assess`] turns that text into
//! `None` (matched) or an [`Assessment`] (create / update / delete / run, with a diff);
//! [`Resource::apply_script`] is the sh script that makes it so, sent on stdin. One file per
//! kind: `file.rs` (template, copy, absent), `directory.rs`, `package.rs`, `service.rs`,
//! `sysctl.rs`, `command.rs`, `galera.rs` (a Galera member's start), `group.rs` (a Group Replication member's start). [`mod@resolve`] turns playbooks into per-host tasks.

pub mod command;
pub mod directory;
pub mod file;
pub mod galera;
pub mod group;
pub mod mysql;
pub mod package;
pub mod primary;
pub mod replication;
pub mod resolve;
#[cfg(test)]
pub(crate) mod sandbox;
pub mod service;
pub mod sysctl;

use serde::{Deserialize, Serialize};

pub use resolve::{Resolved, resolve};

/// What a change does, shown as Terraform shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// `+` a resource that does not exist yet.
    Create,
    /// `~` a resource that exists but differs.
    Update,
    /// `-` a resource to remove.
    Delete,
    /// `!` a command, restart or other action that runs.
    Run,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Run => '!',
        }
    }
}

/// A resource that differs from what the playbooks want.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub action: Action,
    /// One line: what will happen ("install mariadb-server", "mode 0644 → 0600").
    pub summary: String,
    /// Unified diff of file contents; `None` when not a file or when sensitive.
    pub diff: Option<String>,
    /// Canonical current state; only its digest leaves the process.
    pub before: String,
    /// Extra facts for the operator ("live value not settable: /proc/sys is read-only").
    pub notes: Vec<String>,
}

/// A task's kind, as plans, plan files and JSON name it (`"template"`, `"replication"`…):
/// the playbook's task kinds, with a file task named by how its content is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A file rendered from a template.
    Template,
    /// A file copied from the playbooks.
    Copy,
    /// A file that must be absent.
    File,
    Directory,
    Package,
    Service,
    Sysctl,
    Command,
    MysqlUser,
    MysqlDatabase,
    Sql,
    Replication,
    Primary,
    Galera,
    Group,
}

impl Kind {
    /// The name plans show.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Template => "template",
            Kind::Copy => "copy",
            Kind::File => "file",
            Kind::Directory => "directory",
            Kind::Package => "package",
            Kind::Service => "service",
            Kind::Sysctl => "sysctl",
            Kind::Command => "command",
            Kind::MysqlUser => "mysql_user",
            Kind::MysqlDatabase => "mysql_database",
            Kind::Sql => "sql",
            Kind::Replication => "replication",
            Kind::Primary => "primary",
            Kind::Galera => "galera",
            Kind::Group => "group",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One managed resource of one host, fully rendered.
#[derive(Debug, Clone)]
pub enum Resource {
    File(file::FileRes),
    Absent(file::AbsentRes),
    Directory(directory::DirRes),
    Packages(package::PkgRes),
    Service(service::SvcRes),
    Sysctl(sysctl::SysctlRes),
    Command(command::CmdRes),
    User(mysql::UserRes),
    Database(mysql::DatabaseRes),
    Sql(mysql::SqlRes),
    /// A runbook across the replica and its source: applied by `crate::runbooks`.
    Replication(replication::ReplicationRes),
    /// The declared primary: writable, or promoted by the switchover runbook.
    Primary(primary::PrimaryRes),
    /// A Galera member: synced in its cluster's primary component (bootstrap or join).
    Galera(galera::GaleraRes),
    /// A Group Replication member: online in its group (bootstrap or join).
    Group(group::GroupRes),
}

impl Resource {
    /// The resource's kind, as plans and JSON name it.
    pub fn kind(&self) -> Kind {
        match self {
            Resource::File(f) => f.kind,
            Resource::Absent(_) => Kind::File,
            Resource::Directory(_) => Kind::Directory,
            Resource::Packages(_) => Kind::Package,
            Resource::Service(_) => Kind::Service,
            Resource::Sysctl(_) => Kind::Sysctl,
            Resource::Command(_) => Kind::Command,
            Resource::User(_) => Kind::MysqlUser,
            Resource::Database(_) => Kind::MysqlDatabase,
            Resource::Sql(_) => Kind::Sql,
            Resource::Replication(_) => Kind::Replication,
            Resource::Primary(_) => Kind::Primary,
            Resource::Galera(_) => Kind::Galera,
            Resource::Group(_) => Kind::Group,
        }
    }
    /// What the resource is on the host: a path, package list, service name.
    pub fn target(&self) -> String {
        match self {
            Resource::File(f) => f.path.clone(),
            Resource::Absent(a) => a.path.clone(),
            Resource::Directory(d) => d.path.clone(),
            Resource::Packages(p) => p.names.join(" "),
            Resource::Service(s) => s.name.clone(),
            Resource::Sysctl(s) => s.file.path.clone(),
            Resource::Command(c) => c.name.clone(),
            Resource::User(u) => format!("{}@{}", u.name, u.host),
            Resource::Database(d) => d.name.clone(),
            Resource::Sql(q) => q.name.clone(),
            Resource::Replication(r) => format!("from {}", r.source_name),
            Resource::Primary(p) => format!("cluster {}", p.cluster),
            Resource::Galera(g) => format!("cluster {}", g.cluster),
            Resource::Group(g) => format!("group {}", g.cluster),
        }
    }
    /// True when the desired state holds a secret (its content is never shown or saved).
    pub fn sensitive(&self) -> bool {
        // A user's state holds its password hash.
        // A user's state holds its password hash; replication's its source password.
        matches!(self, Resource::File(f) if f.sensitive)
            || matches!(
                self,
                Resource::User(_) | Resource::Replication(_) | Resource::Group(_)
            )
    }
    /// The sh fragment printing the current state.
    pub fn probe(&self) -> String {
        match self {
            Resource::File(f) => file::probe(&f.path, !f.sensitive),
            Resource::Absent(a) => file::probe(&a.path, false),
            Resource::Directory(d) => d.probe(),
            Resource::Packages(p) => p.probe(),
            Resource::Service(s) => s.probe(),
            Resource::Sysctl(s) => s.probe(),
            Resource::Command(c) => c.probe(),
            Resource::User(u) => u.probe(),
            Resource::Database(d) => d.probe(),
            Resource::Sql(q) => q.probe(),
            Resource::Replication(r) => r.probe(),
            Resource::Primary(p) => p.probe(),
            Resource::Galera(g) => g.probe(),
            Resource::Group(g) => g.probe(),
        }
    }
    /// A probe that is SQL only: the dialect and its statements, run with `--force` so a
    /// failing statement does not hide the rest. [`crate::facts`] runs all of a host's in
    /// one client call (one client start instead of one per task).
    pub fn sql_probe(&self) -> Option<(crate::sql::Dialect, String)> {
        match self {
            Resource::User(u) => Some((u.dialect, u.probe_sql())),
            Resource::Database(d) => Some((d.dialect, d.probe_sql())),
            Resource::Sql(q) => Some((q.dialect, q.probe_sql())),
            _ => None,
        }
    }
    /// Compares the probe's output with the desired state.
    ///
    /// Errors: a message when the probe output is not what the probe prints.
    pub fn assess(&self, facts: &str) -> Result<Option<Assessment>, String> {
        match self {
            Resource::File(f) => f.assess(facts),
            Resource::Absent(a) => a.assess(facts),
            Resource::Directory(d) => d.assess(facts),
            Resource::Packages(p) => p.assess(facts),
            Resource::Service(s) => s.assess(facts),
            Resource::Sysctl(s) => s.assess(facts),
            Resource::Command(c) => Ok(c.assess(facts)),
            Resource::User(u) => u.assess(facts),
            Resource::Database(d) => d.assess(facts),
            Resource::Sql(q) => Ok(q.assess(facts)),
            Resource::Replication(r) => r.assess(facts),
            Resource::Primary(p) => p.assess(facts),
            Resource::Galera(g) => g.assess(facts),
            Resource::Group(g) => g.assess(facts),
        }
    }
    /// What applying the change `a` (this resource's assessment of `facts`) destroys, in
    /// words, when it destroys anything: a file or a package removed, what a `sql` task's
    /// playbook says it removes (`destroys:`, the hardening's accounts and test database),
    /// the databases a replica bootstrap would replace. None for every other change. The
    /// plan's summary groups changes by it (issue 28: "destructive (none)").
    pub fn destroys(&self, facts: &str, a: &Assessment) -> Option<String> {
        match self {
            Resource::Absent(f) if a.action == Action::Delete => {
                Some(format!("deletes {}", f.path))
            }
            Resource::Packages(_) if a.action == Action::Delete => Some(a.summary.clone()),
            Resource::Sql(q) => q.destroys.clone(),
            Resource::Replication(r) => match r.mode(facts) {
                Some(replication::Mode::Bootstrap { user_databases }) if user_databases > 0 => {
                    Some(format!(
                        "would replace the replica's {user_databases} database(s) by a copy of its source (apply refuses)"
                    ))
                }
                _ => None,
            },
            _ => None,
        }
    }
    /// Canonical desired state (compared with the plan's `after` digest on apply).
    pub fn desired(&self) -> String {
        match self {
            Resource::File(f) => f.state(),
            Resource::Absent(_) => "absent".into(),
            Resource::Directory(d) => d.state(),
            Resource::Packages(p) => p.state(),
            Resource::Service(s) => s.state(),
            Resource::Sysctl(s) => s.state(),
            Resource::Command(c) => c.state(),
            Resource::User(u) => u.state(),
            Resource::Database(d) => d.state(),
            Resource::Sql(q) => q.state(),
            Resource::Replication(r) => r.state(),
            Resource::Primary(p) => p.state(),
            Resource::Galera(g) => g.state(),
            Resource::Group(g) => g.state(),
        }
    }
    /// The script that changes the resource. `guard` is the sha256 (or `absent`) the
    /// target file must still have (exit 3 = stale, nothing changed); `before_change` runs
    /// after that check and before anything changes (the notify markers).
    pub fn apply_script(&self, guard: Option<&str>, before_change: &str) -> String {
        match self {
            Resource::File(f) => f.apply_script(guard, before_change),
            Resource::Absent(a) => a.apply_script(guard, before_change),
            Resource::Sysctl(s) => s.apply_script(guard, before_change),
            Resource::Directory(d) => format!("{before_change}{}", d.apply_script()),
            Resource::Packages(p) => format!("{before_change}{}", p.apply_script()),
            Resource::Service(s) => format!("{before_change}{}", s.apply_script()),
            Resource::Command(c) => format!("{before_change}{}", c.apply_script()),
            Resource::User(u) => format!("{before_change}{}", u.apply_script()),
            Resource::Database(d) => format!("{before_change}{}", d.apply_script()),
            Resource::Sql(q) => format!("{before_change}{}", q.apply_script()),
            // A switchover goes to its runbook (the executor decides); this makes it writable.
            Resource::Primary(p) => format!("{before_change}{}", p.apply_script()),
            Resource::Galera(g) => format!("{before_change}{}", g.apply_script()),
            Resource::Group(g) => format!("{before_change}{}", g.apply_script()),
            // Never run as one script: the executor hands it to the runbook.
            Resource::Replication(_) => {
                format!("{before_change}echo 'replication is applied by its runbook' >&2; exit 1\n")
            }
        }
    }
    /// For files: the content sha256 in the probe output (`absent` when missing), the
    /// value a saved plan's guard checks.
    pub fn guard_value(&self, facts: &str) -> Option<String> {
        match self {
            Resource::File(_) | Resource::Absent(_) => {
                Some(file::parse(facts).ok()?.sha_or_absent())
            }
            Resource::Sysctl(s) => Some(file::parse(s.file_facts(facts)).ok()?.sha_or_absent()),
            _ => None,
        }
    }
}

/// Where a notification waits on the host until its handler has run. A task that
/// notifies drops the marker *before* it changes anything and the handler removes it after
/// it succeeded, so an apply killed in between leaves the restart pending for the next plan
/// instead of losing it.
pub const PENDING_DIR: &str = "/var/lib/dbfleet/pending";

/// The marker file of handler `name`.
pub fn pending_marker(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{PENDING_DIR}/{safe}")
}

/// Prints `pending` when handler `name` waits from an earlier, interrupted apply.
pub fn pending_probe(name: &str) -> String {
    format!(
        "[ -e {} ] && echo pending || echo none",
        q(&pending_marker(name))
    )
}

/// Script prefix recording that `handlers` are notified.
pub fn mark_pending(handlers: &[String]) -> String {
    if handlers.is_empty() {
        return String::new();
    }
    let markers: Vec<String> = handlers.iter().map(|h| q(&pending_marker(h))).collect();
    format!("mkdir -p {PENDING_DIR} && touch {}\n", markers.join(" "))
}

/// Script suffix clearing handler `name`'s marker.
pub fn clear_pending(name: &str) -> String {
    format!("rm -f {}\n", q(&pending_marker(name)))
}

/// Where detached runs keep their state on a host, one folder each
/// (`crate::runbooks::detached`).
pub const RUNS_DIR: &str = "/var/lib/dbfleet/runs";

/// The detached run of a point-in-time restore on a primary (`crate::runbooks::restore`):
/// while its folder is under [`RUNS_DIR`], the primary task leaves the server read-only.
pub const RESTORE_RUN: &str = "restore";

/// The restore run's folder on a host: [`RUNS_DIR`]/[`RESTORE_RUN`].
pub fn restore_run_dir() -> String {
    format!("{RUNS_DIR}/{RESTORE_RUN}")
}

/// Where a restore keeps its files on the host while it runs (removed after): the dump,
/// the binary logs. Its size is the restore's progress.
pub const RESTORE_WORK: &str = "/var/lib/dbfleet/restore";

pub use crate::transport::STATE_DIR;

/// Exit code of a script that could not take the host's run lock.
pub const LOCKED_EXIT: i32 = 75;

/// Wraps a script so dbfleet's scripts on a host run one at a time (`flock` on
/// [`STATE_DIR`]). An apply killed by SIGKILL leaves its in-flight remote script running
/// (the orphaned ssh client still carries it); the next run's probe waits for it instead of
/// reading a state that is still moving. The body runs in a subshell with the lock's fd
/// closed, so a daemon it starts (`service mariadb start`) does not inherit the lock and
/// hold it forever. Probes do not create the folder (a plan writes nothing): where it is
/// missing, no dbfleet script has ever run there.
pub fn locked(create: bool, body: &str) -> String {
    let mk = if create {
        format!("mkdir -p {STATE_DIR}\n")
    } else {
        String::new()
    };
    format!(
        "{mk}if [ -d {STATE_DIR} ]; then exec 9< {STATE_DIR}; flock -w 600 9 || {{ echo 'another dbfleet run holds {STATE_DIR} (waited 600 s)' >&2; exit {LOCKED_EXIT}; }}; fi\n(\n{body}\n) 9<&-\n"
    )
}

pub use crate::escape::{option_file_value, q};

/// Shell functions a synchronous cluster member's scripts share (`galera`, `group`):
/// `running` (the server's pid in `pidfile` is alive) and `listening` (the addresses of
/// `peers`, already quoted and space-separated, that accept a connection on `port` within a
/// second each, printed on one line).
pub fn member_functions(pidfile: &str, peers: &str, port: u16) -> String {
    format!(
        "running() {{ [ -s {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; }}\n\
         listening() {{ l=; for a in {peers}; do timeout 1 bash -c \"exec 3<>/dev/tcp/$a/{port}\" 2>/dev/null && l=\"$l $a\"; done; echo $l; }}\n",
        pid = q(pidfile),
    )
}

/// Parses an octal mode string ("0644", "644", "0o600").
pub fn parse_mode(s: &str) -> Option<u32> {
    let t = s.trim().trim_start_matches("0o");
    if t.is_empty() || t.len() > 4 {
        return None;
    }
    u32::from_str_radix(t, 8).ok().filter(|m| *m <= 0o7777)
}
