//! `dbfleet app-config`: application configuration derived from the inventory, printed
//! for the operator to paste. Laravel's read/write split is the seed's (seed 000,
//! "Laravel Integration": `read`/`write` hosts and `sticky`, so a request reads its own
//! writes). With a proxy in the fleet the application talks to the proxy's writer and
//! reader ports, which follow switchovers and failovers; `--direct` names the database
//! hosts instead (the writer is then fixed to today's primary). The password is never
//! printed: `.env` gets a placeholder naming the secret.

use crate::error::Error;
use crate::inventory::{Inventory, Role};

/// Renders Laravel's `config/database.php` block and `.env` lines.
///
/// Errors: [`Error::Refused`] when the inventory has no application database or user
/// (or not the one named), or no primary.
pub fn laravel(
    inv: &Inventory,
    direct: bool,
    database: Option<&str>,
    user: Option<&str>,
) -> Result<String, Error> {
    let db = match database {
        Some(d) => inv.databases.iter().find(|x| x.name == d),
        None => inv.databases.first(),
    }
    .ok_or_else(|| {
        Error::Refused("the inventory declares no such application database (`databases:`)".into())
    })?;
    let u = match user {
        Some(n) => inv.users.iter().find(|x| x.name == n),
        None => inv.users.first(),
    }
    .ok_or_else(|| {
        Error::Refused("the inventory declares no such application user (`users:`)".into())
    })?;
    let primary = inv
        .hosts
        .iter()
        .find(|h| h.has(Role::Primary))
        .ok_or_else(|| Error::Refused("the inventory has no primary".into()))?;
    let proxy = inv.hosts.iter().find(|h| h.has(Role::Proxy));
    let port = |h: &crate::inventory::Host, var: &str, default: u64| {
        h.vars.get(var).and_then(|v| v.as_u64()).unwrap_or(default)
    };
    // (write hosts, write port, read hosts, read port)
    let (write, wport, read, rport, how) = match proxy {
        Some(p) if !direct => (
            vec![p.address.clone()],
            port(p, "proxy_writer_port", 3306),
            vec![p.address.clone()],
            port(p, "proxy_reader_port", 3307),
            format!(
                "through the proxy {} (writer port: the primary; reader port: healthy replicas)",
                p.name
            ),
        ),
        _ => {
            let replicas: Vec<String> = inv
                .hosts
                .iter()
                .filter(|h| h.has(Role::Replica) && h.cluster == primary.cluster)
                .map(|h| h.address.clone())
                .collect();
            let p = port(primary, "port", 3306);
            (
                vec![primary.address.clone()],
                p,
                if replicas.is_empty() {
                    vec![primary.address.clone()]
                } else {
                    replicas
                },
                p,
                format!(
                    "directly: {} is the primary today; regenerate after a switchover",
                    primary.name
                ),
            )
        }
    };
    let mut env = String::new();
    env.push_str("DB_CONNECTION=mysql\n");
    env.push_str(&format!(
        "DB_WRITE_HOST={}\nDB_WRITE_PORT={wport}\n",
        write[0]
    ));
    for (i, r) in read.iter().enumerate() {
        env.push_str(&format!("DB_READ_HOST{}={r}\n", i + 1));
    }
    env.push_str(&format!("DB_READ_PORT={rport}\n"));
    env.push_str(&format!(
        "DB_DATABASE={}\nDB_USERNAME={}\n# DB_PASSWORD: the inventory's secret `{}` (never printed by dbfleet)\nDB_PASSWORD=\n",
        db.name, u.name, u.password
    ));
    let read_hosts: Vec<String> = (1..=read.len())
        .map(|i| format!("env('DB_READ_HOST{i}')"))
        .collect();
    let php = format!(
        "// config/database.php, 'connections' => [ ... ] (dbfleet app-config laravel)\n\
         // Generated from the inventory {}; {how}.\n\
         'mysql' => [\n\
         \x20   'read' => [\n\
         \x20       'host' => [{}],\n\
         \x20       'port' => env('DB_READ_PORT', '{rport}'),\n\
         \x20   ],\n\
         \x20   'write' => [\n\
         \x20       'host' => [env('DB_WRITE_HOST')],\n\
         \x20       'port' => env('DB_WRITE_PORT', '{wport}'),\n\
         \x20   ],\n\
         \x20   // A request that wrote reads from the writer for the rest of the request.\n\
         \x20   'sticky' => true,\n\
         \x20   'driver' => 'mysql',\n\
         \x20   'database' => env('DB_DATABASE', '{}'),\n\
         \x20   'username' => env('DB_USERNAME', '{}'),\n\
         \x20   'password' => env('DB_PASSWORD', ''),\n\
         \x20   'charset' => '{}',\n\
         \x20   'collation' => '{}',\n\
         \x20   'prefix' => '',\n\
         \x20   'strict' => true,\n\
         \x20   'engine' => null,\n\
         ],\n",
        inv.path.display(),
        read_hosts.join(", "),
        db.name,
        u.name,
        db.charset,
        db.collation
    );
    Ok(format!("{php}\n# .env\n{env}"))
}
