//! What both targets share: an offline engine load (no host, no secret source, no state
//! written) and the diagnostic rendered as an operator would see it, since miette's
//! renderer is where a panic once hid (issue 11: an error past column 65,535).

use std::path::PathBuf;

/// Loads `inventory` (text) offline with `templates` (a folder) and renders any error.
pub fn load_and_render(inventory: &str, templates: Option<PathBuf>) {
    let opts = dbfleet::engine::Options {
        inventory: PathBuf::from("/nonexistent/dbfleet-fuzz/inventory.yml"),
        playbooks: None,
        templates,
        limit: None,
        tags: None,
        forks: 1,
        offline: true,
        connect_timeout: std::time::Duration::from_secs(1),
        inventory_text: Some(inventory.to_string()),
        seed_from_backup: false,
    };
    if let Err(e) = dbfleet::engine::Engine::load(opts) {
        let mut out = String::new();
        let _ = miette::GraphicalReportHandler::new()
            .with_width(100)
            .render_report(&mut out, &e);
    }
}
