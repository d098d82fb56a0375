//! Certificate generation and identity loading.

use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::net::certs::{add_client_cert, generate_cluster_certs, CertError, ClientCert};
use replica::net::tls::{cert_role, first_dns_name, CertRole};
use replica::net::{TlsError, TlsIdentity};
use replica::types::{ClientIdRange, NodeId};
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
    assert!(
        !dir.path().join("ca.key").exists(),
        "the CA key never sits beside the certificates"
    );
    for key in ["n1.key", "client.key"] {
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
    for bad in ["n1", "n12", "", "a b", "-x", "é"] {
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
    let late = ClientCert::new("late", ClientIdRange::DEFAULT);
    add_client_cert(certs.dir.path(), &certs.ca_key(), &late).unwrap();
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

fn role_of(path: &Path) -> Option<CertRole> {
    let der = CertificateDer::from_pem_file(path).unwrap();
    cert_role(der.as_ref())
}

#[test]
fn certificates_state_their_role() {
    let certs = Certs::new();
    assert_eq!(
        role_of(&certs.path("n2.pem")),
        Some(CertRole::Replica(NodeId(2)))
    );
    assert_eq!(
        role_of(&certs.path("alice.pem")),
        Some(CertRole::Client(ids(100, 199)))
    );
    assert_eq!(
        role_of(&certs.path("client.pem")),
        Some(CertRole::Operator(ClientIdRange::DEFAULT))
    );
}

#[test]
fn forged_roles_are_not_replicas() {
    let certs = Certs::new();
    let cases: [(&str, &[&str], bool, &[&str]); 6] = [
        // A client certificate carrying a node's name: no role at all.
        ("named-n2", &["n2"], false, &[]),
        // A replica role without server authentication.
        ("no-server-auth", &["n2"], false, &["faultline:replica:n2"]),
        // A replica role whose DNS name is another node.
        ("wrong-name", &["n3"], true, &["faultline:replica:n2"]),
        // A lenient spelling of a node id.
        ("padded", &["n02"], true, &["faultline:replica:n02"]),
        // Two roles at once.
        (
            "both",
            &["n2"],
            true,
            &["faultline:replica:n2", "faultline:clients:0-9"],
        ),
        // A malformed client range.
        ("bad-range", &["x"], false, &["faultline:clients:9-0"]),
    ];
    for (name, dns, server_auth, uris) in cases {
        certs.forge(name, dns, server_auth, uris);
        assert_eq!(role_of(&certs.path(&format!("{name}.pem"))), None, "{name}");
    }
}

#[test]
fn the_ca_key_is_never_written_beside_the_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("ca.key");
    let err = replica::net::certs::generate_cluster(dir.path(), &[NodeId(1)], &[], Some(&inside))
        .unwrap_err();
    assert!(matches!(err, CertError::CaKeyBesideCerts { .. }), "{err}");
}

/// Issue 21, item 6: new certificates have a bounded lifetime (a year for nodes and clients,
/// ten for the CA), not 1975 to 4096.
#[test]
fn new_certificates_live_a_year_and_the_ca_ten() {
    let dir = tempfile::tempdir().unwrap();
    replica::net::certs::generate_cluster_certs(dir.path(), &[NodeId(1)], &["client"]).unwrap();
    let days_left = |file: &str| {
        let pem = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let params = rcgen::CertificateParams::from_ca_cert_pem(&pem).unwrap();
        let now = time::OffsetDateTime::now_utc();
        assert!(params.not_before <= now, "{file} is valid now");
        (params.not_after - now).whole_days()
    };
    for leaf in ["n1.pem", "client.pem"] {
        let days = days_left(leaf);
        assert!((360..=366).contains(&days), "{leaf}: {days} days");
    }
    let ca = days_left("ca.pem");
    assert!((3640..=3651).contains(&ca), "ca: {ca} days");
}
