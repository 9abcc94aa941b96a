//! Values written at a boundary other than SQL (whose quoting is `crate::sql::quote`): a
//! word for `sh`, and a value in a MariaDB/MySQL option file. Every module that builds a
//! script or an option file escapes through these; the secret redactor also matches the
//! forms they produce (`crate::secrets`).

/// Single-quotes `s` for sh.
pub fn q(s: &str) -> String {
    shell_escape::unix::escape(s.into()).into_owned()
}

/// A value for a MariaDB/MySQL option file (`key = VALUE`): as is when nothing in it is
/// special, else in double quotes with `\\` and `"` escaped. Unquoted, a `#` starts a
/// comment and cuts a password short, and surrounding blanks are trimmed (MySQL
/// `mysys/default.c`: `remove_end_comment`, the quote stripping and the escape sequences
/// of `search_default_file_with_ext`). Control characters never get here: secrets and
/// variables holding them are refused at validation.
pub fn option_file_value(s: &str) -> String {
    let special = s.is_empty()
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
        || s.contains(['#', '"', '\'', '\\', ';']);
    if !special {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
