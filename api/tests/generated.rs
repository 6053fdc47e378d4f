//! The generated files (crds/, docs/reference/api.md) must match what the Rust types render.
//! `make generate` (JOBSMITH_UPDATE_GENERATED=1) rewrites them instead of comparing.

// Tests may panic on broken fixtures; the workspace lint is for production code.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn generated_files_are_up_to_date() {
    let update = std::env::var("JOBSMITH_UPDATE_GENERATED").is_ok_and(|v| v == "1");
    let files = jobsmith_api::crd::generate::try_rendered_files().expect("rendering succeeds");
    assert_eq!(files.len(), 6, "five CRDs and the reference");
    let mut stale = Vec::new();
    for (relative, content) in &files {
        let path = repo_root().join(relative);
        if update {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create parent directory");
            }
            std::fs::write(&path, content).expect("write generated file");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == *content => {}
            Ok(_) => stale.push(format!("{} differs", relative.display())),
            Err(error) => stale.push(format!("{} unreadable: {error}", relative.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale ({}); run: make generate",
        stale.join(", ")
    );
}
