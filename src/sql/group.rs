//! The statements of a MySQL Group Replication member (MySQL manual, chapter 20 "Group
//! Replication", and 29.12.11.16 "The replication_group_members Table"): what a member
//! reads of itself and its group, how a group is founded (bootstrapped) and joined, and the
//! recovery channel's credentials. The facts print as `name: value` lines (the client's
//! `-E` output), read by [`crate::sql::vertical`].

use super::quote;

/// `MEMBER_STATE` of a member that takes part in the group: it applies the group's
/// transactions and, as its primary, takes writes. RECOVERING: joining (distributed
/// recovery); OFFLINE: the plugin is loaded but the member is in no group; ERROR: it left
/// after a failure; UNREACHABLE: seen from another member that cannot reach it.
pub const ONLINE: &str = "ONLINE";
pub const RECOVERING: &str = "RECOVERING";

/// The channel a joining member copies what it missed through (distributed recovery).
pub const RECOVERY_CHANNEL: &str = "group_replication_recovery";

/// One row, `-E` output: `plugin` (ACTIVE when the group_replication plugin is loaded),
/// `member_state` and `member_role` (PRIMARY, SECONDARY; NULL outside a group), `online`
/// and `members` (the members this one reaches, online or recovering, and all it lists,
/// unreachable ones included: a recovering member takes part in the group's agreement, an
/// unreachable one does not, so fewer than a majority reached is a lost quorum; MySQL
/// manual 20.1.4.2 "Failure Detection"), `history` (1 when `gtid_executed` holds a
/// transaction of group `group_name`: the member belonged to the group), `start_on_boot`,
/// `recovery_user` and `recovery_password_sha256` (the recovery channel's stored
/// credentials, the password as its SHA-256 only).
///
/// `group_name` is a UUID ([`crate::tasks::resolve::group_name`]), quoted here.
pub fn facts(group_name: &str) -> String {
    format!(
        "SELECT \
         (SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'group_replication') AS plugin, \
         (SELECT MEMBER_STATE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid) AS member_state, \
         (SELECT MEMBER_ROLE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid) AS member_role, \
         (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_STATE IN ('ONLINE', 'RECOVERING')) AS online, \
         (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_ID <> '') AS members, \
         LOCATE({}, {}) > 0 AS history, \
         (SELECT VARIABLE_VALUE FROM performance_schema.global_variables WHERE VARIABLE_NAME = 'group_replication_start_on_boot') AS start_on_boot, \
         (SELECT User_name FROM mysql.slave_master_info WHERE Channel_name = '{RECOVERY_CHANNEL}') AS recovery_user, \
         (SELECT SHA2(User_password, 256) FROM mysql.slave_master_info WHERE Channel_name = '{RECOVERY_CHANNEL}') AS recovery_password_sha256",
        quote(group_name),
        mysql_gtid_executed!(),
    )
}

/// `PLUGIN_STATUS` of the group_replication plugin: ACTIVE when loaded; no row when not.
pub const PLUGIN_STATUS: &str =
    "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'group_replication'";

/// The recovery channel's stored user and the SHA-256 of its password, one line (`-N -B`
/// output, tab between); no row before they are first set.
pub const STORED_CREDENTIALS: &str = "SELECT IFNULL(User_name, ''), IFNULL(SHA2(User_password, 256), '') FROM mysql.slave_master_info WHERE Channel_name = 'group_replication_recovery'";

/// 1 when the server joins its group by itself when it starts (the persisted value).
pub const START_ON_BOOT: &str = "SELECT @@GLOBAL.group_replication_start_on_boot";

/// When the last completed CLONE into this server ended (Unix seconds); no row when none.
pub const CLONE_COMPLETED: &str = "SELECT UNIX_TIMESTAMP(END_TIME) FROM performance_schema.clone_status WHERE STATE = 'Completed'";

/// 1 when `gtid_executed` holds a transaction of group `group_name` (a UUID, quoted here).
pub fn history(group_name: &str) -> String {
    format!(
        "SELECT LOCATE({}, {}) > 0",
        quote(group_name),
        mysql_gtid_executed!()
    )
}

