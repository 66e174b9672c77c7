//! Certificates for TLS clusters, made per run with `rcgen`.
//!
//! The cluster runs go-dqlite's standard TLS setup (`app.SimpleTLSConfig`): every node and
//! every client holds the same **cluster certificate** and key, and that certificate is also
//! the only one trusted. [`Identity::cluster`] makes one: self-signed, ECDSA P-256 with
//! SHA-256, common name `dqlite`, subject alternative names DNS `localhost` (first: go-dqlite
//! dials its peers with the first DNS name as the TLS server name) and IP `127.0.0.1`, extended
//! key usages server and client authentication, valid from a day ago for 30 days. It carries
//! no basic-constraints extension, so verifiers that refuse a CA certificate as an end-entity
//! certificate (webpki, as used by rustls) accept it; Go accepts it because it is in the trust
//! pool itself.
//!
//! The bad certificates client tests need:
//!
//! - [`Identity::unknown_ca`]: like the cluster certificate but with its own key and common
//!   name: trusted by nobody (presented by a client, the nodes refuse it; trusted by a client, the nodes' own
//!   certificate does not chain to it);
//! - [`Identity::expired`]: the cluster certificate's subject and key, but expired yesterday;
//! - [`Identity::with_names`], e.g. [`Identity::wrong_names`]: a cluster certificate whose
//!   names do not match `127.0.0.1` or `localhost`. A cluster runs fine with it (the nodes check
//!   the first DNS name), but a client that checks the server's name against `127.0.0.1`
//!   must refuse it.
//!
//! [`Identity::write_pem`] writes a certificate and its key as PEM files, the form
//! `tlsnode --cert/--key` and Debian's `dqlite` shell read.

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// The DNS name in the cluster certificate.
pub const CLUSTER_DNS_NAME: &str = "localhost";

/// The common name of the certificates made here, but for [`Identity::unknown_ca`].
pub const COMMON_NAME: &str = "dqlite";

/// The common name of [`Identity::unknown_ca`].
pub const UNKNOWN_COMMON_NAME: &str = "dqlite-unknown-ca";

/// A certificate and its private key, in PEM and DER.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The subject's common name.
    pub common_name: String,
    /// The subject alternative names.
    pub names: Names,
    /// The end of the validity period.
    pub not_after: SystemTime,
}

/// Where [`Identity::write_pem`] put a certificate and its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFiles {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

/// Subject alternative names of a certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// DNS names, in order (go-dqlite uses the first as the server name when dialing).
    pub dns: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
}

impl Identity {
    /// A fresh cluster certificate (see the [module docs](self)). Panics if `rcgen` fails.
    pub fn cluster() -> Identity {
        Self::with_names(&Self::cluster_names())
    }

    /// The names of [`cluster`](Self::cluster): DNS `localhost`, IP `127.0.0.1`.
    pub fn cluster_names() -> Names {
        Names {
            dns: vec![CLUSTER_DNS_NAME.into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        }
    }

    /// A certificate like [`cluster`](Self::cluster), with a fresh key and the given names.
    pub fn with_names(names: &Names) -> Identity {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("rcgen: generate a key: {e}"));
        let now = OffsetDateTime::now_utc();
        Self::make(
            COMMON_NAME,
            names,
            &key,
            now - Duration::days(1),
            now + Duration::days(30),
        )
    }

    /// A certificate whose names match neither `127.0.0.1` nor `localhost`: DNS
    /// `dqlite.invalid`, IP `127.0.0.2`.
    pub fn wrong_names() -> Identity {
        Self::with_names(&Names {
            dns: vec!["dqlite.invalid".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))],
        })
    }

    /// A certificate like the cluster certificate, but with its own key and the common name
    /// [`UNKNOWN_COMMON_NAME`]: no cluster trusts it, and a verifier looking for its issuer
    /// finds none (rather than a same-named certificate with the wrong key).
    pub fn unknown_ca() -> Identity {
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("rcgen: generate a key: {e}"));
        let now = OffsetDateTime::now_utc();
        Self::make(
            UNKNOWN_COMMON_NAME,
            &Self::cluster_names(),
            &key,
            now - Duration::days(1),
            now + Duration::days(30),
        )
    }

    /// The same subject, names and key as `self`, but valid only from 30 days ago until
    /// yesterday. Panics if `self` holds no valid key.
    pub fn expired(&self) -> Identity {
        let key = KeyPair::from_pem(&self.key_pem)
            .unwrap_or_else(|e| panic!("rcgen: read back a key: {e}"));
        let now = OffsetDateTime::now_utc();
        Self::make(
            &self.common_name,
            &self.names,
            &key,
            now - Duration::days(30),
            now - Duration::days(1),
        )
    }

    fn make(
        common_name: &str,
        names: &Names,
        key: &KeyPair,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Identity {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        for dns in &names.dns {
            let name = dns
                .clone()
                .try_into()
                .unwrap_or_else(|e| panic!("rcgen: DNS name {dns:?}: {e}"));
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        params
            .subject_alt_names
            .extend(names.ips.iter().copied().map(SanType::IpAddress));
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params
            .self_signed(key)
            .unwrap_or_else(|e| panic!("rcgen: sign a certificate: {e}"));
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            common_name: common_name.to_owned(),
            names: names.clone(),
            not_after: SystemTime::from(not_after),
        }
    }

    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` (mode 0600) as PEM.
    pub fn write_pem(&self, dir: &Path, stem: &str) -> io::Result<PemFiles> {
        use std::os::unix::fs::OpenOptionsExt;
        let files = PemFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        fs::write(&files.cert, &self.cert_pem)?;
        let mut key = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&files.key)?;
        io::Write::write_all(&mut key, self.key_pem.as_bytes())?;
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_keeps_key_and_names() {
        let good = Identity::cluster();
        let old = good.expired();
        assert_eq!(good.key_der, old.key_der);
        assert_ne!(good.cert_der, old.cert_der);
        assert!(old.not_after < SystemTime::now());
        assert!(good.not_after > SystemTime::now());
        assert_eq!(old.names, Identity::cluster_names());
        assert_eq!(old.common_name, COMMON_NAME);
    }

    #[test]
    fn unknown_ca_has_its_own_key_and_name() {
        let (good, unknown) = (Identity::cluster(), Identity::unknown_ca());
        assert_ne!(good.key_der, unknown.key_der);
        assert_ne!(good.common_name, unknown.common_name);
        assert_eq!(good.names, unknown.names);
    }

    #[test]
    fn pem_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity::wrong_names();
        let files = id.write_pem(dir.path(), "bad").unwrap();
        assert_eq!(fs::read_to_string(&files.cert).unwrap(), id.cert_pem);
        assert_eq!(fs::read_to_string(&files.key).unwrap(), id.key_pem);
        assert!(id.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
