//! Waiting for a CRD before watching its kind (a fresh install applies CRDs and the manager
//! together).

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Resource,
    runtime::wait::{await_condition, conditions},
};

use crate::shutdown::Shutdown;

/// Waits until the kind's CRD is Established (STYLE 12). `false` on shutdown.
pub async fn wait_crd_established<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    shutdown: &Shutdown,
) -> bool {
    let name = format!("{}.{}", K::plural(&()), K::group(&()));
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let established = tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        );
        tokio::select! {
            result = established => match result {
                Ok(Ok(_)) => {
                    tracing::info!(crd = %name, "CRD established");
                    return true;
                }
                Ok(Err(error)) => {
                    tracing::warn!(crd = %name, %error, "cannot watch the CRD; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                        () = &mut stop => return false,
                    }
                }
                Err(_) => tracing::info!(crd = %name, "still waiting for the CRD to be established"),
            },
            () = &mut stop => return false,
        }
    }
}
