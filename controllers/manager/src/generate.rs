//! `jobsmith generate` and `jobsmith crd`: thin I/O around `jobsmith_api::crd::generate`, which renders
//! every generated file as a pure function.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Render(#[from] jobsmith_api::crd::generate::GenerateError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

impl GenerateError {
    pub fn category(&self) -> &'static str {
        match self {
            GenerateError::Render(_) => "render",
            GenerateError::Write { .. } => "write",
            GenerateError::Stdout(_) => "stdout",
        }
    }
}

/// Every generated file, `(path relative to the repository root, content)`.
fn rendered_files() -> Result<Vec<(PathBuf, String)>, GenerateError> {
    Ok(jobsmith_api::crd::generate::try_rendered_files()?)
}

/// Writes every generated file under `repo_root`; returns the paths written.
pub fn write_all(repo_root: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    let mut written = Vec::new();
    for (relative, content) in rendered_files()? {
        let path = repo_root.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| GenerateError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, content).map_err(|source| GenerateError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// The CRD files (`crds/*.yaml`) as one multi-document YAML stream.
pub fn crd_stream() -> Result<String, GenerateError> {
    let crds: Vec<String> = rendered_files()?
        .into_iter()
        .filter(|(path, _)| {
            path.parent() == Some(Path::new("crds"))
                && path.extension().is_some_and(|e| e == "yaml")
        })
        .map(|(_, content)| content)
        .collect();
    let mut out = String::new();
    for (i, doc) in crds.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn print_crds() -> Result<(), GenerateError> {
    let stream = crd_stream()?;
    std::io::stdout()
        .lock()
        .write_all(stream.as_bytes())
        .map_err(GenerateError::Stdout)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failing test may panic
mod tests {
    use super::*;

    #[test]
    fn crd_stream_holds_the_five_crds() {
        let stream = crd_stream().unwrap();
        let docs: Vec<_> = stream.split("\n---\n").collect();
        assert_eq!(docs.len(), 5, "{stream}");
        for kind in [
            "ManagedJob",
            "JobFlow",
            "DaemonJob",
            "JobTemplate",
            "JobRun",
        ] {
            assert!(stream.contains(&format!("kind: {kind}")), "missing {kind}");
        }
        // Parses as YAML documents.
        for doc in docs {
            let value: serde_yaml::Value = serde_yaml::from_str(doc).unwrap();
            assert_eq!(value["kind"], "CustomResourceDefinition");
        }
    }

    #[test]
    fn generate_writes_every_file_under_the_root() {
        let root = std::env::temp_dir().join(format!("jobsmith-generate-{}", std::process::id()));
        let written = write_all(&root).unwrap();
        assert!(
            written.iter().any(|p| p.ends_with("crds/managedjob.yaml")),
            "{written:?}"
        );
        for path in &written {
            assert!(path.starts_with(&root));
            assert!(!std::fs::read_to_string(path).unwrap().is_empty());
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
