//! The type of each variable `playbooks/defaults.yml` declares, and the check every value
//! of it passes before it reaches a template: an option file, a shell script or SQL
//! (issue 11: `max_connections: lots` validated, and a size holding a newline added a line
//! such as `init_file = …` to 90-dbfleet.cnf).
//!
//! A type is written as text beside the default: `int MIN..MAX`, `number MIN..MAX` (either
//! bound may be left out), `size` (bytes, with an optional K/M/G/T suffix: MariaDB KB
//! "Server System Variables", size values), `bool`, `enum A|B|C`, `address` (an IP address
//! or a DNS name), `cidr-address` (an address with a prefix length, `10.0.0.5/24`),
//! `interface` (a Linux interface name: 1 to 15 of A-Z a-z 0-9 `_` `.` `-`),
//! `debian-version` (a package version as Debian Policy §5.6.12 writes it:
//! `[epoch:]upstream[-revision]`, e.g. `1:10.11.19-0+deb12u1`), `absolute-path` (a path
//! from `/` of A-Z a-z 0-9 `/` `.` `_` `+` `-`, no `..`: run as a program, never through a
//! shell). `T or WORD`
//! also admits the word (`never`), and `T or empty` the empty string.

use serde_json::Value;

/// One alternative of a variable's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Base {
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    Size,
    Bool,
    Enum(Vec<String>),
    Address,
    CidrAddress,
    Interface,
    /// A Debian package version (Debian Policy §5.6.12).
    DebianVersion,
    /// A program's absolute path (run without a shell).
    AbsolutePath,
    /// A literal word, or "" for `empty`.
    Word(String),
}

/// A variable's type: any of its alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct VarType {
    pub alternatives: Vec<Base>,
    /// The text it was parsed from, shown in errors.
    pub text: String,
}

fn bound<T: std::str::FromStr>(s: &str) -> Result<Option<T>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("`{s}` is not a bound"))
}

fn range<T: std::str::FromStr>(r: &str) -> Result<(Option<T>, Option<T>), String> {
    let (a, b) = r
        .split_once("..")
        .ok_or_else(|| format!("`{r}` is not a range MIN..MAX"))?;
    Ok((bound(a.trim())?, bound(b.trim())?))
}

impl VarType {
    /// Parses a type's text.
    ///
    /// Errors: a message naming what is not understood.
    pub fn parse(text: &str) -> Result<VarType, String> {
        let mut alternatives = Vec::new();
        for (i, alt) in text.split(" or ").enumerate() {
            let alt = alt.trim();
            let (head, rest) = alt.split_once(' ').unwrap_or((alt, ""));
            let rest = rest.trim();
            alternatives.push(match head {
                "int" => {
                    let (min, max) = if rest.is_empty() {
                        (None, None)
                    } else {
                        range(rest)?
                    };
                    Base::Int { min, max }
                }
                "number" => {
                    let (min, max) = if rest.is_empty() {
                        (None, None)
                    } else {
                        range(rest)?
                    };
                    Base::Number { min, max }
                }
                "size" => Base::Size,
                "bool" => Base::Bool,
                "enum" => Base::Enum(rest.split('|').map(|s| s.trim().to_string()).collect()),
                "address" => Base::Address,
                "cidr-address" => Base::CidrAddress,
                "interface" => Base::Interface,
                "debian-version" => Base::DebianVersion,
                "absolute-path" => Base::AbsolutePath,
                "empty" => Base::Word(String::new()),
                w if i > 0
                    && !w.is_empty()
                    && rest.is_empty()
                    && w.chars().all(|c| c.is_ascii_lowercase()) =>
                {
                    Base::Word(w.to_string())
                }
                _ => return Err(format!("`{alt}` is not a variable type")),
            });
        }
        Ok(VarType {
            alternatives,
            text: text.to_string(),
        })
    }

    /// The type as JSON Schema (draft-07): one schema per alternative (`anyOf` when
    /// more than one), admitting what [`VarType::check`] admits and, where a rule is not
    /// a plain pattern (a DNS name, an IP address, a Debian version), more: the schema
    /// guides an editor, `validate` decides.
    pub fn json_schema(&self) -> Value {
        let mut alts: Vec<Value> = self.alternatives.iter().map(Base::json_schema).collect();
        if alts.len() == 1 {
            alts.remove(0)
        } else {
            serde_json::json!({ "anyOf": alts })
        }
    }

