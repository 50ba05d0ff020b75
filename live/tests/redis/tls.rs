//! Managed Redis: TLS and a password. What no retry can fix — a refused password, a
//! certificate the instance does not trust — is named as such, and the instance serves
//! locally meanwhile. (The logs themselves are checked on the real
//! binary, in the app's `tests/process.rs`.)

use std::time::Duration;

use live::{settings::Settings, testing::RedisServer};

use crate::{SECRET, next_note, support::spawn_app_with, wait_redis};

/// What connecting to `url` fails with, said as the instance's log says it.
async fn diagnosis(url: &str, ca: Option<&std::path::Path>) -> String {
    let client = live::redis::rediss::client(url, ca).unwrap();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)));
    let error = match client
        .get_multiplexed_async_connection_with_config(&config)
        .await
    {
        Err(error) => error,
        // A connection without the password may open; the first command is refused.
        Ok(mut connection) => redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .unwrap_err(),
    };
    live::redis::rediss::diagnosis(&error)
        .unwrap_or_else(|| panic!("no diagnosis for {error}"))
        .to_owned()
}

#[tokio::test]
async fn a_refused_password_a_missing_one_and_an_untrusted_certificate_are_told_apart() {
    let redis = RedisServer::start_tls().await;
    let url = redis.url();
    let ca = redis.ca();

    let wrong = diagnosis(&url.replace("password@", "passwort@"), ca).await;
    assert!(wrong.contains("refused the user or password"), "{wrong}");
    let none = diagnosis(&format!("rediss://127.0.0.1:{}", redis.port), ca).await;
    assert!(none.contains("REDIS_URL has none"), "{none}");
    let untrusted = diagnosis(&url, None).await;
    assert!(
        untrusted.contains("not trusted: set REDIS_CA"),
        "{untrusted}"
    );
}

#[tokio::test]
async fn an_instance_that_cannot_authenticate_or_trust_redis_serves_locally() {
    let redis = RedisServer::start_tls().await;
    let wrong_password = redis.url().replace("password@", "passwort@");
    let right_password = redis.url();
    let ca = redis.ca().map(std::path::Path::to_path_buf);
    for (url, ca) in [(wrong_password, ca), (right_password, None)] {
        let app = spawn_app_with(move |config| {
            config.redis_url = Some(url);
            config.redis_secret = Some(SECRET.into());
            config.redis_ca = ca;
        })
        .await;
        let mut tab = app.open_live_stream().await;
        // A few of its retries go by: it never connects...
        tokio::time::sleep(Duration::from_millis(1500)).await;
        wait_redis(&app, false).await;
        // ...and serves its own tabs all the same.
        assert_eq!(app.get("/").await.status(), 200);
        app.publish_with_form("Ada").await;
        assert!(next_note(&mut tab).await.contains("<strong>Ada</strong>"));
    }
}

/// `REDIS_CA` is checked at start, as the relay will read it.
#[test]
fn redis_ca_is_a_readable_file_of_certificates_for_a_tls_url() {
    let secret = "s".repeat(32);
    let dir = std::env::temp_dir().join(format!("redis-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = file("ca.pem", &live::testing::https::TestCa::new().pem());
    let not_pem = file("not.pem", "not a certificate");
    let not_der = file(
        "not-der.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let missing = dir.join("missing.pem").to_str().unwrap().to_owned();
    let tls = "rediss://:pw@127.0.0.1:6380";
    let with = |url: Option<&str>, ca: &str| {
        let mut settings = vec![("REDIS_SECRET", secret.as_str()), ("REDIS_CA", ca)];
        settings.extend(url.map(|url| ("REDIS_URL", url)));
        Settings::from_lookup(|name| {
            settings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    };

    assert_eq!(
        with(Some(tls), &ca).unwrap().redis_ca,
        Some(std::path::PathBuf::from(&ca))
    );
    for (url, ca, expected) in [
        (Some(tls), &missing, "cannot read it"),
        (Some(tls), &not_pem, "holds no PEM certificate"),
        (Some(tls), &not_der, "cannot be a CA"),
        (Some("redis://127.0.0.1:6379"), &ca, "needs a rediss://"),
        (None, &ca, "needs a rediss://"),
    ] {
        let error = with(url, ca).unwrap_err().to_string();
        assert!(error.starts_with("invalid REDIS_CA="), "{error}");
        assert!(error.contains(expected), "{error}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
