//! Role task lists as data: `playbooks/*.yml`, plus `playbooks/defaults.yml` (every variable
//! an inventory may set, with its default) and `templates/`.
//!
//! The repository's playbooks and templates are compiled into the binary ([`embedded`]);
//! `--playbooks DIR` / `--templates DIR` replace them with an operator's own. A playbook
//! file names the roles it applies to, the playbooks it runs after, its tasks (in order)
//! and its handlers. The task kinds themselves live in `crate::tasks`.

pub mod embedded;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostics::{FileProblems, Problem, span_of};
use crate::error::Error;
use crate::inventory::VarValue;

/// One playbook file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Roles this playbook applies to (`all` for every host).
    pub roles: Vec<String>,
    /// A minijinja expression: of the hosts with those roles, the playbook applies to
    /// those where it is true (every task's own `when` still applies).
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// Playbooks (by file stem) whose tasks must finish on a host before this one's start.
    #[serde(default)]
    pub after: Vec<Spanned<String>>,
    /// Its writes replicate to the cluster's other servers (accounts, databases): in a
    /// replication group, whose primary the group elects, every member holds its tasks and
    /// only the primary writes (`crate::tasks::group::secondary_guard`).
    #[serde(default)]
    pub replicated: bool,
    pub tasks: Vec<TaskSpec>,
    #[serde(default)]
    pub handlers: Vec<TaskSpec>,
}

/// One task as written. Exactly one of the kind fields is set.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub name: Spanned<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Handlers (by name, same playbook set) to run once on this host if this task changed.
    #[serde(default)]
    pub notify: Vec<String>,
    /// A minijinja expression; the task exists on a host only when it is true.
    pub when: Option<String>,
    /// Handlers and package tasks of database hosts only: run on one server of a cluster
    /// at a time, replicas first and the primary last (`crate::runbooks::rolling`). A
    /// package task is held back for the roll only when it upgrades (`~`); a fresh
    /// install runs in its place.
    #[serde(default)]
    pub rolling: bool,
    /// Tasks on other hosts that must finish first.
    #[serde(default)]
    pub needs: Vec<Need>,
    pub package: Option<PackageSpec>,
    pub template: Option<FileSpec>,
    pub copy: Option<FileSpec>,
    pub file: Option<AbsentSpec>,
    pub directory: Option<DirectorySpec>,
    pub service: Option<ServiceSpec>,
    pub sysctl: Option<SysctlSpec>,
    pub command: Option<CommandSpec>,
    pub mysql_user: Option<MysqlUserSpec>,
    pub mysql_database: Option<MysqlDatabaseSpec>,
    pub sql: Option<SqlSpec>,
    pub replication: Option<ReplicationSpec>,
    pub primary: Option<PrimarySpec>,
    pub galera: Option<GaleraSpec>,
    pub group: Option<GroupSpec>,
    /// A minijinja expression giving a list: the task is made once per element, as `item`
    /// (its `name` should then use `item` to stay unique).
    #[serde(rename = "loop")]
    pub loop_over: Option<String>,
}

/// `mysql_user`: an account, its password, TLS requirement and exact grants.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MysqlUserSpec {
    pub name: String,
    #[serde(default = "any_host")]
    pub host: String,
    /// Templated; normally `{{ secret("NAME") }}`.
    pub password: String,
    /// A minijinja expression giving a list of "PRIVILEGES ON OBJECT" strings.
    pub grants: String,
    /// A minijinja expression; false by default.
    #[serde(default = "no")]
    pub require_ssl: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct MysqlDatabaseSpec {
    pub name: String,
    #[serde(default = "utf8mb4")]
    pub charset: String,
    #[serde(default = "utf8mb4_collation")]
    pub collation: String,
}

/// `replication`: this replica replicates from `source` by GTID over verified TLS.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    /// The source's host name (templated; normally `{{ host.source }}`).
    pub source: String,
    pub user: String,
    /// Templated; normally `{{ secret("replication_password") }}`.
    pub password: String,
}

/// `primary`: this host is its cluster's writable primary (promoted by a switchover when
/// it still replicates from another host of the cluster).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PrimarySpec {
    /// A minijinja expression: switch the primary side of semi-sync on.
    #[serde(default = "no")]
    pub semi_sync: String,
}

