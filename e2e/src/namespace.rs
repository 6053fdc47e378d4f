//! One namespace per test, deleted afterwards even when the test panics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::wait::conditions;
use kube::{Client, Resource};

use crate::wait::wait_for;

/// Label put on every test namespace, so that leftovers can be found:
/// `kubectl delete namespace -l jobsmith.dev/e2e=true`.
pub const NAMESPACE_LABEL: &str = "jobsmith.dev/e2e";

/// A namespace of its own for one test. Created with a unique name (`e2e-<prefix>-<suffix>`),
/// ready once its `default` ServiceAccount exists (the ServiceAccount admission plugin rejects
/// pods before that). Deleted (background propagation) when dropped, also on panic; a panicking
/// test first prints the namespace's Jobs, Pods and Events. `E2E_KEEP_NAMESPACES=1` keeps them.
pub struct TestNamespace {
    client: Client,
    name: String,
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut x = (nanos as u64)
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64 finaliser: spreads the bits so the short suffix stays unique in practice.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:08x}", x & 0xFFFF_FFFF)
}

fn namespace_name(prefix: &str) -> String {
    // Lower-case alphanumerics, every other run of characters becomes one '-'.
    let mut clean = String::new();
    for c in prefix.chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
    }
    clean.truncate(40);
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        format!("e2e-{}", unique_suffix())
    } else {
        format!("e2e-{clean}-{}", unique_suffix())
    }
}

impl TestNamespace {
    /// Creates the namespace and waits (60 s at most) for its `default` ServiceAccount.
    pub async fn new(client: &Client, prefix: &str) -> Result<Self> {
        let name = namespace_name(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    NAMESPACE_LABEL.to_owned(),
                    "true".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        // From here on Drop cleans up, also when the wait below fails.
        let this = Self {
            client: client.clone(),
            name,
        };
        let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &this.name);
        wait_for(
            &accounts,
            "default",
            Duration::from_secs(60),
            conditions::is_created(),
        )
        .await
        .with_context(|| {
            format!(
                "serviceaccount/default in {} (is kube-controller-manager running?)",
                this.name
            )
        })?;
        Ok(this)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client the namespace was made with.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A typed API for a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    fn print_diagnostics(&self) {
        let output = std::process::Command::new(crate::kubectl::kubectl_program())
            .args([
                "get",
                "jobs,pods,events",
                "-n",
                &self.name,
                "-o",
                "wide",
                "--ignore-not-found",
            ])
            .output();
        if let Ok(output) = output {
            eprintln!(
                "---- namespace {} at the time of the failure ----\n{}{}",
                self.name,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_diagnostics();
        }
        if std::env::var("E2E_KEEP_NAMESPACES").is_ok_and(|v| v == "1") {
            eprintln!("E2E_KEEP_NAMESPACES=1: keeping namespace {}", self.name);
            return;
        }
        // The test's runtime may be shutting down (or be the thread we are on), so the delete
        // runs on a runtime of its own, with a client of its own, and we wait for it to be sent.
        let name = self.name.clone();
        let deleted = std::thread::spawn(move || -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = Client::try_default().await?;
                Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await?;
                Ok(())
            })
        })
        .join();
        match deleted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("deleting namespace {}: {e:#}", self.name),
            Err(_) => eprintln!(
                "deleting namespace {}: the deleting thread panicked",
                self.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_name;

    #[test]
    fn names_are_dns_labels_and_unique() {
        let a = namespace_name("Smoke_Job completes/with a very long prefix that goes on and on");
        let b = namespace_name("Smoke_Job completes/with a very long prefix that goes on and on");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-') && !n.contains("--"), "{n}");
        }
    }
}
