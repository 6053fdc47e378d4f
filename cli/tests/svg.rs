//! `graph --format svg`: Graphviz `dot` lays the DOT out, and a real SVG renderer
//! (`rsvg-convert`, librsvg) turns the result into a PNG. Both tools come from `make setup`.
//!
//! Also keeps the pictures of `docs/plugin.md` fresh: the tree capture and the graph of the
//! parallel-demo sample (`docs/plugin/parallel-demo.{tree,dot,svg}`). The DOT and the tree are
//! compared byte for byte; the SVG is rewritten with them (`make generate`), since its bytes
//! depend on the Graphviz version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use jobsmith_cli::kinds::RunKind;
use jobsmith_cli::model::Run;
use jobsmith_cli::render::tree::{self, ExtraPhases};
use jobsmith_cli::{commands, render::graph};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(name: &str) -> Run {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata")
        .join(name);
    let value: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let kind = value["kind"]
        .as_str()
        .and_then(RunKind::from_alias)
        .unwrap();
    Run::from_value(kind, value)
}

/// Converts an SVG file to PNG with rsvg-convert; returns the PNG's width and height.
fn render_png(svg: &Path, png: &Path) -> (u32, u32) {
    let output = Command::new("rsvg-convert")
        .arg(svg)
        .arg("-o")
        .arg(png)
        .output()
        .expect("rsvg-convert (librsvg2-bin) is needed: run `make setup`");
    assert!(
        output.status.success(),
        "rsvg-convert failed on {}: {}",
        svg.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let bytes = std::fs::read(png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height, big-endian, at bytes 16..24.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

#[tokio::test]
async fn svg_of_each_kind_renders_to_png() {
    let dir = tempfile::tempdir().unwrap();
    for (input, nodes) in [
        ("parallel-demo-succeeded.yaml", 5),
        ("dependency-status-failed.yaml", 5),
        ("jobflow-running.yaml", 5),
        ("daemonjob-running.yaml", 3),
        ("jobrun-succeeded.yaml", 1),
    ] {
        let run = load(input);
        let plan = run.plan().unwrap();
        let svg = commands::svg(&graph::dot(&run, plan.as_ref()).unwrap())
            .await
            .expect("Graphviz dot is needed: run `make setup`");
        assert!(svg.contains("<svg"), "{input}: not an SVG");
        // Every step is drawn (Graphviz writes one <g class="node"> per node).
        assert_eq!(svg.matches("class=\"node\"").count(), nodes, "{input}");
        let svg_path = dir.path().join(format!("{input}.svg"));
        std::fs::write(&svg_path, &svg).unwrap();
        let (width, height) = render_png(&svg_path, &dir.path().join(format!("{input}.png")));
        assert!(width > 50 && height > 20, "{input}: {width}x{height}");
    }
}

#[tokio::test]
async fn docs_pictures_are_fresh() {
    let run = load("parallel-demo-succeeded.yaml");
    let plan = run.plan().unwrap();
    let dot = graph::dot(&run, plan.as_ref()).unwrap();
    let root = tree::build(&run, plan.as_ref(), &ExtraPhases::new()).unwrap();
    let tree_text = tree::render(&root, false);
    let docs = repo().join("docs/plugin");
    let (dot_path, svg_path, tree_path) = (
        docs.join("parallel-demo.dot"),
        docs.join("parallel-demo.svg"),
        docs.join("parallel-demo.tree"),
    );
    if std::env::var("JOBSMITH_UPDATE_GENERATED").as_deref() == Ok("1") {
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(&dot_path, &dot).unwrap();
        std::fs::write(&tree_path, &tree_text).unwrap();
        std::fs::write(&svg_path, commands::svg(&dot).await.unwrap()).unwrap();
    }
    let stale = "stale: run `make generate`";
    assert_eq!(std::fs::read_to_string(&dot_path).unwrap(), dot, "{stale}");
    assert_eq!(
        std::fs::read_to_string(&tree_path).unwrap(),
        tree_text,
        "{stale}"
    );
    let doc = std::fs::read_to_string(repo().join("docs/plugin.md")).unwrap();
    assert!(
        doc.contains(&tree_text),
        "docs/plugin.md must show docs/plugin/parallel-demo.tree verbatim"
    );
    let dir = tempfile::tempdir().unwrap();
    let (width, height) = render_png(&svg_path, &dir.path().join("docs.png"));
    assert!(width > 50 && height > 20);
}
