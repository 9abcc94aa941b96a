//! The crate's error type. Library code returns these values; `main` renders them as miette
//! diagnostics and maps every one to exit code 1 (see `main.rs`).

use miette::Diagnostic;
use thiserror::Error;

use crate::diagnostics::FileProblems;

#[derive(Debug, Error, Diagnostic)]
pub enum Error {
    #[error("{context}: {source}")]
    #[diagnostic(code(dbfleet::io))]
    Io {
        context: String,
        source: std::io::Error,
    },

    /// Problems located in a file (inventory, playbook, template).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<FileProblems>),

    #[error("secret `{name}`: {reason}")]
    #[diagnostic(
        code(dbfleet::secret),
        help(
            "secrets come from `{{env: NAME}}`, `{{file: PATH}}` or `{{generate: LENGTH}}` under `secrets:`"
        )
    )]
    Secret { name: String, reason: String },

    #[error("the task graph has a cycle: {0}")]
    #[diagnostic(
        code(dbfleet::cycle),
        help("check `after:` of the playbooks and `needs:` of the tasks named")
    )]
    Cycle(String),

    #[error("task `{task}` on {host} needs `{needed}` on {on}, which has no such task")]
    #[diagnostic(code(dbfleet::needs))]
    MissingNeed {
        host: String,
        task: String,
        on: String,
        needed: String,
    },

    /// Two tasks (or a task and a handler) of one host share a name: links, plans and
    /// `notify` name tasks, so the name must say which one.
    #[error("two tasks on {host} are named `{task}`")]
    #[diagnostic(
        code(dbfleet::task_name),
        help("rename one (a `loop:` task's name must include `{{{{ item }}}}`)")
    )]
    DuplicateTask { host: String, task: String },

    #[error("--limit names unknown host `{0}`")]
    #[diagnostic(code(dbfleet::limit))]
    UnknownHost(String),

    #[error("--limit `{pattern}` selects no host")]
    #[diagnostic(code(dbfleet::limit))]
    UnknownLimit {
        pattern: String,
        #[help]
        help: Option<String>,
    },

    #[error("--tags names `{tag}`, which no task has")]
    #[diagnostic(code(dbfleet::tags))]
    UnknownTag {
        tag: String,
        #[help]
        help: Option<String>,
    },

    #[error(
        "cannot reach {}:\n{}",
        crate::diagnostics::plural(.0.len(), "host"),
        .0.iter().map(|(h, e)| format!("  - {h}: {e}")).collect::<Vec<_>>().join("\n")
    )]
    #[diagnostic(
        code(dbfleet::unreachable),
        help("check the address, `ssh:` settings and that sshd runs; `ssh -v HOST` shows why")
    )]
    Unreachable(Vec<(String, String)>),

    #[error("probing {host}: {message}")]
    #[diagnostic(code(dbfleet::facts))]
    Facts { host: String, message: String },

    #[error("saved plan {path}: {reason}")]
    #[diagnostic(code(dbfleet::plan_file))]
    PlanFile { path: String, reason: String },

    #[error("the saved plan is stale; nothing was changed:\n{}", details.iter().map(|d| format!("  - {d}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(
        code(dbfleet::stale_plan),
        help("run `dbfleet plan` again and review it")
    )]
    Stale { details: Vec<String> },

    #[error("apply failed: {} ", crate::diagnostics::plural(*.failed, "task"))]
    #[diagnostic(
        code(dbfleet::apply_failed),
        help(
            "the failing tasks are listed above; fix and apply again (it resumes where it stopped)"
        )
    )]
    ApplyFailed { failed: usize },

    #[error(
        "unhealthy: {}",
        .0.iter().map(|(h, p)| format!("\n  - {h}: {}", p.join("; "))).collect::<String>()
    )]
    #[diagnostic(
        code(dbfleet::unhealthy),
        help(
            "`dbfleet plan` shows what dbfleet would change; errant transactions need a rebuild of the replica"
        )
    )]
    Unhealthy(std::collections::BTreeMap<String, Vec<String>>),

    /// An operation dbfleet will not do as things are (the reason says why); nothing
    /// was changed by the refusal itself.
    #[error("{0}")]
    #[diagnostic(code(dbfleet::refused))]
    Refused(String),

    /// A primary that holds its port open and answers nobody, for less than the hang
    /// bound (`monitor_hang_seconds`): a stall, not yet a death (issue 29). The monitor
    /// asks again once the bound is reached; nothing was changed.
    #[error(
        "{primary} holds its port open and answers nobody (hung) for {silent_s:.1} s, under monitor_hang_seconds ({hang_after_s} s): a stall is not a death yet; nothing was changed"
    )]
    #[diagnostic(code(dbfleet::stalled))]
    Stalled {
        primary: String,
        silent_s: f64,
        hang_after_s: f64,
    },

    /// A firewall that would cut off the operator's own SSH session.
    #[error("{0}")]
    #[diagnostic(
        code(dbfleet::refused),
        help("add the address you administer from to firewall.admin_networks")
    )]
    FirewallLockout(String),

    #[error("apply cancelled; nothing was changed")]
    #[diagnostic(code(dbfleet::cancelled))]
    Cancelled,

    #[error("{0}")]
    #[diagnostic(code(dbfleet::usage))]
    Usage(String),
}

/// How a successful run ends (`main.rs` maps it to an exit code, as it maps [`enum@Error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// `plan --detailed-exitcode` found changes.
    ChangesPending,
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