/// `galera`: this Galera member runs synced in its cluster's primary component, started
/// by a bootstrap (the first member of a new cluster) or a join (`crate::tasks::galera`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct GaleraSpec {}

/// `group`: this Group Replication member runs online in its group, started by a
/// bootstrap (the first member of a new group) or a join (`crate::tasks::group`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The recovery channel's account (a donor's replication account).
    pub user: String,
    /// Templated; normally `{{ secret("replication_password") }}`.
    pub password: String,
}

/// `sql`: statements, run unless the `unless` query returns 1.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SqlSpec {
    pub run: String,
    pub unless: String,
    /// What running the statements removes, in words, for the plan's risk summary
    /// ("destructive: …"); left out when they remove nothing.
    #[serde(default)]
    pub destroys: Option<String>,
}

fn any_host() -> String {
    "%".into()
}
fn no() -> String {
    "false".into()
}
fn utf8mb4() -> String {
    "utf8mb4".into()
}
fn utf8mb4_collation() -> String {
    "utf8mb4_unicode_ci".into()
}

/// A cross-host dependency: `task` on the host(s) named by `on`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Need {
    /// `source` (this replica's source), `primary` (the cluster's primary), `replicas`
    /// (the cluster's replicas), `first_member` / `previous_member` (of a synchronous
    /// cluster, in inventory order), `role:NAME` (every host with that role) or
    /// `host:NAME`.
    pub on: String,
    pub task: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct PackageSpec {
    pub names: Vec<String>,
    /// `present` (default) or `absent`.
    #[serde(default = "present")]
    pub state: String,
    /// `installed` (default), `latest` or a Debian version, templated
    /// (`crate::tasks::package`): the version of every named package.
    pub version: Option<String>,
}

/// `template:` (src is a template under templates/) or `copy:` (src is a file under
/// templates/, copied as is; or inline `content`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub src: Option<String>,
    pub content: Option<String>,
    pub dest: String,
    /// Octal, as a string: "0644".
    #[serde(default = "mode_644")]
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    /// A command that checks the new content before it replaces the file, `%s` standing
    /// for the candidate (e.g. `nft -c -f %s`); when it fails, nothing is replaced.
    pub validate: Option<String>,
}

/// `file: {path, state: absent}` removes a file.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct AbsentSpec {
    pub path: String,
    pub state: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct DirectorySpec {
    pub path: String,
    #[serde(default = "mode_755")]
    pub mode: String,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    /// `started`, `stopped`, or (handlers only) `restarted` / `reloaded`.
    pub state: String,
    pub enabled: Option<bool>,
    /// Without systemd: the service runs when the process in this pid file is alive,
    /// instead of asking `service NAME status` (MariaDB's init script runs `mysqladmin
    /// ping`, about 100 ms of every plan). Like Ansible's `pattern`, a cheaper status.
    pub pidfile: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct SysctlSpec {
    /// The persisted file, e.g. /etc/sysctl.d/60-dbfleet.conf.
    pub file: String,
    /// Key → value (values are templated).
    pub settings: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// Shell text run with `sh` on the host (passed on stdin, never on a command line).
    pub run: String,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip when this shell text exits 0.
    pub unless: Option<String>,
}

fn present() -> String {
    "present".into()
}
fn mode_644() -> String {
    "0644".into()
}
fn mode_755() -> String {
    "0755".into()
}
fn root() -> String {
    "root".into()
}

/// Playbooks, defaults and templates, from the binary or from folders.
pub struct Library {
    /// (file stem, source name, text, parsed), in file-name order.
    pub playbooks: Vec<(String, String, String, Playbook)>,
    pub defaults: crate::inventory::Defaults,
    /// Template name (path under templates/) → text.
    pub templates: BTreeMap<String, String>,
}

impl Library {
    /// Loads playbooks and templates: from the given folders, or the compiled-in ones.
    ///
    /// Errors: [`Error::Io`] for unreadable folders, [`Error::Invalid`] for a playbook that
    /// is not valid YAML of the shape above (located).
    pub fn load(
        playbooks_dir: Option<&Path>,
        templates_dir: Option<&Path>,
    ) -> Result<Library, Error> {
        let pb_files: Vec<(String, String)> = match playbooks_dir {
            Some(d) => read_dir_files(d, &["yml", "yaml"])?,
            None => embedded::PLAYBOOKS
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        };
        let templates: BTreeMap<String, String> = match templates_dir {
            Some(d) => read_dir_files(d, &[])?.into_iter().collect(),
            None => embedded::TEMPLATES
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        };
        let mut defaults = crate::inventory::Defaults::default();
        let mut playbooks = Vec::new();
        let dir_name = playbooks_dir
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "playbooks".into());
        for (file, text) in pb_files {
            let source = format!("{dir_name}/{file}");
            let stem = file
                .trim_end_matches(".yml")
                .trim_end_matches(".yaml")
                .to_string();
            if stem == "defaults" {
                defaults = parse_defaults(&source, &text)?;
                continue;
            }
            let pb: Playbook =
                serde_saphyr::from_str(&text).map_err(|e| located(&source, &text, &e))?;
            playbooks.push((stem, source, text, pb));
        }
        playbooks.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Library {
            playbooks,
            defaults,
            templates,
        })
    }
}

