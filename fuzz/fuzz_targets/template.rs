//! Fuzzes the template renderer: the input replaces one built-in template (limits.conf.j2,
//! rendered for every database host) and the lab inventory is loaded offline, so the
//! template sees real contexts. A finding is a panic, a hang (fuel must end every render)
//! or a runaway allocation.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

fn templates() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("dbfleet-fuzz-templates-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("templates folder");
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates");
        for e in std::fs::read_dir(src).expect("templates") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, dir.join(p.file_name().expect("name"))).expect("copy");
        }
        dir
    })
}

fn lab() -> &'static str {
    static LAB: OnceLock<String> = OnceLock::new();
    LAB.get_or_init(|| {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../inventories/lab.yml"
        ))
        .expect("lab inventory")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = templates();
    std::fs::write(dir.join("limits.conf.j2"), text).expect("write template");
    common::load_and_render(lab(), Some(dir.clone()));
});
