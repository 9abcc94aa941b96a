//! `monitoring:`: where Prometheus runs, how often it scrapes and evaluates, and the
//! operator's alerting rules; the scrape targets are derived from the hosts here, so the
//! templates only format them.

use super::*;
use crate::inventory::schema::{RawAlertRule, RawMonitoring};
use crate::inventory::{AlertRule, Monitoring, ScrapeTarget};

/// Prometheus's default intervals (Prometheus docs, "Configuration": `scrape_interval` and
/// `evaluation_interval` of `global`, both 1m; seed 002's stack uses 15s).
const DEFAULT_INTERVAL_S: u64 = 15;

/// The secret holding the mysqld_exporter account's password.
pub const EXPORTER_SECRET: &str = "exporter_password";

pub(super) fn check_monitoring(
    c: &mut Checker,
    m: &Spanned<RawMonitoring>,
    hosts: &[Host],
    secrets: &BTreeMap<String, SecretSource>,
) -> Option<Monitoring> {
    let r = &m.value;
    let servers: Vec<String> = match &r.servers {
        Some(list) => {
            let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            for s in &list.value {
                if !hosts.iter().any(|h| h.name == s.value) {
                    let sp = c.span(s);
                    c.unknown_host("Prometheus server", &s.value, sp, &names);
                }
            }
            list.value.iter().map(|s| s.value.clone()).collect()
        }
        None => hosts
            .iter()
            .filter(|h| h.has(Role::Monitor))
            .map(|h| h.name.clone())
            .collect(),
    };
    if servers.is_empty() {
        let sp = c.span(m);
        c.push(
            Problem::at("monitoring has no Prometheus server", sp, "here")
                .help("name one (`servers: [HOST]`) or give a host the `monitor` role"),
        );
    }
    if !secrets.contains_key(EXPORTER_SECRET) {
        let sp = c.span(m);
        c.push(
            Problem::at(
                format!("monitoring needs the secret `{EXPORTER_SECRET}`"),
                sp,
                "here",
            )
            .help(format!(
                "the exporters' database account uses it: add `{EXPORTER_SECRET}: {{ generate: 32 }}` under `secrets:`"
            )),
        );
    }
    let interval = |c: &mut Checker, v: &Option<Spanned<String>>| match v {
        None => Some(DEFAULT_INTERVAL_S),
        Some(d) => check_duration(c, d),
    };
    let scrape_interval_s = interval(c, &r.scrape_interval);
    let evaluation_interval_s = interval(c, &r.evaluation_interval);
    let mut rules = Vec::new();
    let mut seen = BTreeSet::new();
    for rule in &r.rules {
        let name = &rule.value.alert;
        if !seen.insert(name.value.clone()) {
            let sp = c.span(name);
            c.push(
                Problem::at(
                    format!("alert `{}` is declared twice", name.value),
                    sp,
                    "here",
                )
                .help("each of the operator's alerts has its own name"),
            );
        }
        rules.extend(check_rule(c, rule));
    }
    let targets = hosts.iter().map(|h| target(h, hosts)).collect();
    let scrape_interval_s = scrape_interval_s?;
    Some(Monitoring {
        servers,
        scrape_interval_s,
        scrape_timeout_s: scrape_interval_s.min(10),
        evaluation_interval_s: evaluation_interval_s?,
        targets,
        rules,
    })
}

/// A host's endpoints, from its own port vars (`playbooks/defaults.yml`); `hosts` gives a
/// synchronous cluster's size.
fn target(h: &Host, hosts: &[Host]) -> ScrapeTarget {
    let port = |var: &str, default: u64| {
        let p = h.vars.get(var).and_then(|v| v.as_u64()).unwrap_or(default);
        if h.address.contains(':') {
            format!("[{}]:{p}", h.address)
        } else {
            format!("{}:{p}", h.address)
        }
    };
    let haproxy = h.has(Role::Proxy)
        && h.vars.get("proxy_backend").and_then(|v| v.as_str()) != Some("proxysql");
    ScrapeTarget {
        host: h.name.clone(),
        cluster: h.cluster.clone(),
        role: if h.has(Role::Primary) {
            "primary".into()
        } else if h.has(Role::Replica) {
            "replica".into()
        } else if h.has(Role::Member) {
            "member".into()
        } else {
            String::new()
        },
        replication: if h.has(Role::Member) {
            h.replication().to_string()
        } else {
            String::new()
        },
        members: h.has(Role::Member).then(|| {
            hosts
                .iter()
                .filter(|o| o.cluster == h.cluster && o.has(Role::Member))
                .count() as u64
        }),
        node: port("node_exporter_port", 9100),
        mysqld: h.is_database().then(|| port("mysqld_exporter_port", 9104)),
        haproxy: haproxy.then(|| port("haproxy_metrics_port", 8405)),
        max_lag_s: h.has(Role::Replica).then(|| h.max_replica_lag_s()),
    }
}

/// One operator rule: the name Prometheus accepts for an alert (a label value, but dbfleet
/// keeps to metric-name characters so it reads the same in every tool), an expression on
/// one line, `for` a duration, a known severity.
fn check_rule(c: &mut Checker, rule: &Spanned<RawAlertRule>) -> Option<AlertRule> {
    let r = &rule.value;
    let name_ok = {
        let mut ch = r.alert.value.chars();
        ch.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && ch.all(|x| x.is_ascii_alphanumeric() || x == '_')
    };
    let mut ok = true;
    if !name_ok {
        let sp = c.span(&r.alert);
        c.push(
            Problem::at(
                format!("`{}` is not an alert name", r.alert.value),
                sp,
                "here",
            )
            .help("letters, digits and `_`, not starting with a digit, e.g. ManyConnections"),
        );
        ok = false;
    }
    if r.expr.value.trim().is_empty() || r.expr.value.contains(['\n', '\r', '\0']) {
        let sp = c.span(&r.expr);
        c.push(
            Problem::at("the expression must be one non-empty line", sp, "here")
                .help("e.g. expr: 'mysql_global_status_threads_connected > 500'"),
        );
        ok = false;
    }
    let for_s = match &r.for_ {
        None => Some(0),
        Some(d) if d.value.trim() == "0s" || d.value.trim() == "0" => Some(0),
        Some(d) => check_duration(c, d),
    };
    let severity = match &r.severity {
        None => "warning".to_string(),
        Some(s) if crate::inventory::ALERT_SEVERITIES.contains(&s.value.as_str()) => {
            s.value.clone()
        }
        Some(s) => {
            let sp = c.span(s);
            c.push(
                Problem::at(format!("unknown severity `{}`", s.value), sp, "here")
                    .help("use info, warning or critical"),
            );
            ok = false;
            String::new()
        }
    };
    let summary = r.summary.clone().unwrap_or_default();
    if summary.contains(['\0']) || summary.len() > 1024 {
        let sp = c.span(rule);
        c.push(Problem::at(
            "the summary must be text under 1 KiB",
            sp,
            "here",
        ));
        ok = false;
    }
    let for_s = for_s?;
    ok.then(|| AlertRule {
        alert: r.alert.value.clone(),
        expr: r.expr.value.clone(),
        for_s,
        severity,
        summary,
    })
}
