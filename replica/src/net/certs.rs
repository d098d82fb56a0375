//! Certificate generation for a cluster: one CA, a certificate per node and per client.
//!
//! Identity in faultline comes only from certificates: a peer's address may be a relay, so a
//! replica learns who is talking, and in which role, from the verified certificate. Every leaf
//! carries its role as a URI subject alternative name (read back by
//! [`super::tls::cert_role`]):
//!
//! - a replica: `faultline:replica:n1`, the DNS names `n1` and `localhost` and 127.0.0.1 (so
//!   tools can connect by address), and both server and client authentication, because a
//!   replica both accepts and opens connections;
//! - a client: `faultline:clients:<first>-<last>`, the client ids it may submit under (the
//!   harness drives many clients over shared connections, so one certificate names a range),
//!   its own DNS name (for logs; never a node id), and client authentication only;
//! - an operator: `faultline:operator:<first>-<last>`, a client that may also read a
//!   replica's state (print-db, print-log, fetch-executed). The cluster's own client
//!   certificate (`client.pem`, used by `replica ctl` and the harness) is an operator; a plain
//!   client certificate is refused those requests.
//!
//! The CA's private key is never written beside the certificates: a running replica does not
//! need it, and whoever can read it can mint replicas. By default it is discarded once the
//! cluster's certificates are signed; an operator who wants to add clients later names a file
//! for it elsewhere ([`generate_cluster`]'s `ca_key_out`).

use crate::types::{ClientIdRange, NodeId};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot generate a certificate for {name}: {cause}")]
    Generate { name: String, cause: rcgen::Error },
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot load the CA from {path}: {cause}")]
    LoadCa { path: PathBuf, cause: rcgen::Error },
    #[error("bad client name {0:?}: use 1-63 letters, digits or '-', not a node id like n1")]
    BadClientName(String),
    #[error("refusing to write the CA key {path} next to the certificates in {dir}")]
    CaKeyBesideCerts { path: PathBuf, dir: PathBuf },
}

/// The URI prefix of a replica certificate's role (`faultline:replica:n1`).
pub const REPLICA_ROLE_PREFIX: &str = "faultline:replica:";
/// The URI prefix of a client certificate's role (`faultline:clients:0-99`).
pub const CLIENT_ROLE_PREFIX: &str = "faultline:clients:";
/// The URI prefix of an operator certificate's role (`faultline:operator:0-99`).
pub const OPERATOR_ROLE_PREFIX: &str = "faultline:operator:";

/// One client certificate to make: its file stem (and DNS name) and the client ids it may use.
#[derive(Clone, Debug)]
pub struct ClientCert {
    pub name: String,
    pub ids: ClientIdRange,
    /// May also read a replica's state (print-db, print-log, fetch-executed).
    pub operator: bool,
}

impl ClientCert {
    /// A plain client: submits commands, nothing more.
    pub fn new(name: &str, ids: ClientIdRange) -> ClientCert {
        ClientCert {
            name: name.to_string(),
            ids,
            operator: false,
        }
    }

    /// An operator: a client that may also read a replica's state.
    pub fn operator(name: &str, ids: ClientIdRange) -> ClientCert {
        ClientCert {
            operator: true,
            ..ClientCert::new(name, ids)
        }
    }
}

/// A CA able to sign leaf certificates.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// Writes `ca.pem`, `<node>.pem`/`<node>.key` for every node and `<client>.pem`/`<client>.key`
/// for every client (each a plain client allowed [`ClientIdRange::DEFAULT`]) into `out_dir`;
/// the CA key is discarded.
pub fn generate_cluster_certs(
    out_dir: &Path,
    nodes: &[NodeId],
    clients: &[&str],
) -> Result<(), CertError> {
    let clients: Vec<ClientCert> = clients
        .iter()
        .map(|name| ClientCert::new(name, ClientIdRange::DEFAULT))
        .collect();
    generate_cluster(out_dir, nodes, &clients, None)
}

