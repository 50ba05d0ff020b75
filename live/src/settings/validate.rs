//! The checks no single variable can make: settings that must agree with each other, and
//! values that parse but could not be used. Run at start on every configuration, however it
//! was made (the environment, or a test's `Settings { .. }`).

use std::time::Duration;

use super::{ActionLimit, ConfigError, MAX_SECS, Settings};

impl Settings {
    /// Checks what a single variable cannot: settings that must agree with each other. Run at
    /// start on every configuration, however it was made.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keep_alive_timeout > self.header_read_timeout {
            return Err(ConfigError::new(
                "KEEP_ALIVE_TIMEOUT_SECS",
                self.keep_alive_timeout.as_secs().to_string(),
                format!(
                    "must not exceed HEADER_READ_TIMEOUT_SECS ({}): that timer also starts when \
                     a connection goes idle",
                    self.header_read_timeout.as_secs()
                ),
            ));
        }
        for (name, value) in [
            ("SSE_KEEP_ALIVE_SECS", self.keep_alive),
            ("ACTION_TIMEOUT_SECS", self.action_timeout),
            ("SEND_TIMEOUT_SECS", self.send_timeout),
            ("HEADER_READ_TIMEOUT_SECS", self.header_read_timeout),
            ("KEEP_ALIVE_TIMEOUT_SECS", self.keep_alive_timeout),
            ("SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout),
        ] {
            if value.is_zero() || value > Duration::from_secs(MAX_SECS) {
                return Err(ConfigError::new(
                    name,
                    value.as_secs().to_string(),
                    format!("must be from 1 to {MAX_SECS} seconds"),
                ));
            }
        }
        // Checked here too, not only where the variables are read: a prefix of 0 would make
        // every client one, and a settings struct made in code skips the reading.
        for (name, prefix, bits) in [
            ("CLIENT_IPV4_PREFIX", self.client_networks.ipv4_prefix, 32),
            ("CLIENT_IPV6_PREFIX", self.client_networks.ipv6_prefix, 128),
        ] {
            if prefix == 0 || prefix > bits {
                return Err(ConfigError::new(
                    name,
                    prefix.to_string(),
                    format!("must be from 1 to {bits}"),
                ));
            }
        }
        if self.max_connections_per_client == 0 {
            return Err(ConfigError::new(
                "MAX_CONNECTIONS_PER_CLIENT",
                "0",
                "must be at least 1",
            ));
        }
        if let Some(limit) = self.action_limit {
            let (min, max) = (ActionLimit::MIN_PER_SECOND, ActionLimit::MAX_PER_SECOND);
            if !(min..=max).contains(&limit.per_second) {
                return Err(ConfigError::new(
                    "ACTION_RATE_PER_SEC",
                    limit.per_second.to_string(),
                    format!("must be from {min} to {max}, or off"),
                ));
            }
            if limit.burst == 0 {
                return Err(ConfigError::new(
                    "ACTION_BURST",
                    "0",
                    "must be at least 1: a bucket that holds nothing refuses every action",
                ));
            }
        }
        if self.presence_per_client == 0 {
            return Err(ConfigError::new(
                "PRESENCE_PER_CLIENT",
                "0",
                "must be at least 1: every client counts at least once",
            ));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), None) => {
                return Err(ConfigError::new(
                    "TLS_CERT",
                    cert.display().to_string(),
                    "needs TLS_KEY too: HTTPS takes the certificate and its private key",
                ));
            }
            (None, Some(key)) => {
                return Err(ConfigError::new(
                    "TLS_KEY",
                    key.display().to_string(),
                    "needs TLS_CERT too: HTTPS takes the certificate and its private key",
                ));
            }
            (Some(cert), Some(_)) if !cfg!(feature = "tls") => {
                return Err(ConfigError::new(
                    "TLS_CERT",
                    cert.display().to_string(),
                    "HTTPS needs the app built with the `tls` cargo feature (cargo build \
                     --release --features tls)",
                ));
            }
            _ => {}
        }
        if let Some(acme) = &self.acme {
            if self.tls_cert.is_some() {
                return Err(ConfigError::new(
                    "ACME_DOMAINS",
                    acme.domains.join(","),
                    "cannot go with TLS_CERT: the certificate comes from ACME or from files, \
                     not both",
                ));
            }
            if !cfg!(feature = "acme") {
                return Err(ConfigError::new(
                    "ACME_DOMAINS",
                    acme.domains.join(","),
                    "needs the `acme` cargo feature (cargo build --release --features acme)",
                ));
            }
        }
        if let Some(port) = self.http_redirect_port {
            if self.tls_cert.is_none() && self.acme.is_none() {
                return Err(ConfigError::new(
                    "HTTP_REDIRECT_PORT",
                    port.to_string(),
                    "redirects to HTTPS, so it needs TLS_CERT and TLS_KEY (or ACME_DOMAINS)",
                ));
            }
            if port == self.port {
                return Err(ConfigError::new(
                    "HTTP_REDIRECT_PORT",
                    port.to_string(),
                    "must differ from PORT, where HTTPS is served",
                ));
            }
        }
        if let Some(ca) = &self.redis_ca {
            let tls_url = self
                .redis_url
                .as_deref()
                .is_some_and(|url| url.starts_with("rediss://"));
            if !tls_url {
                return Err(ConfigError::new(
                    "REDIS_CA",
                    ca.display().to_string(),
                    "is the CA of a Redis spoken to over TLS, so it needs a rediss:// REDIS_URL",
                ));
            }
        }
        if self.redis_url.is_some() && cfg!(feature = "redis") {
            match &self.redis_secret {
                None => {
                    return Err(ConfigError::new(
                        "REDIS_SECRET",
                        "",
                        "must be set with REDIS_URL: every message between instances is \
                         signed with it (32 characters or more, the same on every instance)",
                    ));
                }
                Some(secret) if secret.len() < 32 => {
                    return Err(ConfigError::new(
                        "REDIS_SECRET",
                        "(hidden)",
                        "must be at least 32 characters",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
