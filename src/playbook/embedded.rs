//! The repository's `playbooks/` and `templates/`, compiled in. A test checks that every
//! file of those folders is listed here (regenerate with `scripts/embed.sh`).

pub const PLAYBOOKS: &[(&str, &str)] = &[
    (
        "backup-jobs.yml",
        include_str!("../../playbooks/backup-jobs.yml"),
    ),
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
        "backup-authorized-keys.j2",
        include_str!("../../templates/backup-authorized-keys.j2"),
    ),
    (
        "backup-job.sh.j2",
        include_str!("../../templates/backup-job.sh.j2"),
    ),
    (
        "backup-offsite.cron.j2",
        include_str!("../../templates/backup-offsite.cron.j2"),
    ),
    (
        "backup-offsite.env.j2",
        include_str!("../../templates/backup-offsite.env.j2"),
    ),
    (
        "backup-offsite.sh.j2",
        include_str!("../../templates/backup-offsite.sh.j2"),
    ),
    (
        "backup-restic.pass.j2",
        include_str!("../../templates/backup-restic.pass.j2"),
    ),
    (
        "backup-restore.sh.j2",
        include_str!("../../templates/backup-restore.sh.j2"),
    ),
    (
        "backup-ssh-key.j2",
        include_str!("../../templates/backup-ssh-key.j2"),
    ),
    (
        "backup-verify.cron.j2",
        include_str!("../../templates/backup-verify.cron.j2"),
    ),
    (
        "backup-verify.sh.j2",
        include_str!("../../templates/backup-verify.sh.j2"),
    ),
    (
        "backup.cnf.j2",
        include_str!("../../templates/backup.cnf.j2"),
    ),
    (
        "backup.cron.j2",
        include_str!("../../templates/backup.cron.j2"),
    ),
    (
        "firewall.nft.j2",
        include_str!("../../templates/firewall.nft.j2"),
    ),
    (
        "firewall.ufw.j2",
        include_str!("../../templates/firewall.ufw.j2"),
    ),
    (
        "haproxy.cfg.j2",
        include_str!("../../templates/haproxy.cfg.j2"),
    ),
    (
        "keepalived.conf.j2",
        include_str!("../../templates/keepalived.conf.j2"),
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
        "proxy-check.cnf.j2",
        include_str!("../../templates/proxy-check.cnf.j2"),
    ),
    (
        "proxy-check.sh.j2",
        include_str!("../../templates/proxy-check.sh.j2"),
    ),
    (
        "proxysql-admin.sql.j2",
        include_str!("../../templates/proxysql-admin.sql.j2"),
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
