//! `dbfleet schema`: the inventory's JSON Schema, for editors that check and complete YAML
//! (yaml-language-server; issue 28). Built from the types that load the inventory and the
//! variables of the playbooks in use (`crate::inventory::schema::json_schema`); reads no
//! inventory and contacts no host.

use crate::engine::Options;
use crate::error::{Error, Exit};
use crate::playbook::Library;
use crate::report;

/// `dbfleet schema`: prints the schema as JSON.
///
/// Errors: a playbook folder (`--playbooks`) that cannot be read or whose
/// `defaults.yml` is invalid.
pub fn run(opts: &Options) -> Result<Exit, Error> {
    let lib = Library::load(opts.playbooks.as_deref(), opts.templates.as_deref())?;
    let schema = crate::inventory::schema::json_schema(&lib.defaults);
    let mut text = serde_json::to_string_pretty(&schema)
        .map_err(|e| Error::io("writing the schema", std::io::Error::other(e)))?;
    text.push('\n');
    report::print(&text);
    Ok(Exit::Ok)
}
