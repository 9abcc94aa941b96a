//! Who and what reaches the servers: database names, users and their parsed grants (the
//! forbidden-privilege rule, `crate::sql::grant`), and secret sources.

use super::*;

pub(super) fn is_sql_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn check_databases(
    c: &mut Checker,
    raw: &[Spanned<crate::inventory::schema::RawDatabase>],
) -> Vec<crate::inventory::Database> {
    let mut out: Vec<crate::inventory::Database> = Vec::new();
    for d in raw {
        let name = &d.value.name;
        if !is_sql_name(&name.value) {
            let s = c.span(name);
            c.push(
                Problem::at(
                    format!("database name `{}` is not valid", name.value),
                    s,
                    "here",
                )
                .help("use letters, digits and `_` (64 at most)"),
            );
            continue;
        }
        if out.iter().any(|o| o.name == name.value) {
            let s = c.span(name);
            c.push(Problem::at(
                format!("database `{}` is declared twice", name.value),
                s,
                "again here",
            ));
            continue;
        }
        out.push(crate::inventory::Database {
            name: name.value.clone(),
            charset: d
                .value
                .charset
                .clone()
                .unwrap_or_else(|| crate::inventory::DEFAULT_CHARSET.into()),
            collation: d
                .value
                .collation
                .clone()
                .unwrap_or_else(|| crate::inventory::DEFAULT_COLLATION.into()),
        });
    }
    out
}

pub(super) fn check_users(
    c: &mut Checker,
    raw: &[Spanned<crate::inventory::schema::RawUser>],
    secrets: &BTreeMap<String, SecretSource>,
) -> Vec<crate::inventory::User> {
    let mut out: Vec<crate::inventory::User> = Vec::new();
    for u in raw {
        let r = &u.value;
        let host = r.host.clone().unwrap_or_else(|| "%".into());
        if r.name.value.is_empty()
            || r.name.value.len() > 80
            || r.name.value.starts_with("dbfleet_")
        {
            let s = c.span(&r.name);
            c.push(
                Problem::at(
                    format!("user name `{}` is not allowed", r.name.value),
                    s,
                    "here",
                )
                .help("1 to 80 characters; `dbfleet_` names are reserved for dbfleet's own users"),
            );
            continue;
        }
        if out.iter().any(|o| o.name == r.name.value && o.host == host) {
            let s = c.span(&r.name);
            c.push(Problem::at(
                format!("user `{}`@`{host}` is declared twice", r.name.value),
                s,
                "again here",
            ));
            continue;
        }
        if !secrets.contains_key(&r.password.value) {
            let s = c.span(&r.password);
            let help = did_you_mean(&r.password.value, secrets.keys().map(String::as_str))
                .unwrap_or_else(|| "declare it under `secrets:`".into());
            c.push(
                Problem::at(
                    format!("secret `{}` is not declared", r.password.value),
                    s,
                    "unknown secret",
                )
                .help(help),
            );
        }
        let mut ok = true;
        let mut grants = Vec::new();
        for g in &r.grants {
            // Checked on the parsed form, which is also what is sent (crate::sql::grant).
            match crate::sql::grant::parse(&g.value) {
                Err(why) => {
                    let s = c.span(g);
                    c.push(
                        Problem::at(format!("grant `{}`: {why}", g.value), s, "here")
                            .help("e.g. \"SELECT, INSERT, UPDATE, DELETE ON app.*\""),
                    );
                    ok = false;
                }
                Ok(parsed) => {
                    if let Some(p) = crate::sql::grant::forbidden_for_applications(&parsed) {
                        let s = c.span(g);
                        c.push(Problem::at(format!("application user `{}` may not hold {p}", r.name.value), s, "forbidden")
                            .help("SUPER and READ ONLY ADMIN bypass read_only on a replica and create errant transactions, GRANT OPTION hands privileges out; grant only what the application needs"));
                        ok = false;
                    }
                    grants.push(parsed.to_string());
                }
            }
        }
        if ok {
            out.push(crate::inventory::User {
                name: r.name.value.clone(),
                host,
                password: r.password.value.clone(),
                grants,
                require_ssl: r.require_ssl,
            });
        }
    }
    out
}

pub(super) fn check_secret(
    c: &mut Checker,
    key: &Spanned<String>,
    value: &Spanned<RawSecret>,
) -> Option<SecretSource> {
    let s = c.span(value);
    let RawSecret {
        env,
        file,
        generate,
    } = &value.value;
    let n = env.is_some() as u8 + file.is_some() as u8 + generate.is_some() as u8;
    if n != 1 {
        c.push(
            Problem::at(
                format!("secret `{}` needs exactly one source", key.value),
                s,
                "here",
            )
            .help("write `{env: NAME}`, `{file: PATH}` or `{generate: LENGTH}`"),
        );
        return None;
    }
    if let Some(e) = env {
        return Some(SecretSource::Env(e.clone()));
    }
    if let Some(f) = file {
        return Some(SecretSource::File(PathBuf::from(f)));
    }
    match generate {
        Some(serde_json::Value::Bool(true)) => Some(SecretSource::Generate(32)),
        Some(serde_json::Value::Number(n))
            if n.as_u64().is_some_and(|n| (24..=256).contains(&n)) =>
        {
            Some(SecretSource::Generate(n.as_u64().unwrap_or(32) as usize))
        }
        _ => {
            c.push(Problem::at(
                format!(
                    "secret `{}`: generate takes a length from 24 to 256, or true",
                    key.value
                ),
                s,
                "here",
            ));
            None
        }
    }
}
