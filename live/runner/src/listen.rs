//! The listening socket the runner holds for every app process it starts.

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    path::Path,
};

use anyhow::Context;

/// Binds where `HOST` and `PORT` say: the environment first, then `root/.env`, then the app's
/// defaults (`127.0.0.1:3000`), as the app itself reads them. `.env` is read, never loaded:
/// the app reads it at each start, and a value set here would hide a later edit.
pub fn bind(root: &Path) -> anyhow::Result<TcpListener> {
    let host = setting(root, "HOST")?.unwrap_or_else(|| "127.0.0.1".into());
    let port = setting(root, "PORT")?.unwrap_or_else(|| "3000".into());
    let host: IpAddr = host
        .parse()
        .with_context(|| format!("HOST={host:?} is not an IP address"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("PORT={port:?} is not a port number"))?;
    let address = SocketAddr::new(host, port);
    TcpListener::bind(address).with_context(|| {
        format!("cannot listen on {address} (is the app already running? PORT= picks another)")
    })
}

fn setting(root: &Path, name: &str) -> anyhow::Result<Option<String>> {
    if let Ok(value) = std::env::var(name) {
        return Ok(Some(value));
    }
    let path = root.join(".env");
    if !path.is_file() {
        return Ok(None);
    }
    for item in dotenvy::from_path_iter(&path)? {
        let (key, value) = item.with_context(|| format!("cannot read {}", path.display()))?;
        if key == name {
            return Ok(Some(value));
        }
    }
    Ok(None)
}
