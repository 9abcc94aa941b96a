//! `dbfleet validate`: the inventory, playbooks and templates checked, every host's files
//! rendered, the graph built; no host contacted. Also prints each backup job's worst-case
//! RPO and the restore time it can expect from its last verify (src/backup/rto.rs).

use crate::engine::{Engine, Options};
use crate::error::{Error, Exit};
use crate::report;

/// `dbfleet validate`.
///
/// Errors: the diagnostics of the inventory, a playbook or a template.
pub fn run(opts: &Options) -> Result<Exit, Error> {
    let e = Engine::load(Options {
        offline: true,
        ..opts.clone()
    })?;
    report::print(&format!(
        "{} is valid: {}, {} on them.\n",
        opts.inventory.display(),
        crate::diagnostics::plural(e.inv.hosts.len(), "host"),
        crate::diagnostics::plural(e.graph.order.len(), "task")
    ));
    // The restore times the last verify measured, as `backup verify` or `status` recorded
    // them here (no host is contacted).
    let measured = crate::backup::rto::load(&crate::backup::rto::record_path(&e.inv.base_dir()));
    for j in &e.inv.backups {
        use crate::backup::rpo::human;
        report::print(&format!(
            "backup job {} ({} on {}): worst-case RPO {}{}{}{}\n",
            j.name,
            j.kind.as_str(),
            j.host,
            human(j.worst_rpo_s),
            j.rpo_s
                .map(|r| format!(", declared {}", human(r)))
                .unwrap_or_default(),
            j.rto_s
                .map(|r| format!("; RTO declared {}", human(r)))
                .unwrap_or_default(),
            j.offsite_worst_rpo_s
                .map(|r| format!("; {} with the backup server lost", human(r)))
                .unwrap_or_default()
        ));
        let rto = crate::backup::rto::expect(j, measured.get(&j.name).copied(), None);
        report::print(&format!("  {}\n", rto.describe()));
    }
    if let Some(o) = &e.inv.backup_offsite {
        use crate::backup::rpo::human;
        report::print(&format!(
            "offsite copy to {} at `{}`{}\n",
            o.repository,
            o.schedule,
            o.rpo_s
                .map(|r| format!(", RPO declared {}", human(r)))
                .unwrap_or_default()
        ));
    }
    // The process ends here: freeing every host's rendered files one by one cost
    // a tenth of a 10,000-host validate.
    std::mem::forget(e);
    Ok(Exit::Ok)
}
