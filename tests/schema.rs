//! `dbfleet schema` (issue 28, must-show 3): its output is a draft-07 JSON Schema that a
//! real validator (the `jsonschema` crate) compiles; the lab's inventory and every good
//! fixture validate against it, and the mistakes an editor should flag as they are typed (a
//! misspelt key, an unknown variable or role, a value not of its variable's type) are
//! flagged at their path. The schema is never stricter than `validate`: an inventory setting
//! every variable to its own default passes.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

fn schema() -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .arg("schema")
        .output()
        .expect("run dbfleet");
    assert!(
        o.status.success(),
        "dbfleet schema failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("the schema is JSON")
}

fn validator() -> jsonschema::Validator {
    let s = schema();
    assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(
        jsonschema::meta::is_valid(&s),
        "the schema is not a valid JSON Schema"
    );
    jsonschema::draft7::new(&s).expect("the schema compiles")
}

fn yaml(path: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&p).expect("read the inventory");
    serde_saphyr::from_str(&text).expect("YAML")
}

/// Each error the validator reports: (instance path, message).
fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<(String, String)> {
    v.iter_errors(instance)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}

#[test]
fn the_lab_inventory_and_the_good_fixtures_validate() {
    let v = validator();
    let mut files = vec!["inventories/lab.yml".to_string()];
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good"))
        .expect("fixtures")
    {
        let name = e.expect("entry").file_name().to_string_lossy().to_string();
        files.push(format!("tests/fixtures/good/{name}"));
    }
    assert!(files.len() > 3, "{files:?}");
    for f in &files {
        let errs = errors(&v, &yaml(f));
        assert!(errs.is_empty(), "{f}: {errs:?}");
    }
}

#[test]
fn a_misspelt_key_is_flagged_at_its_path() {
    let v = validator();
    let mut lab = yaml("inventories/lab.yml");
    let db1 = lab["hosts"]["db1"].as_object_mut().expect("db1");
    let address = db1.remove("address").expect("address");
    db1.insert("adress".into(), address);
    let errs = errors(&v, &lab);
    assert!(
        errs.iter()
            .any(|(at, m)| at == "/hosts/db1" && m.contains("adress")),
        "{errs:?}"
    );
    // The fixture `validate` refuses for the same typo.
    let errs = errors(&v, &yaml("tests/fixtures/bad/unknown_key.yml"));
    assert!(errs.iter().any(|(_, m)| m.contains("adress")), "{errs:?}");
}

#[test]
fn unknown_variables_roles_and_values_not_of_their_type_are_flagged() {
    let v = validator();
    let errs = errors(&v, &yaml("tests/fixtures/bad/unknown_variable.yml"));
    assert!(
        errs.iter()
            .any(|(at, m)| at == "/fleet/vars" && m.contains("innodb_bufer_pool_size")),
        "{errs:?}"
    );
    let errs = errors(&v, &yaml("tests/fixtures/bad/unknown_role.yml"));
    assert!(
        errs.iter().any(|(at, _)| at == "/hosts/db2/roles/0"),
        "{errs:?}"
    );
    let errs = errors(&v, &yaml("tests/fixtures/bad/wrong_type.yml"));
    assert!(
        errs.iter().any(|(at, _)| at == "/hosts/db1/server_id"),
        "{errs:?}"
    );
    let errs = errors(&v, &yaml("tests/fixtures/bad/variable_types.yml"));
    let at: Vec<&str> = errs.iter().map(|(at, _)| at.as_str()).collect();
    for bad in [
        "/fleet/vars/max_connections",
        "/fleet/vars/innodb_buffer_pool_size",
        "/fleet/vars/semi_sync",
        "/fleet/vars/binlog_format",
        "/hosts/db1/vars/bind_address",
        "/hosts/db1/vars/proxy_vip",
        "/hosts/db1/vars/semi_sync_timeout_ms",
    ] {
        assert!(at.contains(&bad), "{bad} not flagged: {errs:?}");
    }
}

#[test]
fn every_default_and_every_case_of_an_enumeration_passes() {
    let v = validator();
    let s = schema();
    let vars = s["definitions"]["Vars"]["properties"]
        .as_object()
        .expect("variables");
    assert!(vars.len() > 50, "{}", vars.len());
    let defaults: serde_json::Map<String, Value> = vars
        .iter()
        .map(|(k, p)| (k.clone(), p["default"].clone()))
        .collect();
    let mut lab = yaml("inventories/lab.yml");
    lab["fleet"]["vars"] = Value::Object(defaults);
    let errs = errors(&v, &lab);
    assert!(errs.is_empty(), "{errs:?}");
    // `validate` matches an enumeration without regard to case.
    lab["fleet"]["vars"] = json!({"binlog_format": "row", "innodb_flush_log_at_trx_commit": 2});
    let errs = errors(&v, &lab);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn the_committed_schema_is_the_commands_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dbfleet.schema.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dbfleet.schema.json"))
            .expect("JSON");
    assert!(
        committed == schema(),
        "dbfleet.schema.json is not `dbfleet schema`'s output: run `cargo run -q -- schema > dbfleet.schema.json`"
    );
    // The lab's inventory points editors at it.
    let lab =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("inventories/lab.yml"))
            .expect("lab.yml");
    assert!(lab.starts_with("# yaml-language-server: $schema=../dbfleet.schema.json\n"));
}
