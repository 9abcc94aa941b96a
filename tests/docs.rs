//! The documentation holds what it promises (issue 28): README stays a front page (under
//! 300 lines), its inventory example validates, the book lists every page it has, and the
//! book's schema page is the one `docs/schema-reference.py` makes from the committed schema.
//! The book's build and link check are CI's (`.ci/run`: mdBook, lychee).

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn readme_is_a_front_page_under_300_lines() {
    let n = read("README.md").lines().count();
    assert!(n < 300, "README.md has {n} lines: move detail into docs/");
}

#[test]
fn the_readmes_inventory_example_validates() {
    let readme = read("README.md");
    let start = readme.find("```yaml\n").expect("a yaml example in README") + 8;
    let end = start + readme[start..].find("```").expect("its end");
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("inventory.yml");
    std::fs::write(&inv, &readme[start..end]).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_dbfleet"))
        .arg("validate")
        .arg("-i")
        .arg(&inv)
        .env("SHOP_APP_PASSWORD", "not-a-real-password")
        .output()
        .expect("run dbfleet");
    assert!(
        o.status.success(),
        "README's example does not validate:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_book_lists_every_page_and_every_listed_page_exists() {
    let summary = read("docs/src/SUMMARY.md");
    let listed: Vec<String> = summary
        .split("](")
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .map(str::to_string)
        .collect();
    for page in &listed {
        assert!(
            repo().join("docs/src").join(page).is_file(),
            "SUMMARY.md lists {page}, which does not exist"
        );
    }
    for entry in std::fs::read_dir(repo().join("docs/src")).expect("docs/src") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if name.ends_with(".md") && name != "SUMMARY.md" {
            assert!(
                listed.contains(&name),
                "docs/src/{name} is not in SUMMARY.md"
            );
        }
    }
}

#[test]
fn the_schema_page_is_made_from_the_committed_schema() {
    let o = Command::new("python3")
        .arg(repo().join("docs/schema-reference.py"))
        .stdin(std::fs::File::open(repo().join("dbfleet.schema.json")).expect("schema"))
        .output()
        .expect("python3 docs/schema-reference.py");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        read("docs/src/inventory-schema.md"),
        "docs/src/inventory-schema.md is out of date: python3 docs/schema-reference.py < dbfleet.schema.json > docs/src/inventory-schema.md"
    );
}

#[test]
fn the_readmes_links_to_files_point_at_files() {
    let readme = read("README.md");
    for link in readme
        .split("](")
        .skip(1)
        .filter_map(|s| s.split(')').next())
    {
        if link.starts_with("http") || link.starts_with('#') {
            continue;
        }
        let path = link.split('#').next().unwrap_or(link);
        assert!(
            repo().join(path).exists(),
            "README links to {link}, which does not exist"
        );
    }
}