/// Writes `ca.pem` and a certificate and key per node and per client into `out_dir` (created
/// if needed). The CA key goes to `ca_key_out` if given (never inside `out_dir`), else nowhere.
pub fn generate_cluster(
    out_dir: &Path,
    nodes: &[NodeId],
    clients: &[ClientCert],
    ca_key_out: Option<&Path>,
) -> Result<(), CertError> {
    for client in clients {
        check_client_name(&client.name)?;
    }
    if let Some(path) = ca_key_out {
        check_ca_key_path(out_dir, path)?;
    }
    create_dir(out_dir)?;
    let ca = new_ca("faultline CA")?;
    write_file(&out_dir.join("ca.pem"), ca.cert.pem().as_bytes(), false)?;
    if let Some(path) = ca_key_out {
        write_file(path, ca.key.serialize_pem().as_bytes(), true)?;
    }
    for node in nodes {
        let name = node.to_string();
        let (cert, key) = node_cert(&ca, *node)?;
        write_pair(out_dir, &name, &cert, &key)?;
    }
    for client in clients {
        let (cert, key) = client_cert(&ca, client)?;
        write_pair(out_dir, &client.name, &cert, &key)?;
    }
    Ok(())
}

/// Adds `<name>.pem`/`<name>.key` to `out_dir`, signed by the CA whose certificate is
/// `out_dir/ca.pem` and whose key is `ca_key` (kept elsewhere, see the module docs).
pub fn add_client_cert(
    out_dir: &Path,
    ca_key: &Path,
    client: &ClientCert,
) -> Result<(), CertError> {
    check_client_name(&client.name)?;
    let ca = load_ca(&out_dir.join("ca.pem"), ca_key)?;
    let (cert, key) = client_cert(&ca, client)?;
    write_pair(out_dir, &client.name, &cert, &key)
}

/// For tests: writes `<name>.pem`/`<name>.key` signed by a fresh CA that no cluster trusts
/// (its certificate goes to `<name>-ca.pem`).
pub fn generate_foreign_client_cert(out_dir: &Path, name: &str) -> Result<(), CertError> {
    check_client_name(name)?;
    create_dir(out_dir)?;
    let ca = new_ca("untrusted CA")?;
    let (cert, key) = client_cert(&ca, &ClientCert::new(name, ClientIdRange::DEFAULT))?;
    write_file(
        &out_dir.join(format!("{name}-ca.pem")),
        ca.cert.pem().as_bytes(),
        false,
    )?;
    write_pair(out_dir, name, &cert, &key)
}

fn check_client_name(name: &str) -> Result<(), CertError> {
    let well_formed = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-');
    if !well_formed || name.parse::<NodeId>().is_ok() {
        return Err(CertError::BadClientName(name.to_string()));
    }
    Ok(())
}

/// `path` made absolute with every symlink and `..` resolved, even where it does not exist
/// yet: its longest existing ancestor is canonicalised, the rest (no symlinks there) is
/// normalised by hand. For comparing where a file will really land.
pub fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let base = loop {
        if let Ok(real) = existing.canonicalize() {
            break real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last.as_os_str().to_owned());
                existing = parent;
            }
            // The root: nothing left to strip.
            _ => break existing.to_path_buf(),
        }
    };
    let mut out = base;
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            Some(_) => out.push(part),
        }
    }
    out
}

/// The CA key must not land in the certificate directory, which every replica reads.
fn check_ca_key_path(out_dir: &Path, key: &Path) -> Result<(), CertError> {
    let (dir, key_abs) = (resolved(out_dir), resolved(key));
    if key_abs.starts_with(&dir) {
        return Err(CertError::CaKeyBesideCerts {
            path: key.to_path_buf(),
            dir: out_dir.to_path_buf(),
        });
    }
    Ok(())
}

