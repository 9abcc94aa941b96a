//! The statements that read a Galera member's state (MariaDB KB "Galera Cluster Status
//! Variables"): whether wsrep is on, the member's local state, its component's status and
//! size. One query prints them as `name: value` lines (the client's `-E` output), read by
//! [`crate::sql::vertical`].

/// `wsrep_local_state` of a member that is synced with its cluster (4; 1 joining, 2
/// donor/desynced, 3 joined: MariaDB KB "wsrep_local_state").
pub const SYNCED: &str = "4";

/// `wsrep_cluster_status` of a member in the primary component (the majority that takes
/// writes); `Non-Primary` or `Disconnected` otherwise.
pub const PRIMARY_COMPONENT: &str = "Primary";

/// One row, `-E` output: `wsrep_on` (1 or 0), `local_state` (0-4), `local_state_comment`,
/// `cluster_status`, `cluster_size`, `last_committed` (the seqno of the last write set this
/// member committed: how far it has come, compared when a primary component is re-formed).
/// On a server without wsrep the status variables are absent and their fields empty.
pub const STATUS: &str = "SELECT @@GLOBAL.wsrep_on AS wsrep_on, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LAST_COMMITTED') AS last_committed, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE') AS local_state, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT') AS local_state_comment, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS') AS cluster_status, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE') AS cluster_size";

/// Makes this member's non-primary component the primary component: after a lost quorum,
/// on the most advanced member still running, once the others are known to be down
/// (MariaDB KB "Galera Cluster Recovery": "pc.bootstrap"). The members of its component
/// go with it; a member that was in fact running a primary component of its own would make
/// a second one, which is why dbfleet asks for `--force-quorum`.
pub const FORCE_PRIMARY: &str = "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'";

/// 1 when the running server has wsrep on (a Galera member), 0 when it runs alone (a
/// server Debian's package started before dbfleet's option file was there).
pub const WSREP_ON: &str = "SELECT @@GLOBAL.wsrep_on";

/// `local_state` and `cluster_status` on one line (`-N -B` output, tab between), for a
/// script's wait loop.
pub const STATE_LINE: &str = "SELECT \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE'), \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS')";

/// What `dbfleet status` reads of a member, `-E` output: `galera_cluster_size`,
/// `galera_state` (`wsrep_local_state_comment`: Synced, Donor/Desynced, Joining...),
/// `galera_cluster_status` (Primary, non-Primary, Disconnected) and
/// `galera_flow_control_paused` (the fraction of time replication was paused by flow
/// control since the last read, 0.0-1.0: MariaDB KB "wsrep_flow_control_paused").
pub const STATUS_REPORT: &str = "SELECT \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_SIZE') AS galera_cluster_size, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT') AS galera_state, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_CLUSTER_STATUS') AS galera_cluster_status, \
     (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_FLOW_CONTROL_PAUSED') AS galera_flow_control_paused;";
