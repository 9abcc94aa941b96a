//! Reading an inventory file: size budget, UTF-8, emptiness, YAML parse.
//!
//! Structural problems (YAML syntax, unknown key, wrong type, missing field) come from the
//! parser and stop it, so at most one of those is reported per run; every semantic problem
//! is then found by [`super::validate`] in one pass.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::Inventory;
use super::schema::RawInventory;
use crate::diagnostics::{FileProblems, Problem, did_you_mean, span_of};
use crate::error::Error;

/// Largest inventory accepted, in bytes. An inventory of a thousand hosts is ~200 KiB;
/// anything far larger is a wrong file, and the YAML parser's own budget guards the rest.
pub const MAX_INVENTORY_BYTES: u64 = 1024 * 1024;

/// Loads and validates the inventory at `path`.
///
/// `defaults` are the playbooks' variable defaults: they name every variable an inventory
/// may set. Errors: [`Error::Io`] when the file cannot be read, [`Error::Invalid`] with
/// every problem found (each at file:line:col) when it is not a valid inventory.
pub fn load(path: &Path, defaults: &super::Defaults) -> Result<Inventory, Error> {
    let name = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(format!("reading inventory {name}"), e))?;
    if !meta.is_file() {
        let p = Problem::at(
            "the inventory is not a regular file (a device, a pipe or a folder)",
            (0, 0),
            "this file",
        )
        .help("pass the inventory's YAML file with -i");
        return Err(Error::Invalid(Box::new(FileProblems::new(
            &name,
            String::new(),
            vec![p],
        ))));
    }
    if meta.len() > MAX_INVENTORY_BYTES {
        let p = Problem::at(
            format!(
                "inventory is {} bytes, over the {} byte budget",
                meta.len(),
                MAX_INVENTORY_BYTES
            ),
            (0, 0),
            "this file",
        )
        .help("is this the right file? An inventory of a thousand hosts is about 200 KiB");
        return Err(Error::Invalid(Box::new(FileProblems::new(
            &name,
            String::new(),
            vec![p],
        ))));
    }
    let bytes = crate::files::read_regular(path, MAX_INVENTORY_BYTES).map_err(|e| {
        Error::io(
            format!("reading inventory {name}"),
            std::io::Error::other(e.0),
        )
    })?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy text replaces the bad byte with U+FFFD (3 bytes); its offset is the same.
            let p = Problem::at("inventory is not valid UTF-8", (at, 1), "invalid byte here")
                .help("save the file as UTF-8");
            return Err(Error::Invalid(Box::new(FileProblems::new(
                &name,
                lossy,
                vec![p],
            ))));
        }
    };
    let raw = parse(&name, &text)?;
    super::validate::validate(raw, path, &name, text, digest, defaults)
}

/// Loads and validates inventory `text` as if it were the content of `path` (relative
/// paths resolve from `path`'s folder): a topology edit checked before it is written.
///
/// Errors: as [`load`].
pub fn load_text(path: &Path, text: &str, defaults: &super::Defaults) -> Result<Inventory, Error> {
    let name = path.display().to_string();
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let raw = parse(&name, text)?;
    super::validate::validate(raw, path, &name, text.to_string(), digest, defaults)
}

/// Parses inventory text into its raw shape; errors are located problems.
pub fn parse(name: &str, text: &str) -> Result<RawInventory, Error> {
    if is_blank(text) {
        let p = Problem::at("inventory is empty", (0, 0), "nothing here")
            .help("an inventory needs `fleet:` and `hosts:`; see inventories/lab.yml");
        return Err(Error::Invalid(Box::new(FileProblems::new(
            name,
            text.to_string(),
            vec![p],
        ))));
    }
    serde_saphyr::from_str::<RawInventory>(text).map_err(|e| {
        Error::Invalid(Box::new(FileProblems::new(
            name,
            text.to_string(),
            vec![yaml_problem(&e, text)],
        )))
    })
}

/// True when the text holds no YAML content (only blanks, comments, document markers).
fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Turns a parser error into a located problem in operator terms, with a "did you mean"
/// for unknown keys.
pub fn yaml_problem(e: &serde_saphyr::Error, text: &str) -> Problem {
    let inner = e.without_snippet();
    let mut message = inner.to_string();
    // serde-saphyr may append " at line X column Y"; the label already shows where.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    let span = inner
        .location()
        .map(|l| span_of(&l, text))
        .unwrap_or((0, 0));
    let mut help = None;
    let mut label = "here";
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((given, expected)) = rest.split_once('`') {
            let given = given.to_string();
            let list = expected
                .trim_start_matches(',')
                .trim()
                .trim_start_matches("expected one of")
                .trim_start_matches("expected")
                .trim();
            let candidates: Vec<String> = list
                .split(',')
                .map(|c| c.trim().trim_matches('`').to_string())
                .filter(|c| !c.is_empty())
                .collect();
            help = did_you_mean(&given, candidates.iter().map(String::as_str))
                .or_else(|| Some(format!("allowed here: {}", candidates.join(", "))));
            message = format!("unknown key `{given}`");
            label = "not allowed here";
        }
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((given, _)) = rest.split_once('`') {
            message = format!("unknown value `{given}`");
        }
    } else if message.starts_with("missing field") {
        message = message.replacen("missing field", "missing required key", 1);
        help = Some("add the key to this mapping".into());
        label = "in this mapping";
    } else if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        message = format!("duplicate key `{key}`");
        help = Some("each key appears once in a mapping; host names are unique".into());
        label = "defined again here";
    } else if let Some(t) = message.strip_prefix("invalid ") {
        let want = match t.trim() {
            "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => Some("a whole number"),
            "bool" => Some("true or false"),
            _ => None,
        };
        if let Some(w) = want {
            message = format!("wrong type: expected {w}");
        }
    } else if message.starts_with("invalid type") {
        message = message.replacen("invalid type", "wrong type", 1);
    }
    let p = Problem::at(message, span, label);
    match help {
        Some(h) => p.help(h),
        None => p,
    }
}
