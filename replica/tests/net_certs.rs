//! Certificate generation and identity loading.

use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::net::certs::{add_client_cert, generate_cluster_certs, CertError};
use replica::net::tls::first_dns_name;
use replica::net::{TlsError, TlsIdentity};
use replica::types::NodeId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

mod net_support;
use net_support::*;

fn dns_name(path: &Path) -> Option<String> {
    let der = CertificateDer::from_pem_file(path).unwrap();
    first_dns_name(der.as_ref())
}

#[test]
fn cluster_certificates_carry_the_expected_names() {
    let dir = tempfile::tempdir().unwrap();
    generate_cluster_certs(
        dir.path(),
        &[NodeId(1), NodeId(2)],
        &["client", "harness-3"],
    )
    .unwrap();
    for (file, name) in [
        ("n1.pem", "n1"),
        ("n2.pem", "n2"),
        ("client.pem", "client"),
        ("harness-3.pem", "harness-3"),
    ] {
        assert_eq!(dns_name(&dir.path().join(file)).as_deref(), Some(name));
    }
    for key in ["ca.key", "n1.key", "client.key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} must not be readable by others");
    }
}

#[test]
fn client_names_that_could_pose_as_nodes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["n1", "", "a b", "-x", "é"] {
        let err = generate_cluster_certs(dir.path(), &[NodeId(1)], &[bad]).unwrap_err();
        assert!(matches!(err, CertError::BadClientName(_)), "{bad:?}: {err}");
    }
}

#[test]
fn loading_errors_name_the_file() {
    let certs = Certs::new();
    let missing = certs.path("nope.pem");
    let err =
        TlsIdentity::load(&certs.path("ca.pem"), &missing, &certs.path("n1.key")).unwrap_err();
    assert!(err.to_string().contains("nope.pem"), "{err}");
    // A key file where a certificate is expected, and vice versa.
    let err = TlsIdentity::load(
        &certs.path("ca.pem"),
        &certs.path("n1.key"),
        &certs.path("n1.key"),
    )
    .unwrap_err();
    assert!(
        matches!(err, TlsError::Pem { .. } | TlsError::Missing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("n1.key"), "{err}");
    let err = TlsIdentity::load(
        &certs.path("ca.pem"),
        &certs.path("n1.pem"),
        &certs.path("n1.pem"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("n1.pem") && err.to_string().contains("private key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_added_later_is_trusted() {
    let certs = Certs::new();
    add_client_cert(certs.dir.path(), "late").unwrap();
    let addrs = [free_addr()];
    let (_network, mut incoming) = start_node(&certs, 1, &addrs).await;
    tokio::spawn(async move {
        while let Some(call) = incoming.client_rx.recv().await {
            let _ = call
                .respond
                .send(ClientResponse::Overloaded { node: NodeId(1) });
        }
    });
    let client = Client::new(
        &certs.config(&addrs),
        &certs.path("late.pem"),
        &certs.path("late.key"),
    )
    .unwrap();
    let response = client
        .call(NodeId(1), &ClientRequest::Status, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(response, ClientResponse::Overloaded { node: NodeId(1) });
}
