//! `esker certs`: a private CA, a server certificate and client certificates, as PEM files, for
//! trying TLS out and for tests. Keys are ECDSA P-256 (PKCS#8); certificates have no expiry
//! worth worrying about (rcgen's defaults). Not a replacement for a real PKI.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// Why certificates could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen refused the parameters (e.g. an invalid host name).
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// The certificate concerned.
        what: String,
        /// The underlying error.
        source: rcgen::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct CertsRequest {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Subject alternative names of the server certificate, besides `localhost` and
    /// `127.0.0.1` (IP addresses and DNS names).
    pub hostnames: Vec<String>,
    /// Common names of the client certificates (`<name>.pem` / `<name>.key`).
    pub clients: Vec<String>,
    /// Common name of the CA.
    pub ca_name: String,
}

/// The files written, in order.
pub fn generate(req: &CertsRequest) -> Result<Vec<PathBuf>, CertsError> {
    let gen = |what: &str| {
        let what = what.to_string();
        move |source| CertsError::Generate { what, source }
    };
    std::fs::create_dir_all(&req.out).map_err(|source| CertsError::Write {
        path: req.out.display().to_string(),
        source,
    })?;
    let mut written = Vec::new();

    let ca_key = KeyPair::generate().map_err(gen("the CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen("the CA"))?;
    ca_params.distinguished_name = name(&req.ca_name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(gen("the CA"))?;
    write(&req.out, "ca.pem", &ca_cert.pem(), &mut written)?;
    write(&req.out, "ca.key", &ca_key.serialize_pem(), &mut written)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for h in &req.hostnames {
        if !sans.contains(h) {
            sans.push(h.clone());
        }
    }
    let server_key = KeyPair::generate().map_err(gen("the server key"))?;
    let mut params = CertificateParams::new(sans).map_err(gen("the server certificate"))?;
    let cn = req
        .hostnames
        .iter()
        .find(|h| h.parse::<std::net::IpAddr>().is_err())
        .map_or("localhost", |h| h.as_str());
    params.distinguished_name = name(cn);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&server_key, &issuer)
        .map_err(gen("the server certificate"))?;
    write(&req.out, "server.pem", &cert.pem(), &mut written)?;
    write(
        &req.out,
        "server.key",
        &server_key.serialize_pem(),
        &mut written,
    )?;

    for client in &req.clients {
        let what = format!("client certificate {client}");
        let key = KeyPair::generate().map_err(gen(&what))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen(&what))?;
        params.distinguished_name = name(client);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).map_err(gen(&what))?;
        let file = sanitize(client);
        write(&req.out, &format!("{file}.pem"), &cert.pem(), &mut written)?;
        write(
            &req.out,
            &format!("{file}.key"),
            &key.serialize_pem(),
            &mut written,
        )?;
    }
    Ok(written)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A file name for a client's common name (anything but `[A-Za-z0-9._-]` becomes `_`).
fn sanitize(cn: &str) -> String {
    cn.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn write(dir: &Path, file: &str, text: &str, written: &mut Vec<PathBuf>) -> Result<(), CertsError> {
    let path = dir.join(file);
    let res = if file.ends_with(".key") {
        write_private(&path, text)
    } else {
        std::fs::write(&path, text)
    };
    res.map_err(|source| CertsError::Write {
        path: path.display().to_string(),
        source,
    })?;
    written.push(path);
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_chain_with_client_subjects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(&CertsRequest {
            out: dir.path().to_path_buf(),
            hostnames: vec!["broker.example".into(), "10.0.0.7".into()],
            clients: vec!["alice".into(), "bob smith".into()],
            ca_name: "Esker test CA".into(),
        })
        .expect("generate");
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            names,
            [
                "ca.pem",
                "ca.key",
                "server.pem",
                "server.key",
                "alice.pem",
                "alice.key",
                "bob_smith.pem",
                "bob_smith.key"
            ]
        );
        let pem = std::fs::read(dir.path().join("alice.pem")).expect("read");
        let der = super::super::read_certs(&pem).expect("parse");
        assert_eq!(
            super::super::principal::subject_dn(&der[0]).expect("dn"),
            "CN=alice"
        );
        let server = std::fs::read(dir.path().join("server.pem")).expect("read");
        let der = super::super::read_certs(&server).expect("parse");
        let (_, cert) = x509_parser::parse_x509_certificate(&der[0]).expect("x509");
        let san = cert
            .subject_alternative_name()
            .expect("ext")
            .expect("has SANs");
        let text = format!("{:?}", san.value.general_names);
        for want in ["localhost", "broker.example", "127, 0, 0, 1", "10, 0, 0, 7"] {
            assert!(text.contains(want), "{want} missing from {text}");
        }
    }
}