    /// Checks `v` against the type.
    ///
    /// Errors: a message saying what the value should be, e.g. "`lots` is not int 1..100000".
    pub fn check(&self, v: &Value) -> Result<(), String> {
        if self.alternatives.iter().any(|a| a.admits(v)) {
            return Ok(());
        }
        let shown = match v {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Err(format!("{shown} is not {}", self.text))
    }
}

/// `[epoch:]upstream[-revision]` (Debian Policy §5.6.12), parsed by the `debversion`
/// crate; only the characters the Policy admits (A-Z a-z 0-9 `.` `+` `~` `-` `:`), so the
/// value is safe in an apt preferences file and a shell word. At most 128 characters.
pub fn is_debian_version(s: &str) -> bool {
    s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-' | ':'))
        && !s.ends_with(['-', ':'])
        && s.parse::<debversion::Version>().is_ok_and(|v| {
            v.upstream_version.starts_with(|c: char| c.is_ascii_digit())
                && !v.upstream_version.contains(':')
        })
}

fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// An IP address or a DNS name (RFC 1123 labels): what the `address` type admits, and the
/// only destinations `dbfleet import` hands to ssh (a value starting with `-` would be
/// taken by ssh as an option).
pub fn is_address(s: &str) -> bool {
    is_ip(s) || is_dns_name(s)
}

/// A DNS name (RFC 1123 labels).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Base {
    /// This alternative as JSON Schema ([`VarType::json_schema`]).
    fn json_schema(&self) -> Value {
        use serde_json::json;
        let bounded = |kind: &str, min: Option<Value>, max: Option<Value>| {
            let mut o = serde_json::Map::new();
            o.insert("type".into(), json!(kind));
            if let Some(m) = min {
                o.insert("minimum".into(), m);
            }
            if let Some(m) = max {
                o.insert("maximum".into(), m);
            }
            Value::Object(o)
        };
        match self {
            Base::Int { min, max } => {
                bounded("integer", min.map(|m| json!(m)), max.map(|m| json!(m)))
            }
            Base::Number { min, max } => {
                bounded("number", min.map(|m| json!(m)), max.map(|m| json!(m)))
            }
            Base::Size => json!({"anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]{1,20}[KMGTkmgt]?$"}
            ]}),
            Base::Bool => json!({"type": "boolean"}),
            // Matched without regard to case, as `admits` does: a pattern of both cases
            // of each letter (JSON Schema's regular expressions have no flags).
            Base::Enum(options) => {
                let either = |o: &str| -> String {
                    o.chars()
                        .map(|c| {
                            if c.is_ascii_alphabetic() {
                                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                            } else if c.is_ascii_alphanumeric() || c == '_' {
                                c.to_string()
                            } else {
                                format!("\\{c}")
                            }
                        })
                        .collect()
                };
                let pattern = format!(
                    "^(?:{})$",
                    options
                        .iter()
                        .map(|o| either(o))
                        .collect::<Vec<_>>()
                        .join("|")
                );
                let numbers: Vec<Value> = options
                    .iter()
                    .filter_map(|o| o.parse::<i64>().ok())
                    .map(|n| json!(n))
                    .collect();
                if numbers.is_empty() {
                    json!({"type": "string", "pattern": pattern})
                } else {
                    json!({"anyOf": [{"type": "string", "pattern": pattern}, {"enum": numbers}]})
                }
            }
            // The characters each may hold; `validate` checks the rest (RFC 1123 labels,
            // an address that parses, Debian Policy's grammar).
            Base::Address => json!({"type": "string", "pattern": "^[A-Za-z0-9.:-]{1,253}$"}),
            Base::CidrAddress => {
                json!({"type": "string", "pattern": "^[0-9A-Fa-f.:]+/[0-9]{1,3}$"})
            }
            Base::DebianVersion => {
                json!({"type": "string", "pattern": "^[0-9][A-Za-z0-9.+~:-]{0,127}$"})
            }
            Base::Interface => json!({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,15}$"}),
            Base::AbsolutePath => json!({"type": "string", "pattern": "^/[A-Za-z0-9/._+-]*$"}),
            Base::Word(w) => json!({"const": w}),
        }
    }

    fn admits(&self, v: &Value) -> bool {
        match (self, v) {
            (Base::Int { min, max }, Value::Number(n)) => n
                .as_i64()
                .is_some_and(|i| min.is_none_or(|m| i >= m) && max.is_none_or(|m| i <= m)),
            (Base::Number { min, max }, Value::Number(n)) => n.as_f64().is_some_and(|f| {
                f.is_finite() && min.is_none_or(|m| f >= m) && max.is_none_or(|m| f <= m)
            }),
            (Base::Size, Value::Number(n)) => n.as_u64().is_some(),
            (Base::Size, Value::String(s)) => {
                let digits = s
                    .strip_suffix(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't'])
                    .unwrap_or(s);
                !digits.is_empty()
                    && digits.len() <= 20
                    && digits.chars().all(|c| c.is_ascii_digit())
            }
            (Base::Bool, Value::Bool(_)) => true,
            (Base::Enum(options), Value::String(s)) => {
                options.iter().any(|o| o.eq_ignore_ascii_case(s))
            }
            (Base::Enum(options), Value::Number(n)) => options.contains(&n.to_string()),
            (Base::Address, Value::String(s)) => is_ip(s) || is_dns_name(s),
            (Base::CidrAddress, Value::String(s)) => s.split_once('/').is_some_and(|(a, p)| {
                is_ip(a)
                    && p.parse::<u8>()
                        .is_ok_and(|p| p <= if a.contains(':') { 128 } else { 32 })
            }),
            (Base::Interface, Value::String(s)) => {
                !s.is_empty()
                    && s.len() <= 15
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            }
            (Base::DebianVersion, Value::String(s)) => is_debian_version(s),
            (Base::AbsolutePath, Value::String(s)) => {
                s.starts_with('/')
                    && s.len() <= 4096
                    && !s.split('/').any(|part| part == "..")
                    && s.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '+' | '-')
                    })
            }
            (Base::Word(w), Value::String(s)) => s == w,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_against_their_type() {
        let t = |s: &str| VarType::parse(s).unwrap();
        assert!(t("int 1..100000").check(&json!(500)).is_ok());
        assert_eq!(
            t("int 1..100000").check(&json!("lots")).unwrap_err(),
            "\"lots\" is not int 1..100000"
        );
        assert!(t("int 1..100000").check(&json!(0)).is_err());
        assert!(t("size").check(&json!("128M")).is_ok());
        assert!(t("size").check(&json!("128M\ninit_file = /tmp/x")).is_err());
        assert!(t("size").check(&json!("1.5G")).is_err());
        assert!(t("bool").check(&json!("true")).is_err());
        let v = t("debian-version or installed or latest");
        for ok in [
            "1:10.11.19-0+deb12u1",
            "9.7.4-2",
            "11.8.3",
            "1:11.8.9+ds-0+deb13u1",
            "latest",
        ] {
            assert!(v.check(&json!(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "x1.0",
            "1:",
            "10.11.19-",
            "1.0;reboot",
            "1.0 2",
            "a:1.0",
            "1.0\n",
        ] {
            assert!(v.check(&json!(bad)).is_err(), "{bad:?}");
        }
        assert!(t("enum ROW|MIXED|STATEMENT").check(&json!("row")).is_ok());
        assert!(t("enum 0|1|2").check(&json!(2)).is_ok());
        assert!(t("enum 0|1|2").check(&json!(3)).is_err());
        assert!(t("int 0.. or never").check(&json!("never")).is_ok());
        assert!(t("int 0.. or never").check(&json!("nevermore")).is_err());
        assert!(t("cidr-address or empty").check(&json!("")).is_ok());
        assert!(
            t("cidr-address or empty")
                .check(&json!("10.0.0.5/24"))
                .is_ok()
        );
        assert!(
            t("cidr-address or empty")
                .check(&json!("10.0.0.5/24; reboot"))
                .is_err()
        );
        assert!(t("address").check(&json!("db-1.example.com")).is_ok());
        assert!(
            t("address")
                .check(&json!("0.0.0.0\nskip-grant-tables"))
                .is_err()
        );
        assert!(t("interface").check(&json!("eth0")).is_ok());
        let hook = t("absolute-path or empty");
        assert!(hook.check(&json!("/usr/local/bin/page-oncall")).is_ok());
        assert!(hook.check(&json!("")).is_ok());
        for bad in [
            "page-oncall",
            "/bin/sh -c x",
            "/a/../b",
            "/a;b",
            "/a\nb",
            "/a$(x)",
        ] {
            assert!(hook.check(&json!(bad)).is_err(), "{bad}");
        }
        assert!(t("number 0..").check(&json!(0.5)).is_ok());
    }

    #[test]
    fn unknown_types_are_refused() {
        assert!(VarType::parse("integer").is_err());
        assert!(VarType::parse("int 1-5").is_err());
    }
}
