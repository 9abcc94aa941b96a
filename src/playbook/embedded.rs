//! The repository's `playbooks/` and `templates/`, compiled in. A test checks that every
//! file of those folders is listed here.

pub const PLAYBOOKS: &[(&str, &str)] = &[
    ("backup.yml", include_str!("../../playbooks/backup.yml")),
    ("common.yml", include_str!("../../playbooks/common.yml")),
    ("database.yml", include_str!("../../playbooks/database.yml")),
    ("defaults.yml", include_str!("../../playbooks/defaults.yml")),
    ("firewall.yml", include_str!("../../playbooks/firewall.yml")),
    (
        "monitoring.yml",
        include_str!("../../playbooks/monitoring.yml"),
    ),
    ("proxy.yml", include_str!("../../playbooks/proxy.yml")),
    (
        "replication.yml",
        include_str!("../../playbooks/replication.yml"),
    ),
    ("users.yml", include_str!("../../playbooks/users.yml")),
];

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "firewall.nft.j2",
        include_str!("../../templates/firewall.nft.j2"),
    ),
    (
        "firewall.ufw.j2",
        include_str!("../../templates/firewall.ufw.j2"),
    ),
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
    (
        "replication-check.cron.j2",
        include_str!("../../templates/replication-check.cron.j2"),
    ),
    (
        "replication-check.sh.j2",
        include_str!("../../templates/replication-check.sh.j2"),
    ),
];
