//! The repository's `playbooks/` and `templates/`, compiled in. A test checks that every
//! file of those folders is listed here.

pub const PLAYBOOKS: &[(&str, &str)] = &[
    ("backup.yml", include_str!("../../playbooks/backup.yml")),
    ("common.yml", include_str!("../../playbooks/common.yml")),
    ("database.yml", include_str!("../../playbooks/database.yml")),
    ("defaults.yml", include_str!("../../playbooks/defaults.yml")),
    ("proxy.yml", include_str!("../../playbooks/proxy.yml")),
    (
        "replication.yml",
        include_str!("../../playbooks/replication.yml"),
    ),
    ("users.yml", include_str!("../../playbooks/users.yml")),
];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "limits.conf.j2",
        include_str!("../../templates/limits.conf.j2"),
    ),
    (
        "logrotate-slow.j2",
        include_str!("../../templates/logrotate-slow.j2"),
    ),
    (
        "monitor.cnf.j2",
        include_str!("../../templates/monitor.cnf.j2"),
    ),
    (
        "mysqld.cnf.j2",
        include_str!("../../templates/mysqld.cnf.j2"),
    ),
];
