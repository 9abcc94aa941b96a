//! Backups: cron jobs and retention, point-in-time restore, disaster rebuild, the offsite copy.

use std::process::Command;
use std::time::{Duration, Instant};

use super::support::*;

/// `app.NAME (id, v)` made afresh on db1 with rows 1..=n whose `v` is `label`, and waited
/// for on db2 (where the backup jobs run).
fn fresh_table(name: &str, label: &str, n: u32) {
    sql(
        "db1",
        &format!(
            "USE app; DROP TABLE IF EXISTS app.{name}; CREATE TABLE app.{name} (id INT PRIMARY KEY, v VARCHAR(40)); \
             INSERT INTO app.{name} SELECT seq, '{label}' FROM seq_1_to_{n}"
        ),
    );
    eventually(
        "db2",
        &format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app' AND table_name = '{name}'"
        ),
        "1",
    );
    eventually(
        "db2",
        &format!("SELECT COUNT(*) FROM app.{name}"),
        &n.to_string(),
    );
}

/// The age in whole days before `now` of each snapshot in `restic snapshots --json`, sorted.
fn snapshot_ages(json: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<i64> {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    let mut a: Vec<i64> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().expect("time"))
                .expect("rfc3339");
            (now - t.with_timezone(&chrono::Utc)).num_hours() / 24
        })
        .collect();
    a.sort();
    a
}

