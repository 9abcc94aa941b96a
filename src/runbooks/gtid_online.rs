//! GTIDs turned on in a running MySQL cluster (issue 28, must-show 2): a fleet built by
//! hand replicates by binary-log file and position with `gtid_mode` OFF, and dbfleet
//! replicates by GTID. Restarting a server with `gtid_mode = ON` (what dbfleet's option file
//! says) under replicas that still expect anonymous transactions stops their replication,
//! so the first apply runs MySQL's online procedure first (MySQL manual, "Enabling GTID
//! Transactions Online"), live, no restart, no copy, each step on every server of the
//! cluster before the next:
//!
//! 1. `enforce_gtid_consistency = WARN` for `gtid_consistency_warn_seconds`, then the error
//!    log read: a statement GTIDs cannot carry (`CREATE TABLE … SELECT`, a non-transactional
//!    write inside a transaction) refuses the change, everything set back, nothing else
//!    done: the application must change first;
//! 2. `enforce_gtid_consistency = ON`;
//! 3. `gtid_mode = OFF_PERMISSIVE`, then `ON_PERMISSIVE` (new transactions get GTIDs, both
//!    kinds replicate);
//! 4. no anonymous transaction left running anywhere, and every replica has applied the
//!    primary's binary log up to where it stands (`SOURCE_POS_WAIT`);
//! 5. `gtid_mode = ON`, replicas first;
//! 6. a new binary log on every server, waited for on every replica: a replica asking by
//!    GTID later never reaches an anonymous transaction.
//!
//! The replicas then move to auto-position and verified TLS through their `replication`
//! task (which needs the primary's accounts, written after this), and the option file's
//! `gtid_mode = ON` holds at the next restart. A server that is already further along
//! skips the steps it has done; a server is never moved back.

use std::time::{Duration, Instant};

use super::Cluster;
use super::topology::{sql, sql_as};
use crate::sql::gtid_online::{self, Enforce, GtidMode};
use crate::sql::vertical;

/// Seconds each wait of the procedure (anonymous transactions ending, replicas applying)
/// may take before it gives up.
pub const WAIT_S: u32 = 300;

/// One server's GTID state ([`gtid_online::FACTS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GtidFacts {
    pub mode: GtidMode,
    /// `OFF`, `WARN` or `ON`.
    pub enforce: String,
    pub ongoing_anonymous: u64,
}

/// Parses [`gtid_online::FACTS`]' output.
///
/// Errors: a message naming what was not understood.
pub fn parse_facts(host: &str, out: &str) -> Result<GtidFacts, String> {
    let f = vertical(out);
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
    let mode = GtidMode::parse(get("gtid_mode")).ok_or_else(|| {
        format!(
            "{host}: gtid_mode {:?} is not one MySQL knows",
            get("gtid_mode")
        )
    })?;
    Ok(GtidFacts {
        mode,
        enforce: get("enforce_gtid_consistency").to_ascii_uppercase(),
        ongoing_anonymous: get("ongoing_anonymous").parse().unwrap_or(0),
    })
}

/// Reads every member's GTID state; the cluster's members in inventory order.
///
/// Errors: a member without a connection (GTIDs are turned on everywhere or nowhere), or
/// one whose server does not answer.
pub async fn read(c: &Cluster<'_>) -> Result<Vec<(String, GtidFacts)>, String> {
    let mut out = Vec::new();
    for m in &c.members {
        let conn = c
            .conns
            .get(m)
            .ok_or_else(|| format!("{m} does not answer over SSH: GTIDs are turned on on every server of the cluster at once, or not at all"))?;
        let text = sql_as(
            conn.as_ref(),
            c.dialect,
            "reading gtid_mode",
            gtid_online::FACTS,
            "-E",
        )
        .await?;
        out.push((m.clone(), parse_facts(m, &text)?));
    }
    Ok(out)
}