/// One entry of `defaults.yml`: `NAME: {default: VALUE, type: "TYPE"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultEntry {
    default: VarValue,
    #[serde(rename = "type")]
    kind: Spanned<String>,
}

/// Parses `defaults.yml`: each variable's default and type; a type that does not parse,
/// or a default not of its own type, is an error at its file:line:col.
fn parse_defaults(source: &str, text: &str) -> Result<crate::inventory::Defaults, Error> {
    let entries: BTreeMap<String, DefaultEntry> =
        serde_saphyr::from_str(text).map_err(|e| located(source, text, &e))?;
    let mut d = crate::inventory::Defaults::default();
    let mut problems = Vec::new();
    for (name, e) in entries {
        match crate::inventory::vartype::VarType::parse(&e.kind.value) {
            Ok(t) => {
                if let Err(why) = t.check(&e.default) {
                    problems.push(Problem::at(
                        format!("the default of `{name}` is not of its type: {why}"),
                        span_of(&e.kind.referenced, text),
                        "this type",
                    ));
                }
                d.types.insert(name.clone(), t);
            }
            Err(why) => problems.push(Problem::at(
                format!("variable `{name}`: {why}"),
                span_of(&e.kind.referenced, text),
                "here",
            )),
        }
        d.values.insert(name, e.default);
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(Box::new(FileProblems::new(
            source,
            text.to_string(),
            problems,
        ))));
    }
    Ok(d)
}

fn located(source: &str, text: &str, e: &serde_saphyr::Error) -> Error {
    let p = crate::inventory::load::yaml_problem(e, text);
    Error::Invalid(Box::new(FileProblems::new(
        source,
        text.to_string(),
        vec![p],
    )))
}

/// A problem at a task's name in its playbook file.
pub fn task_problem(
    source: &str,
    text: &str,
    name: &Spanned<String>,
    message: String,
    help: Option<String>,
) -> Error {
    let mut p = Problem::at(message, span_of(&name.referenced, text), "this task");
    p.help = help;
    Error::Invalid(Box::new(FileProblems::new(
        source,
        text.to_string(),
        vec![p],
    )))
}

/// The largest playbook or template file read from `--playbooks`/`--templates` (bytes).
pub const MAX_PLAYBOOK_FILE_BYTES: u64 = 1024 * 1024;

/// Files under `dir` (recursively), as (relative path, text), sorted; `exts` filters by
/// extension when non-empty.
fn read_dir_files(dir: &Path, exts: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd =
            std::fs::read_dir(&d).map_err(|e| Error::io(format!("reading {}", d.display()), e))?;
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(format!("reading {}", d.display()), e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if !exts.is_empty() && !exts.contains(&ext) {
                continue;
            }
            let bytes = crate::files::read_regular(&p, MAX_PLAYBOOK_FILE_BYTES).map_err(|e| {
                Error::io(
                    format!("reading {}", p.display()),
                    std::io::Error::other(e.0),
                )
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::io(
                    format!("reading {}", p.display()),
                    std::io::Error::other("not UTF-8 text"),
                )
            })?;
            let rel = p
                .strip_prefix(dir)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((rel, text));
        }
    }
    out.sort();
    Ok(out)
}
