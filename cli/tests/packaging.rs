//! The krew manifest template (`deploy/krew/jobsmith.yaml.tmpl`) is a valid krew Plugin once its
//! placeholders are filled in, and names the binary this crate builds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

#[test]
fn krew_manifest_template_fills_into_a_plugin_manifest() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/krew/jobsmith.yaml.tmpl");
    let template = std::fs::read_to_string(path).unwrap();
    let mut filled = template.replace("__VERSION__", env!("CARGO_PKG_VERSION"));
    for platform in ["LINUX_AMD64", "LINUX_ARM64", "DARWIN_ARM64"] {
        filled = filled
            .replace(
                &format!("__URI_{platform}__"),
                &format!("https://example.invalid/kubectl-jobsmith-{platform}.tar.gz"),
            )
            .replace(&format!("__SHA256_{platform}__"), &"0".repeat(64));
    }
    assert!(!filled.contains("__"), "a placeholder is left:\n{filled}");
    let manifest: serde_yaml::Value = serde_yaml::from_str(&filled).unwrap();
    assert_eq!(
        manifest["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "jobsmith");
    assert_eq!(
        manifest["spec"]["version"].as_str().unwrap(),
        format!("v{}", env!("CARGO_PKG_VERSION"))
    );
    let platforms = manifest["spec"]["platforms"].as_sequence().unwrap();
    assert_eq!(platforms.len(), 3);
    for platform in platforms {
        assert_eq!(platform["bin"], "kubectl-jobsmith");
        assert_eq!(platform["sha256"].as_str().unwrap().len(), 64);
        assert_eq!(platform["files"][0]["from"], "kubectl-jobsmith");
    }
}