/// Runs the procedure on `primary`'s cluster (see the module's text). `warn_window`: how
/// long `enforce_gtid_consistency` stays WARN while the error log is watched
/// (`gtid_consistency_warn_seconds`).
///
/// Errors: a member that does not answer (nothing changed); statements that violate GTID
/// consistency in the window (everything set back); a server that refuses a step, or a
/// wait that runs out (the servers stay where they got to, each step of which is safe for
/// replication both ways; the next apply goes on from there).
pub async fn enable(c: &Cluster<'_>, primary: &str, warn_window: Duration) -> Result<(), String> {
    let d = c.dialect;
    let facts = read(c).await?;
    if facts.iter().all(|(_, f)| f.mode == GtidMode::On) {
        return Ok(());
    }
    let conn = |h: &str| {
        c.conns
            .get(h)
            .cloned()
            .ok_or_else(|| format!("{h} does not answer over SSH"))
    };
    let replicas: Vec<&str> = c
        .members
        .iter()
        .map(String::as_str)
        .filter(|m| *m != primary)
        .collect();

    // 1. WARN, watched: only where consistency is not enforced yet.
    let off: Vec<&str> = facts
        .iter()
        .filter(|(_, f)| f.enforce == "OFF")
        .map(|(h, _)| h.as_str())
        .collect();
    if !off.is_empty() {
        let mut since = Vec::new();
        for h in &off {
            let out = sql(
                conn(h)?.as_ref(),
                d,
                "enforce_gtid_consistency WARN",
                &gtid_online::set_enforce(Enforce::Warn),
            )
            .await?;
            let t: f64 = out
                .trim()
                .parse()
                .map_err(|_| format!("{h}: no clock in {out:?}"))?;
            since.push((*h, t));
        }
        c.step(
            primary,
            format!(
                "enforce_gtid_consistency WARN on {}: watching the error logs {} s for statements GTIDs cannot carry",
                off.join(", "),
                warn_window.as_secs()
            ),
        );
        tokio::time::sleep(warn_window).await;
        let mut found = Vec::new();
        for (h, t) in &since {
            let out = sql(
                conn(h)?.as_ref(),
                d,
                "reading the error log",
                &gtid_online::unsafe_statements_since(*t),
            )
            .await?;
            let (n, first) = out
                .trim_end_matches('\n')
                .split_once('\t')
                .unwrap_or((out.trim(), ""));
            let n: u64 = n.trim().parse().unwrap_or(0);
            if n > 0 {
                found.push(format!("{h}: {n} (first: {})", first.trim()));
            }
        }
        if !found.is_empty() {
            for h in &off {
                let _ = sql(
                    conn(h)?.as_ref(),
                    d,
                    "enforce_gtid_consistency OFF",
                    &gtid_online::set_enforce(Enforce::Off),
                )
                .await;
            }
            return Err(format!(
                "statements that GTIDs cannot carry ran in the {} s window ({}): with enforce_gtid_consistency ON they would fail. Change them (MySQL manual, \"Restrictions on Replication with GTIDs\"), then apply again; enforce_gtid_consistency is back to OFF and nothing else changed",
                warn_window.as_secs(),
                found.join("; ")
            ));
        }
    }

    // 2. ON everywhere.
    for (h, f) in &facts {
        if f.enforce != "ON" {
            sql(
                conn(h)?.as_ref(),
                d,
                "enforce_gtid_consistency ON",
                &gtid_online::set_enforce(Enforce::On),
            )
            .await?;
        }
    }
    c.step(
        primary,
        "enforce_gtid_consistency ON on every server".into(),
    );

    // 3. The permissive modes, each on every server before the next.
    for mode in [GtidMode::OffPermissive, GtidMode::OnPermissive] {
        for (h, f) in &facts {
            if f.mode < mode {
                sql(
                    conn(h)?.as_ref(),
                    d,
                    "setting gtid_mode",
                    &gtid_online::set_mode(mode),
                )
                .await?;
            }
        }
        c.step(
            primary,
            format!("gtid_mode {} on every server", mode.as_str()),
        );
    }

    // 4. No anonymous transaction running, and every replica caught up by file and position.
    let t0 = Instant::now();
    for (h, _) in &facts {
        loop {
            let out = sql_as(
                conn(h)?.as_ref(),
                d,
                "reading gtid_mode",
                gtid_online::FACTS,
                "-E",
            )
            .await?;
            let f = parse_facts(h, &out)?;
            if f.ongoing_anonymous == 0 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(u64::from(WAIT_S)) {
                return Err(format!(
                    "{h} still runs {} transaction(s) without a GTID after {WAIT_S} s; the servers stay in ON_PERMISSIVE (safe both ways): apply again once they end",
                    f.ongoing_anonymous
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let status = sql(
        conn(primary)?.as_ref(),
        d,
        "reading the binary log position",
        gtid_online::binlog_file_position(d),
    )
    .await?;
    let mut cols = status.lines().next().unwrap_or("").split('\t');
    let file = cols.next().unwrap_or("").trim().to_string();
    let position: u64 = cols
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| {
            format!("{primary} has no binary log position ({status:?}): is its binary log on?")
        })?;
    if !gtid_online::is_binlog_name(&file) {
        return Err(format!(
            "{primary}'s binary log file {file:?} is not a file name"
        ));
    }
    for r in &replicas {
        let waited = sql(
            conn(r)?.as_ref(),
            d,
            "waiting for the primary's position",
            &gtid_online::wait_for_file_position(&file, position, WAIT_S),
        )
        .await?;
        match waited.trim() {
            "NULL" => {
                return Err(format!(
                    "{r} does not apply (its SQL thread is stopped): start its replication, then apply again; the servers stay in ON_PERMISSIVE (safe both ways)"
                ));
            }
            "-1" => {
                return Err(format!(
                    "{r} did not reach {primary}'s {file}:{position} within {WAIT_S} s; the servers stay in ON_PERMISSIVE (safe both ways)"
                ));
            }
            _ => {}
        }
    }
    c.step(primary, format!("every replica applied {primary}'s binary log to {file}:{position}; no transaction without a GTID runs"));

    // 5. ON, replicas first.
    let order: Vec<&str> = replicas.iter().copied().chain([primary]).collect();
    for h in &order {
        sql(
            conn(h)?.as_ref(),
            d,
            "setting gtid_mode",
            &gtid_online::set_mode(GtidMode::On),
        )
        .await?;
    }
    c.step(primary, "gtid_mode ON on every server".into());

    // 6. A binary log without anonymous transactions on every server, applied by every replica.
    for h in &order {
        sql(
            conn(h)?.as_ref(),
            d,
            "starting a new binary log",
            gtid_online::FLUSH_BINARY_LOGS,
        )
        .await?;
    }
    let executed = sql(
        conn(primary)?.as_ref(),
        d,
        "reading gtid_executed",
        d.current_position(),
    )
    .await?;
    for r in &replicas {
        let waited = sql(
            conn(r)?.as_ref(),
            d,
            "waiting for the primary's GTIDs",
            &d.wait_for_position(executed.trim(), WAIT_S),
        )
        .await?;
        if waited.trim() != "0" {
            return Err(format!(
                "{r} did not apply {primary}'s GTIDs within {WAIT_S} s"
            ));
        }
    }
    c.step(primary, "GTIDs on: every server logs them, every replica applied the primary's; replicas move to auto-position next".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_parse_and_an_unknown_mode_is_an_error() {
        let f = parse_facts(
            "db1",
            "*** 1. row ***\ngtid_mode: OFF_PERMISSIVE\nenforce_gtid_consistency: WARN\nongoing_anonymous: 2\n",
        )
        .expect("facts");
        assert_eq!(f.mode, GtidMode::OffPermissive);
        assert_eq!(f.enforce, "WARN");
        assert_eq!(f.ongoing_anonymous, 2);
        assert!(parse_facts("db1", "gtid_mode: SOMETIMES\n").is_err());
    }
}