fn generate_error(name: &str) -> impl FnOnce(rcgen::Error) -> CertError + '_ {
    move |source| CertError::Generate {
        name: name.to_string(),
        cause: source,
    }
}

/// How long a new CA certificate is valid: rotate the cluster (`replica init` anew, or a new
/// CA with `replica certs`) before it ends.
pub const CA_LIFETIME_DAYS: i64 = 10 * 365;
/// How long a new node or client certificate is valid: sign a new one before it ends.
pub const LEAF_LIFETIME_DAYS: i64 = 365;

/// Valid from a day ago (clocks disagree a little) for `days` days.
fn set_lifetime(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

fn new_ca(common_name: &str) -> Result<Ca, CertError> {
    let mut params =
        CertificateParams::new(Vec::<String>::new()).map_err(generate_error(common_name))?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    set_lifetime(&mut params, CA_LIFETIME_DAYS);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(generate_error(common_name))?;
    let cert = params
        .self_signed(&key)
        .map_err(generate_error(common_name))?;
    Ok(Ca { cert, key })
}

fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Ca, CertError> {
    let cert_pem = read_file(cert_path)?;
    let key_pem = read_file(key_path)?;
    let load = |path: &Path| {
        let path = path.to_path_buf();
        move |cause| CertError::LoadCa { path, cause }
    };
    let key = KeyPair::from_pem(&key_pem).map_err(load(key_path))?;
    let params = CertificateParams::from_ca_cert_pem(&cert_pem).map_err(load(cert_path))?;
    // Re-signing the parsed parameters with the same key reproduces the issuer name and key
    // identifier, which is all that signing a leaf needs.
    let cert = params.self_signed(&key).map_err(load(cert_path))?;
    Ok(Ca { cert, key })
}

fn leaf_params(
    name: &str,
    sans: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::new(sans).map_err(generate_error(name))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    set_lifetime(&mut params, LEAF_LIFETIME_DAYS);
    Ok(params)
}

fn node_cert(ca: &Ca, node: NodeId) -> Result<(Certificate, KeyPair), CertError> {
    let name = node.to_string();
    let usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let mut params = leaf_params(&name, vec![name.clone(), "localhost".to_string()], usages)?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    push_role(&mut params, &name, format!("{REPLICA_ROLE_PREFIX}{node}"))?;
    sign(ca, &name, params)
}

fn client_cert(ca: &Ca, client: &ClientCert) -> Result<(Certificate, KeyPair), CertError> {
    let name = client.name.as_str();
    let mut params = leaf_params(
        name,
        vec![name.to_string()],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    let prefix = if client.operator {
        OPERATOR_ROLE_PREFIX
    } else {
        CLIENT_ROLE_PREFIX
    };
    push_role(&mut params, name, format!("{prefix}{}", client.ids))?;
    sign(ca, name, params)
}

fn push_role(params: &mut CertificateParams, name: &str, uri: String) -> Result<(), CertError> {
    let uri = uri.try_into().map_err(generate_error(name))?;
    params.subject_alt_names.push(SanType::URI(uri));
    Ok(())
}

fn sign(
    ca: &Ca,
    name: &str,
    params: CertificateParams,
) -> Result<(Certificate, KeyPair), CertError> {
    let key = KeyPair::generate().map_err(generate_error(name))?;
    let cert = params
        .signed_by(&key, &ca.cert, &ca.key)
        .map_err(generate_error(name))?;
    Ok((cert, key))
}

fn write_pair(dir: &Path, stem: &str, cert: &Certificate, key: &KeyPair) -> Result<(), CertError> {
    write_file(
        &dir.join(format!("{stem}.pem")),
        cert.pem().as_bytes(),
        false,
    )?;
    write_file(
        &dir.join(format!("{stem}.key")),
        key.serialize_pem().as_bytes(),
        true,
    )
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        cause: source,
    })
}

fn read_file(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        cause: source,
    })
}

/// Writes a file; private keys are created readable by the owner only.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(bytes).map_err(err)
}
