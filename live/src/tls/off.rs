//! Without the feature `tls` there is no HTTPS, and no [`Tls`] value can exist: the type has no
//! values. The serving code holds an `Option<Tls>` in every build, so it reads the same with or
//! without the feature, and the compiler knows the HTTPS branches never run in this one (each
//! is a `match` on a value that cannot exist). `TLS_CERT` set in such a build stops the start,
//! naming the feature ([`Tls::load`]).

use std::{io, path::PathBuf};

/// What the server needs to speak TLS; in a build without the feature `tls`, nothing can be.
#[derive(Clone, Debug)]
pub enum Tls {}

/// Why there is no HTTPS. (Settings refuse `TLS_CERT` in such a build first, saying how to
/// build with the feature: `Settings::validate`.)
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The binary was built without the feature `tls`.
    #[error("this binary was built without the `tls` feature")]
    NotBuilt,
}

impl Tls {
    /// Refuses: HTTPS needs the feature `tls`.
    pub fn load(_cert: PathBuf, _key: PathBuf) -> Result<Self, TlsError> {
        Err(TlsError::NotBuilt)
    }

    /// Never called: no `Tls` exists in this build.
    pub async fn reload(&self) -> Result<(), TlsError> {
        match *self {}
    }

    /// Never called: no `Tls` exists in this build.
    pub fn is_ready(&self) -> bool {
        match *self {}
    }
}

/// Never called: no `Tls` exists in this build.
#[cfg(unix)]
pub fn reload_on_hangup(tls: Tls) -> io::Result<std::future::Ready<()>> {
    match tls {}
}