/// Starts the lab's offsite object storage (Garage at .41, outside the inventory) and returns
/// its S3 key as environment variables for dbfleet (`LAB_S3_ACCESS_KEY`,
/// `LAB_S3_SECRET_KEY`), read from the 0600 file lab/lab.sh writes.
fn offsite_storage() -> Vec<(String, String)> {
    let o = bounded("1800", "bash")
        .arg(repo().join("lab/lab.sh"))
        .arg("offsite")
        .output()
        .expect("lab/lab.sh offsite");
    assert!(
        o.status.success(),
        "lab/lab.sh offsite failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(repo().join(".lab/offsite.env"))
        .expect("offsite.env")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn backup_jobs_run_from_cron_files_to_the_backup_server_prune_to_retention_and_leak_no_secret() {
    let _lab = converged();
    // Rows for the restores to check, replicated to db2 (the jobs' host) before they run.
    fresh_table("verified", "checked", 1000);
    // Must-show 1: the cron files on the hosts are exactly the rendered ones.
    let rendered = tempfile::tempdir().expect("tempdir");
    let o = dbfleet(&[
        "plan",
        "--offline",
        "--out-dir",
        &rendered.path().display().to_string(),
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    for h in ["db1", "db2", "proxy1"] {
        let want =
            std::fs::read_to_string(rendered.path().join(h).join("etc/cron.d/dbfleet-backup"))
                .expect("rendered cron file");
        assert_eq!(
            on(h, "cat /etc/cron.d/dbfleet-backup"),
            want.trim_end(),
            "{h}"
        );
    }
    assert!(
        !rendered
            .path()
            .join("db3/etc/cron.d/dbfleet-backup")
            .exists()
    );
    // The schedules are Tokyo's (`backups.timezone`): each cron line asks the guard, which
    // reads the host's own zone data. 13:00 UTC is 22:00 in Tokyo, app-logical's time.
    let cron = on("db2", "cat /etc/cron.d/dbfleet-backup");
    assert!(
        cron.contains("0 * * * * root /usr/local/lib/dbfleet/cron-tz Asia/Tokyo '0 22 * * *' && /usr/local/lib/dbfleet/backup-app-logical run"),
        "{cron}"
    );
    let guard = |epoch: &str| {
        on(
            "db2",
            &format!(
                "/usr/local/lib/dbfleet/cron-tz Asia/Tokyo '0 22 * * *' {epoch} && echo run || echo wait"
            ),
        )
    };
    assert_eq!(guard("1796389200"), "run", "2026-12-04 13:00 UTC");
    assert_eq!(guard("1796410800"), "wait", "2026-12-04 19:00 UTC");
    let want = std::fs::read_to_string(
        rendered
            .path()
            .join("backup1/etc/cron.d/dbfleet-backup-verify"),
    )
    .expect("rendered verify cron file");
    assert_eq!(
        on("backup1", "cat /etc/cron.d/dbfleet-backup-verify"),
        want.trim_end()
    );
    // Each job, triggered, lands on backup1.
    for (job, mode) in [
        ("app-logical", "run"),
        ("app-physical", "full"),
        ("app-physical", "incremental"),
        ("app-physical", "differential"),
        ("app-physical", "incremental"),
        // A second incremental the same day: `keep_daily` keeps one backup a day, yet
        // the newest chain is kept whole (its chain tag).
        ("app-physical", "incremental"),
        ("binlogs", "run"),
        ("proxy-config", "run"),
    ] {
        let host = match job {
            "binlogs" => "db1",
            "proxy-config" => "proxy1",
            _ => "db2",
        };
        // The hosts share this machine's clock; restic keeps whole seconds.
        let started = chrono::Utc::now() - chrono::Duration::seconds(1);
        let r = dbfleet(&["backup", "run", job, "--mode", mode]);
        assert_eq!(r.code, 0, "{job} {mode}: {}", r.all());
        assert!(
            r.stdout.contains(&format!("{job} {mode}: ok")),
            "{}",
            r.all()
        );
        // This run's snapshot is in the repository on backup1 (read back through SFTP).
        let snaps: serde_json::Value = serde_json::from_str(&on(
            host,
            &format!("/usr/local/lib/dbfleet/backup-{job} snapshots"),
        ))
        .expect("json");
        let fresh = snaps.as_array().expect("array").iter().any(|s| {
            let t = chrono::DateTime::parse_from_rfc3339(s["time"].as_str().unwrap_or(""));
            t.is_ok_and(|t| t >= started)
                && s["tags"]
                    .as_array()
                    .is_some_and(|tags| tags.iter().any(|t| t == mode))
        });
        assert!(fresh, "{job} {mode}: no snapshot of this run: {snaps}");
        assert_ne!(
            on(
                "backup1",
                &format!("ls /srv/dbfleet-backups/{job}/snapshots | wc -l")
            ),
            "0"
        );
    }
    let l = dbfleet(&["backup", "list", "--json"]);
    assert_eq!(l.code, 0, "{}", l.all());
    let list: serde_json::Value = serde_json::from_str(&l.stdout).expect("json");
    assert_eq!(list["format_version"], 1);
    let physical = list["jobs"]
        .as_array()
        .expect("array")
        .iter()
        .find(|j| j["job"] == "app-physical")
        .expect("app-physical listed");
    let tags: Vec<String> = physical["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .flat_map(|s| s["tags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    for mode in ["full", "differential", "incremental"] {
        assert!(tags.contains(&mode.to_string()), "{mode}: {tags:?}");
    }
    assert_eq!(physical["within_rpo"], true);
    // A second apply changes nothing.
    assert_empty_plan();

    // Must-show 3: `backup verify` restores every job's newest backup on backup1 and
    // checks it; the logical one against the manifest db2 recorded at backup time.
    let v = dbfleet(&["backup", "verify"]);
    assert_eq!(v.code, 0, "{}", v.all());
    for want in [
        "rows readable, row counts and checksums match the manifest",
        "app-logical ok: ",
        "app-physical ok: full ",
        "binlogs ok: ",
        "proxy-config ok: ",
    ] {
        assert!(v.stdout.contains(want), "`{want}` in:\n{}", v.all());
    }
    // The restore chain: the full, the differential (which holds the first incremental's
    // changes), the two incrementals after it (both kept by retention).
    assert!(
        v.stdout.contains(" + differential ")
            && v.stdout
                .contains(" + 2 incremental(s) prepared and started"),
        "{}",
        v.all()
    );
    assert!(
        on(
            "backup1",
            "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_app-logical.prom"
        )
        .contains("dbfleet_backup_verify_ok{job=\"app-logical\"} 1")
    );
    // db2's SQL thread, paused for the manifest and dump, runs again.
    assert_eq!(slave_status("db2")["Slave_SQL_Running"], "Yes");
    rto_from_the_last_verify(&v.stdout);
    // A pack file of the logical job truncated on backup1: verify fails, naming the job
    // and the pack.
    let pack = on(
        "backup1",
        "find /srv/dbfleet-backups/app-logical/data -type f -printf '%s %p\\n' | sort -n | tail -n 1 | cut -d' ' -f2",
    );
    let pack_id = pack.rsplit('/').next().expect("pack id").to_string();
    on(
        "backup1",
        &format!("cp -p {pack} /tmp/pack.good && truncate -s 100 {pack}"),
    );
    let bad = dbfleet(&["backup", "verify", "app-logical"]);
    on("backup1", &format!("mv /tmp/pack.good {pack}"));
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stdout.contains(&format!(
            "app-logical FAILED: restic check: pack {pack_id}: unexpected file size"
        )),
        "{}",
        bad.all()
    );
    assert!(
        bad.stderr
            .contains("backup verification failed: app-logical"),
        "{}",
        bad.all()
    );
    assert!(
        on(
            "backup1",
            "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_app-logical.prom"
        )
        .contains("dbfleet_backup_verify_ok{job=\"app-logical\"} 0")
    );

    // Must-show 2: retention. proxy-config keeps 14 days (relative to its newest backup):
    // backups dated 40, 20, 15, 13, 7 and 1 days back are pruned to those within 14 days.
    let now = chrono::Utc::now();
    for days in [40i64, 20, 15, 13, 7, 1] {
        let at = (now - chrono::Duration::days(days)).format("%Y-%m-%d %H:%M:%S");
        on(
            "proxy1",
            &format!("DBFLEET_BACKUP_TIME='{at}' /usr/local/lib/dbfleet/backup-proxy-config run"),
        );
    }
    let ages = snapshot_ages(
        &on(
            "proxy1",
            "/usr/local/lib/dbfleet/backup-proxy-config snapshots",
        ),
        now,
    );
    // Kept: 13, 7 and 1 days back, and today's runs; pruned: 15, 20 and 40 days back.
    let dated: Vec<i64> = ages.iter().copied().filter(|a| *a > 0).collect();
    assert_eq!(
        dated,
        vec![1, 7, 13],
        "kept exactly the backups within 14 days: {ages:?}"
    );
    assert!(ages.contains(&0));

    // Must-show 8: no secret in any cron file, script, log or output.
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("inventories/.dbfleet/secrets.json")).expect("secrets"),
    )
    .expect("json");
    let mut seen = String::new();
    for h in ["db1", "db2", "proxy1"] {
        seen.push_str(&on(
            h,
            "cat /etc/cron.d/dbfleet-backup /usr/local/lib/dbfleet/backup-* /var/log/dbfleet/backup-*.log",
        ));
    }
    seen.push_str(&on(
        "backup1",
        "cat /etc/cron.d/dbfleet-backup-verify /usr/local/lib/dbfleet/backup-verify /var/log/dbfleet/backup-verify.log",
    ));
    seen.push_str(&l.all());
    seen.push_str(&v.all());
    seen.push_str(&bad.all());
    for (name, value) in store.as_object().expect("object") {
        let v = value.as_str().expect("string");
        assert!(
            !seen.contains(v),
            "secret {name} leaked into backup files or output"
        );
    }
}

#[test]
fn restore_to_a_point_in_time_brings_back_a_dropped_table_with_every_row_before_it() {
    let _lab = converged();
    // A restore run left by an earlier, failed run of this test (its end unreported) would
    // be attached to instead of planning afresh: waited for, then removed.
    on(
        "db1",
        "d=/var/lib/dbfleet/runs/restore; if [ -d $d ]; then flock -w 120 $d/lock true; rm -rf $d; fi",
    );
    // 100 rows, then the logical backup (on db2), then 50 more rows.
    fresh_table("pitr", "before the backup", 100);
    sql(
        "db1",
        "DROP TABLE IF EXISTS app.pitr_big; CREATE TABLE app.pitr_big (id INT PRIMARY KEY, pad VARBINARY(1000))",
    );
    let b = dbfleet(&["backup", "run", "app-logical"]);
    assert_eq!(b.code, 0, "{}", b.all());
    sql(
        "db1",
        "USE app; INSERT INTO app.pitr SELECT seq, 'after the backup' FROM seq_101_to_150",
    );
    // One transaction of 20 MB of rows: replayed as one BINLOG statement of about 27 MB,
    // over the server's default packet limit (16 MiB); the restore raises it.
    sql(
        "db1",
        "USE app; INSERT INTO app.pitr_big SELECT seq, RANDOM_BYTES(1000) FROM seq_1_to_20000",
    );
    let big_sum = sql("db1", "CHECKSUM TABLE app.pitr_big");
    let packet = sql("db1", "SELECT @@GLOBAL.max_allowed_packet");
    // The time to restore to, whole seconds apart from what comes before and after it.
    std::thread::sleep(Duration::from_millis(2100));
    let to = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    sql(
        "db1",
        "INSERT INTO app.pitr VALUES (151, 'after the time'); DROP TABLE app.pitr",
    );
    // Without the binary logs archived past that time, restore refuses and says why
    // (unless cron's own binlog run, every 30 minutes, fell in these seconds).
    let early = dbfleet(&["restore", "db1", "--to", &to, "--auto-approve"]);
    if early.code != 0 {
        assert!(
            early.stderr.contains("binlog archive") || early.stderr.contains("binlogs"),
            "{}",
            early.all()
        );
    }
    let r = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // Shown as a plan first; --dry-run changes nothing.
    let gtid_before = sql("db1", "SELECT @@gtid_binlog_pos");
    let p = dbfleet(&["restore", "db1", "--to", &to, "--dry-run"]);
    assert_eq!(p.code, 0, "{}", p.all());
    for step in [
        "Restore db1 (primary of cluster lab) to",
        "read_only ON on db1",
        "drop and reload app from app-logical backup",
        "replay the archived binary logs of binlogs",
        "read_only OFF on db1",
    ] {
        assert!(p.stdout.contains(step), "`{step}` in:\n{}", p.all());
    }
    assert_eq!(sql("db1", "SELECT @@gtid_binlog_pos"), gtid_before);
    // Without a terminal, approval is required.
    let no = dbfleet(&["restore", "db1", "--to", &to]);
    assert_eq!(no.code, 1, "{}", no.all());
    assert!(no.stderr.contains("--auto-approve"), "{}", no.all());

    // Saved, then the binlog archive moves on: the saved plan is stale and changes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = dir.path().join("restore-plan.json").display().to_string();
    let o = dbfleet(&["restore", "db1", "--to", &to, "--out", &saved]);
    assert_eq!(o.code, 0, "{}", o.all());
    let r = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let stale = dbfleet(&["apply", &saved]);
    assert_eq!(stale.code, 1, "{}", stale.all());
    assert!(
        stale.stderr.contains("stale") && stale.stderr.contains("binlogs newest run was"),
        "{}",
        stale.all()
    );
    assert_eq!(sql("db1", "SELECT @@gtid_binlog_pos"), gtid_before);
    let o = dbfleet(&["restore", "db1", "--to", &to, "--out", &saved]);
    assert_eq!(o.code, 0, "{}", o.all());
    let a = dbfleet(&["apply", &saved]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(a.stdout.contains("restored db1 in"), "{}", a.all());
    // Every row inserted before the time is back, none after it, on the primary and, by
    // replication, on both replicas; the primary takes writes again.
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'pitr'",
            "1",
        );
        eventually(
            h,
            "SELECT CONCAT(COUNT(*), ' ', MAX(id)) FROM app.pitr",
            "150 150",
        );
    }
    assert_eq!(sql("db1", "SELECT @@read_only"), "0");
    assert_eq!(
        sql(
            "db1",
            "SELECT COUNT(*) FROM app.pitr WHERE v = 'after the backup'"
        ),
        "50"
    );
    assert_eq!(sql("db1", "CHECKSUM TABLE app.pitr_big"), big_sum);
    assert_eq!(
        sql("db1", "SELECT @@GLOBAL.max_allowed_packet"),
        packet,
        "the packet limit is put back"
    );
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.pitr"),
        sql("db1", "CHECKSUM TABLE app.pitr")
    );
    // A quiet database: nothing logged between the newest dump and the binlog archive's
    // end. No transaction follows the dump's position, so nothing is replayed and the restore
    // succeeds (mariadb-binlog --start-position alone fails there: "Binary logs never
    // reached expected GTID state"; bench/backup.sh's restore failed so).
    let b = dbfleet(&["backup", "run", "app-logical"]);
    assert_eq!(b.code, 0, "{}", b.all());
    std::thread::sleep(Duration::from_millis(2100));
    let quiet = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let r = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // A row after the archive's end: the restore's reload of the dump takes it away.
    sql(
        "db1",
        "INSERT INTO app.pitr VALUES (152, 'after the quiet time')",
    );
    // The restore runs on db1 as a detached run (issue 26). A statement holding app.pitr
    // open keeps it at its start (its DROP DATABASE waits for it) long enough to see that
    // a second command is refused while the first drives the run, that one asking for
    // another time is refused naming the run's, that a killed dbfleet leaves the run
    // going, that `plan` then refuses to make db1 writable, and that the same command
    // started again attaches to the run and reports its end.
    let run_dir = "/var/lib/dbfleet/runs/restore";
    let exists = || on("db1", &format!("test -d {run_dir} && echo yes || echo no")) == "yes";
    let mut holder = Command::new("docker")
        .args([
            "exec",
            "lab-db1",
            "mariadb",
            "-N",
            "-e",
            "SELECT COUNT(*), SLEEP(40) FROM app.pitr",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker exec");
    std::thread::sleep(Duration::from_millis(500));
    let mut first = Spawned::new(&["restore", "db1", "--to", &quiet, "--auto-approve"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exists() {
        assert!(
            Instant::now() < deadline,
            "no restore run on db1 after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let second = dbfleet(&["restore", "db1", "--to", &quiet, "--auto-approve"]);
    assert_refused(&second, "another dbfleet drives the restore run on db1");
    let other = dbfleet(&["restore", "db1", "--auto-approve"]);
    assert_refused(&other, &format!("does `restore db1 --to {quiet}`"));
    first.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        on(
            "db1",
            &format!("flock -n {run_dir}/lock true && echo free || echo held")
        ),
        "held",
        "the run goes on with no dbfleet"
    );
    let st = dbfleet(&["status"]);
    assert_refused(&st, "point-in-time restore run running");
    // read_only is the restore's first statement (it may wait behind the held table too).
    sql("db1", "SET GLOBAL read_only = ON");
    let p = dbfleet(&["plan"]);
    assert_refused(&p, "a point-in-time restore runs on this host");
    let a = dbfleet(&["restore", "db1", "--to", &quiet, "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout.contains("attach to the restore run"),
        "{}",
        a.all()
    );
    assert!(a.stdout.contains("nothing to replay"), "{}", a.all());
    assert!(
        !exists(),
        "the run's folder is removed once its end is reported"
    );
    let _ = holder.wait();
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT CONCAT(COUNT(*), ' ', MAX(id)) FROM app.pitr",
            "150 150",
        );
    }
    let s = status_when_healthy(None);
    assert_eq!(
        s.code,
        0,
        "the cluster is healthy after the restore:\n{}",
        s.all()
    );
    assert_empty_plan();
}

#[test]
#[ignore = "long drill, run by bench/drills.sh, not by CI (docs/src/tests.md)"]
fn rebuild_brings_back_a_lost_replica_then_a_lost_cluster_from_backups_alone() {
    let _lab = converged();
    // Seed 003's week: a full backup, an incremental, a differential (the changes since
    // the full: it holds the incremental's too), an incremental on the differential; rows
    // written after each, the last ones replicated but not backed up. The restore chain is
    // the full, the differential and the last incremental; a differential taken on the
    // wrong base fails its prepare, one skipped loses rows.
    fresh_table("rebuilt", "before the full", 1000);
    for (mode, from, to) in [
        ("full", 1001, 1500),
        ("incremental", 2001, 2100),
        ("differential", 2101, 2120),
        ("incremental", 2121, 2130),
    ] {
        let b = dbfleet(&["backup", "run", "app-physical", "--mode", mode]);
        assert_eq!(b.code, 0, "{}", b.all());
        sql(
            "db1",
            &format!(
                "USE app; INSERT INTO app.rebuilt SELECT seq, 'after the {mode}' FROM seq_{from}_to_{to}"
            ),
        );
    }

    // Must-show 5: db3 destroyed, a bare host in its place. Its data must come from the
    // backups: the primary cannot make a copy (mariadb-backup taken away on db1).
    reset(&["db3"]);
    on("db1", "chmod -x /usr/bin/mariadb-backup");
    let r = dbfleet(&["rebuild", "db3", "--auto-approve"]);
    on("db1", "chmod +x /usr/bin/mariadb-backup");
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("seeded from app-physical's newest backup chain"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("Rebuilt db3: measured RTO ") && r.stdout.contains("declared RTO 1h"),
        "{}",
        r.all()
    );
    let st = slave_status("db3");
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str()
        ),
        ("Yes", "Yes")
    );
    eventually("db3", "SELECT COUNT(*) FROM app.rebuilt", "1630");
    assert_eq!(
        sql("db3", "CHECKSUM TABLE app.rebuilt"),
        sql("db1", "CHECKSUM TABLE app.rebuilt")
    );
    assert_empty_plan();

    // A host that was not lost is refused, and so is the primary alone.
    let not_bare = dbfleet(&["rebuild", "db3", "--auto-approve"]);
    assert_eq!(not_bare.code, 1, "{}", not_bare.all());
    assert!(
        not_bare.stderr.contains("still holds a data folder"),
        "{}",
        not_bare.all()
    );
    let alone = dbfleet(&["rebuild", "db1", "--auto-approve"]);
    assert_eq!(alone.code, 1, "{}", alone.all());
    assert!(alone.stderr.contains("fail over"), "{}", alone.all());

    // Must-show 6: rows archived by the binlog job, then rows written after its run; then
    // every database host is lost.
    sql(
        "db1",
        "USE app; INSERT INTO app.rebuilt SELECT seq, 'archived' FROM seq_3001_to_3050",
    );
    let b = dbfleet(&["backup", "run", "binlogs"]);
    assert_eq!(b.code, 0, "{}", b.all());
    sql(
        "db1",
        "USE app; INSERT INTO app.rebuilt SELECT seq, 'lost' FROM seq_4001_to_4005",
    );
    assert_eq!(rows("db1"), "1685 5");
    reset(&["db1", "db2", "db3"]);
    let all = dbfleet(&["rebuild", "db1", "db2", "db3", "--auto-approve"]);
    assert_eq!(all.code, 0, "{}", all.all());
    // Everything up to the binlog archive's run is back on all three, nothing after it;
    // the bound on the loss is printed beside the RPO.
    for h in DB_HOSTS {
        eventually(
            h,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'rebuilt'",
            "1",
        );
        eventually(h, "SELECT COUNT(*) FROM app.rebuilt", "1680");
        assert_eq!(rows(h), "1680 0", "{h}");
    }
    assert_eq!(
        sql("db2", "CHECKSUM TABLE app.rebuilt"),
        sql("db1", "CHECKSUM TABLE app.rebuilt")
    );
    let line = all
        .stdout
        .lines()
        .find(|l| l.starts_with("Recovered up to "))
        .unwrap_or_else(|| panic!("no RPO line:\n{}", all.all()));
    assert!(
        line.contains("declared RPO 1d") && !line.contains("over the RPO"),
        "{line}"
    );
    assert!(
        all.stdout.contains("Rebuilt db1, db2, db3: measured RTO "),
        "{}",
        all.all()
    );
    assert_eq!(sql("db1", "SELECT @@read_only"), "0");
    let s = status_when_healthy(None);
    assert_eq!(s.code, 0, "{}", s.all());
    assert_empty_plan();
}

#[test]
#[ignore = "long drill, run by bench/drills.sh, not by CI (docs/src/tests.md)"]
fn offsite_copy_to_s3_keeps_its_retention_verifies_and_restores_a_rebuilt_backup_server() {
    let mut lab = converged();
    let env = offsite_storage();
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Seed 003's bucket: every job copied daily at 03:30, kept 10 days there.
    let inv = lab_variant(
        dir.path(),
        "offsite.yml",
        &[
            (
                "  backup_encryption_password: { generate: 32 }",
                "  backup_encryption_password: { generate: 32 }\n  s3_access_key: { env: LAB_S3_ACCESS_KEY }\n  s3_secret_key: { env: LAB_S3_SECRET_KEY }",
            ),
            (
                "  server: backup1\n",
                "  server: backup1\n  offsite:\n    repository: s3:http://172.29.77.41:3900/dbfleet-offsite/lab\n    access_key_id: s3_access_key\n    secret_access_key: s3_secret_key\n    schedule: \"30 3 * * *\"\n    retention: { days: 10 }\n",
            ),
        ],
    );
    let d = |args: &[&str]| dbfleet_with(&inv, args, &envs);
    let a = d(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    let p = d(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    // The cron file on backup1 is exactly the rendered one; the credentials file is 0600.
    let rendered = tempfile::tempdir().expect("tempdir");
    let o = d(&[
        "plan",
        "--offline",
        "--out-dir",
        &rendered.path().display().to_string(),
    ]);
    assert_eq!(o.code, 0, "{}", o.all());
    let want = std::fs::read_to_string(
        rendered
            .path()
            .join("backup1/etc/cron.d/dbfleet-backup-offsite"),
    )
    .expect("rendered cron file");
    assert_eq!(
        on("backup1", "cat /etc/cron.d/dbfleet-backup-offsite"),
        want.trim_end()
    );
    assert_eq!(
        on("backup1", "stat -c '%a %U' /etc/dbfleet/backup-offsite.env"),
        "600 root"
    );

    // Backups dated 20, 12, 8 and 2 days back (kept on backup1: the job keeps 4 weeks),
    // then today's; the copy keeps the 10 days declared for the offsite side.
    fresh_table("offsite", "copied", 500);
    let now = chrono::Utc::now();
    for days in [20i64, 12, 8, 2] {
        let at = (now - chrono::Duration::days(days)).format("%Y-%m-%d %H:%M:%S");
        on(
            "db2",
            &format!("DBFLEET_BACKUP_TIME='{at}' /usr/local/lib/dbfleet/backup-app-logical run"),
        );
    }
    let r = d(&["backup", "run", "app-logical"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let c = d(&["backup", "offsite", "app-logical"]);
    assert_eq!(c.code, 0, "{}", c.all());
    assert!(c.stdout.contains("app-logical ok: "), "{}", c.all());
    let ages = |json: &str| snapshot_ages(json, now);
    let local = ages(&on(
        "db2",
        "/usr/local/lib/dbfleet/backup-app-logical snapshots",
    ));
    let offsite = ages(&on(
        "backup1",
        "/usr/local/lib/dbfleet/backup-offsite --snapshots app-logical",
    ));
    assert!(
        [2, 8, 12, 20].iter().all(|d| local.contains(d)),
        "backup1 keeps 4 weeks: {local:?}"
    );
    assert_eq!(
        offsite
            .iter()
            .copied()
            .filter(|a| *a > 0)
            .collect::<Vec<_>>(),
        vec![2, 8],
        "the offsite copy keeps exactly the backups within 10 days: {offsite:?}"
    );
    assert!(
        offsite.contains(&0),
        "today's backup is offsite: {offsite:?}"
    );
    // The objects really are in the Garage bucket, under the declared prefix.
    let objects = on(
        "offsite1",
        "garage -c /etc/garage.toml bucket info dbfleet-offsite",
    );
    let count: u64 = objects
        .lines()
        .find_map(|l| l.strip_prefix("Objects:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no object count in:\n{objects}"));
    assert!(count > 0, "{objects}");
    let metrics = on(
        "backup1",
        "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_offsite_app-logical.prom",
    );
    assert!(
        metrics.contains("dbfleet_backup_offsite_last_exit_code{job=\"app-logical\"} 0"),
        "{metrics}"
    );

    // The offsite copy restores: the newest dump loaded into a scratch server on backup1
    // matches the manifest db2 recorded at backup time.
    let v = d(&["backup", "verify", "--offsite", "app-logical"]);
    assert_eq!(v.code, 0, "{}", v.all());
    assert!(
        v.stdout
            .contains("rows readable, row counts and checksums match the manifest"),
        "{}",
        v.all()
    );

    // backup1 is lost: a bare host in its place (new SSH host keys, empty disk). Apply
    // provisions it, with the fleet's backup host key, so the job hosts trust it again at
    // once; `backup offsite --pull` brings every copied backup back, owned by the backup
    // account, and the local verify passes.
    reset(&["backup1"]);
    let a2 = d(&["apply", "--auto-approve"]);
    assert_eq!(a2.code, 0, "{}", a2.all());
    let p = d(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        p.code,
        0,
        "a re-plan after apply must be empty:\n{}",
        p.all()
    );
    let pull = d(&["backup", "offsite", "--pull", "app-logical"]);
    assert_eq!(pull.code, 0, "{}", pull.all());
    assert!(
        pull.stdout
            .contains(&format!("app-logical ok: {} snapshots", offsite.len())),
        "{}",
        pull.all()
    );
    assert_eq!(
        on(
            "backup1",
            "find /srv/dbfleet-backups/app-logical ! -user dbfleet-backup | wc -l"
        ),
        "0"
    );
    let v = d(&["backup", "verify", "app-logical"]);
    assert_eq!(v.code, 0, "{}", v.all());
    // The job writes into the pulled store again, over SFTP to the rebuilt server, whose
    // host key db2 checks strictly.
    let r = d(&["backup", "run", "app-logical"]);
    assert_eq!(r.code, 0, "{}", r.all());

    // No secret (the S3 key included) in the cron file, the scripts, the logs or output.
    let store: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(".dbfleet/secrets.json")).expect("secrets"),
    )
    .expect("json");
    let mut seen = on(
        "backup1",
        "cat /etc/cron.d/dbfleet-backup-offsite /usr/local/lib/dbfleet/backup-offsite /usr/local/lib/dbfleet/backup-verify /var/log/dbfleet/backup-offsite.log /var/log/dbfleet/backup-verify.log",
    );
    for o in [&a, &a2, &c, &v, &pull, &r] {
        seen.push_str(&o.all());
    }
    let mut secrets: Vec<String> = store
        .as_object()
        .expect("object")
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    secrets.extend(env.iter().map(|(_, v)| v.clone()));
    for s in secrets {
        assert!(
            !seen.contains(&s),
            "a secret leaked into offsite files or output"
        );
    }
    // Back to the lab's own inventory for the tests after this one.
    converge(&mut lab);
}

/// Issue 26, must-show 4, after a `backup verify` that printed `verified`: each check timed
/// its restore; `validate` prints every job's expected restore time from it (recorded by
/// `backup verify`, no host contacted); with a 1 s RTO declared for app-physical (whose
/// restore prepares a chain and starts a server: seconds) `status` exits 1 naming the job,
/// and Prometheus fires DbfleetRtoAtRisk for it; the lab's own inventory then converges
/// again.
fn rto_from_the_last_verify(verified: &str) {
    for job in ["app-logical", "app-physical", "binlogs", "proxy-config"] {
        assert!(
            verified.lines().any(|l| l.contains(&format!("{job} ok: "))
                && l.contains("; restored ")
                && l.ends_with(" s")),
            "{job}: no restore measured in:\n{verified}"
        );
    }
    let prom = on(
        "backup1",
        "cat /var/lib/node_exporter/textfile_collector/dbfleet_backup_verify_app-physical.prom",
    );
    assert!(
        prom.contains("dbfleet_backup_verify_restore_seconds{job=\"app-physical\"} ")
            && prom.contains("dbfleet_backup_verify_restored_bytes{job=\"app-physical\"} "),
        "{prom}"
    );
    let val = dbfleet(&["validate"]);
    assert_eq!(val.code, 0, "{}", val.all());
    let line_after = |job: &str| -> String {
        let mut lines = val.stdout.lines();
        lines.find(|l| l.starts_with(&format!("backup job {job} ")));
        lines.next().unwrap_or("").trim().to_string()
    };
    // app-logical declares a 1-hour RTO; binlogs declares none.
    assert!(
        line_after("app-logical").starts_with("expected restore ")
            && line_after("app-logical").ends_with(", within its RTO of 1 h"),
        "{}",
        val.stdout
    );
    assert!(
        line_after("binlogs").starts_with("expected restore "),
        "{}",
        val.stdout
    );
    eprintln!("validate: app-physical {}", line_after("app-physical"));

    let dir = tempfile::tempdir().expect("tempdir");
    let tiny = lab_variant(
        dir.path(),
        "tiny-rto.yml",
        &[(
            "      rpo: 24h\n    binlogs:",
            "      rpo: 24h\n      rto: 1s\n    binlogs:",
        )],
    );
    let a = dbfleet_with(&tiny, &["apply", "--auto-approve"], &[]);
    assert_eq!(a.code, 0, "{}", a.all());
    let st = dbfleet_with(&tiny, &["status"], &[]);
    assert_eq!(st.code, 1, "{}", st.all());
    assert!(
        st.stderr
            .contains("backup job app-physical: expected restore ")
            && st.stderr.contains("over its RTO of 1.0 s")
            && !st.stderr.contains("backup job app-logical"),
        "{}",
        st.all()
    );
    eprintln!("status with a 1 s RTO:\n{}", st.stderr.trim());
    let fired = super::prometheus::until(Duration::from_secs(60), || {
        super::prometheus::alerts("DbfleetRtoAtRisk")
            .into_iter()
            .find(|(l, state, _)| l["job"] == "app-physical" && state == "firing")
    });
    assert!(
        fired.is_some(),
        "DbfleetRtoAtRisk never fired for app-physical: {:?}",
        super::prometheus::alerts("DbfleetRtoAtRisk")
    );
    let back = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(back.code, 0, "{}", back.all());
    assert_empty_plan();
}

/// The seeding run on db3: (exists, its lock held, bytes copied into db3's new data
/// folder (0 until the old one is set aside), the lease's client).
fn seed_run() -> (bool, bool, u64, String) {
    let out = on(
        "db3",
        "d=/var/lib/dbfleet/runs/seed; if [ -d $d ]; then echo yes; \
         if flock -n $d/lock true; then echo free; else echo held; fi; \
         if [ -d \"$(cat $d/kept-aside 2>/dev/null)\" ]; then du -sb /var/lib/mysql | cut -f1; else echo 0; fi; \
         cut -d' ' -f1 $d/lease; else echo no; fi",
    );
    let l: Vec<&str> = out.lines().collect();
    if l.first() != Some(&"yes") {
        return (false, false, 0, String::new());
    }
    (
        true,
        l.get(1) == Some(&"held"),
        l.get(2).and_then(|b| b.parse().ok()).unwrap_or(0),
        l.get(3).unwrap_or(&"").to_string(),
    )
}

/// Waits until db3's seeding run holds its lock and has copied `bytes` into its data folder.
fn copying(bytes: u64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let (exists, held, copied, _) = seed_run();
        if exists && held && copied >= bytes {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no seeding run copying on db3 after 300 s"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// The copy keeps growing on db3 with no dbfleet attached: returns the bytes added in
/// `secs` seconds, asserting that the run still holds its lock.
fn goes_on(secs: u64, what: &str) -> u64 {
    let (_, _, before, _) = seed_run();
    std::thread::sleep(Duration::from_secs(secs));
    let (exists, held, after, _) = seed_run();
    assert!(exists && held, "{what}: the seeding run on db3 is gone");
    assert!(
        after > before,
        "{what}: db3's copy did not grow in {secs} s ({before} → {after} bytes)"
    );
    after - before
}

/// db3 replicates from db1 and holds app.bulk as db1 does.
fn db3_whole(sum: &str) {
    eventually("db3", "CHECKSUM TABLE app.bulk", sum);
    let st = slave_status("db3");
    assert_eq!(
        (
            st["Slave_IO_Running"].as_str(),
            st["Slave_SQL_Running"].as_str()
        ),
        ("Yes", "Yes")
    );
    let (exists, ..) = seed_run();
    assert!(
        !exists,
        "the seeding run's folder stays on db3 after it finished"
    );
}

/// Issue 26, must-show 3: a replica's data copy is a detached run on the replica. Killed
/// (SIGKILL) mid-copy, `dbfleet rebuild db3` and a seeding `apply` leave the copy going on
/// db3; `plan` then shows the bootstrap still to finish (never a host that looks done);
/// the same command started again attaches, shows progress and ends with db3 replicating
/// and `CHECKSUM TABLE` equal to the primary's; a second concurrent `rebuild db3` is
/// refused while the first drives the run. Then the operator's network to the lab is cut
/// for 30 s mid-copy: the copy goes on, and the command (again, if the cut ended it)
/// finishes it. The copies are held to 5 MB/s (db1's and backup1's traffic to db3) so that
/// each lasts long enough to be interrupted.
#[test]
fn a_killed_or_cut_off_seed_goes_on_on_the_replica_and_the_same_command_attaches_to_it() {
    let mut lab = converged();
    // 192 MiB of incompressible rows, in a fresh full backup too.
    sql(
        "db1",
        "DROP TABLE IF EXISTS app.bulk; CREATE TABLE app.bulk (id INT PRIMARY KEY, b VARBINARY(1024)) ENGINE=InnoDB",
    );
    for i in 0..3u32 {
        let from = i * 65536 + 1;
        sql(
            "db1",
            &format!(
                "USE app; INSERT INTO app.bulk SELECT seq, RANDOM_BYTES(1024) FROM seq_{from}_to_{}",
                from + 65535
            ),
        );
    }
    let sum = sql("db1", "CHECKSUM TABLE app.bulk");
    eventually("db2", "CHECKSUM TABLE app.bulk", &sum);
    let b = dbfleet(&["backup", "run", "app-physical", "--mode", "full"]);
    assert_eq!(b.code, 0, "{}", b.all());
    let slow = Slowed::new(&["db1", "backup1"], "172.29.77.13", 5);
    let progress = |o: &Out| o.stdout.contains("MiB of ") && o.stdout.contains("MB/s");

    // 1. rebuild db3 killed mid-copy; the copy goes on; the plan does not call db3 done.
    reset(&["db3"]);
    let mut first = Spawned::new(&["rebuild", "db3", "--auto-approve"]);
    copying(16 << 20, "rebuild");
    first.kill();
    let (_, _, _, killed_lease) = seed_run();
    let grew = goes_on(3, "rebuild killed");
    eprintln!("rebuild killed mid-copy: db3's copy grew {grew} bytes in 3 s with no dbfleet");
    let p = dbfleet(&["plan", "--detailed-exitcode"]);
    assert_eq!(p.code, 2, "{}", p.all());
    assert!(
        p.stdout
            .contains("finish the bootstrap from db1 (a seed in progress)"),
        "{}",
        p.all()
    );
    // 2. The same command again attaches; a second one meanwhile is refused.
    let mut again = Spawned::new(&["rebuild", "db3", "--auto-approve"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seed_run().3 == killed_lease {
        assert!(
            !again.ended(),
            "the second rebuild ended without attaching:\n{}",
            again.wait(Duration::from_secs(1)).all()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the second rebuild never attached"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (exists, held, _, _) = seed_run();
    assert!(
        exists && held,
        "the copy ended before the concurrent rebuild could be tried"
    );
    let concurrent = dbfleet(&["rebuild", "db3", "--auto-approve"]);
    assert_refused(&concurrent, "another dbfleet drives the seeding of db3");
    let r = again.wait(Duration::from_secs(600));
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(progress(&r), "no progress shown:\n{}", r.all());
    db3_whole(&sum);
    // Then the fleet's apply and an empty re-plan. After this interrupted rebuild both
    // proxies were found with db3 in maintenance among the readers (stop 39, twice; no
    // step of either rebuild's output touched a proxy: its origin is not found yet). The
    // plan shows it now (`haproxy routes`) and apply puts it back.
    converge(&mut lab);

    // 3. A seeding apply killed mid-copy; apply again attaches.
    reset(&["db3"]);
    let mut first = Spawned::new(&["apply", "--auto-approve"]);
    copying(16 << 20, "apply");
    first.kill();
    goes_on(3, "apply killed");
    let a = dbfleet(&["apply", "--auto-approve"]);
    assert_eq!(a.code, 0, "{}", a.all());
    assert!(
        a.stdout
            .contains("finish the bootstrap from db1 (a seed in progress)")
            && progress(&a),
        "{}",
        a.all()
    );
    db3_whole(&sum);
    assert_empty_plan();

    // 4. The operator's network cut for 30 s mid-copy.
    reset(&["db3"]);
    let running = Spawned::new(&["apply", "--auto-approve"]);
    copying(16 << 20, "apply before the cut");
    let cut = Cut::new(&bridge_of("lab"));
    let grew = goes_on(30, "the operator cut off");
    drop(cut);
    eprintln!("operator cut off 30 s: db3's copy grew {grew} bytes meanwhile");
    let a = running.wait(Duration::from_secs(600));
    eprintln!(
        "the apply that was cut off: exit {}{}",
        a.code,
        if a.code == 0 {
            " (its connection survived the cut)"
        } else {
            ""
        }
    );
    if a.code != 0 {
        // Its connection was lost: it says the copy goes on and how to attach.
        assert!(
            a.all().contains("run the same command again to attach"),
            "{}",
            a.all()
        );
        let again = dbfleet(&["apply", "--auto-approve"]);
        assert_eq!(again.code, 0, "{}", again.all());
    }
    drop(slow);
    db3_whole(&sum);
    assert_empty_plan();
    sql("db1", "DROP TABLE app.bulk");
}