/// What a whole-group restart compares (`crate::runbooks::group_restart`), `-E` output:
/// `executed` (`gtid_executed`) and `received` (what the group's applier channel received,
/// applied or not: a member's transactions are both; MySQL manual 20.5.2 "Restarting a
/// Group").
pub const TRANSACTIONS: &str = concat!(
    "SELECT ",
    mysql_gtid_executed!(),
    " AS executed, IFNULL((SELECT REPLACE(RECEIVED_TRANSACTION_SET, '\\n', '') FROM performance_schema.replication_connection_status WHERE CHANNEL_NAME = 'group_replication_applier'), '') AS received"
);

/// `MEMBER_STATE`, the count of members reached (online or recovering) and the member
/// count on one line (`-N -B` output, tab
/// between; `NONE` outside a group), for a script's wait loop.
pub const STATE_LINE: &str = "SELECT \
     IFNULL((SELECT MEMBER_STATE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid), 'NONE'), \
     (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_STATE IN ('ONLINE', 'RECOVERING')), \
     (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_ID <> '')";

/// This member's `MEMBER_ROLE` when it is online in a group (PRIMARY, SECONDARY); no row
/// otherwise.
pub const ROLE: &str = "SELECT MEMBER_ROLE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid AND MEMBER_STATE = 'ONLINE'";

/// Founds the group from this member: the only statement that may make a new group, and
/// only with no member of it running (MySQL manual 20.2.1.5 "Bootstrapping the Group").
/// The flag is switched off again at once, so no later start founds a second group.
pub const BOOTSTRAP: &str = "SET GLOBAL group_replication_bootstrap_group = ON;\n\
     START GROUP_REPLICATION;\n\
     SET GLOBAL group_replication_bootstrap_group = OFF;";

/// Joins the group through the seeds of the option file (20.2.1.6 "Adding Instances to
/// the Group").
pub const START: &str = "START GROUP_REPLICATION;";

/// After a lost quorum, on one member of the minority that still runs: a new membership
/// of exactly `addresses` (the survivors' `group_replication_local_address`, this member's
/// included), then the setting cleared again (MySQL manual 20.7.8 "Handling a Network
/// Partition and Loss of Quorum"). The members left out must be down: were they a majority
/// of their own, there would be two groups.
pub fn force_members(addresses: &[String]) -> String {
    format!(
        "SET GLOBAL group_replication_force_members = {};\nSET GLOBAL group_replication_force_members = '';",
        quote(&addresses.join(","))
    )
}

/// Leaves the group (a member in ERROR state leaves before it starts again).
pub const STOP: &str = "STOP GROUP_REPLICATION;";

/// After the member's first join: it joins again by itself whenever its server starts
/// (MySQL Shell persists the same; mysqld-auto.cnf). The option file says OFF so a new
/// member is configured (its recovery credentials) before it first starts into a group.
pub const PERSIST_START_ON_BOOT: &str = "SET PERSIST group_replication_start_on_boot = ON;";

/// The credentials distributed recovery connects to a donor with, stored in the
/// member's connection metadata (20.2.1.3 "User Credentials For Distributed Recovery";
/// not binary-logged, so no errant transaction). The password is in the statement: send
/// it on stdin only.
pub fn recovery_credentials(user: &str, password: &str) -> String {
    format!(
        "CHANGE REPLICATION SOURCE TO SOURCE_USER = {}, SOURCE_PASSWORD = {} FOR CHANNEL '{RECOVERY_CHANNEL}';",
        quote(user),
        quote(password)
    )
}

/// What `dbfleet status` reads of a member, `-E` output: `group_state`, `group_role`,
/// `group_online`, `group_members` (as in [`facts`]) and `group_primary` (the address the
/// primary reports, empty when the member sees none).
pub const STATUS_REPORT: &str = "SELECT \
     IFNULL((SELECT MEMBER_STATE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid), 'NONE') AS group_state, \
     IFNULL((SELECT MEMBER_ROLE FROM performance_schema.replication_group_members WHERE MEMBER_ID = @@GLOBAL.server_uuid), '') AS group_role, \
     (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_STATE IN ('ONLINE', 'RECOVERING')) AS group_online, \
     (SELECT COUNT(*) FROM performance_schema.replication_group_members WHERE MEMBER_ID <> '') AS group_members, \
     IFNULL((SELECT MEMBER_HOST FROM performance_schema.replication_group_members WHERE MEMBER_ROLE = 'PRIMARY' LIMIT 1), '') AS group_primary;";
