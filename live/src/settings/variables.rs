//! Every setting's variable, with its default and meaning, kept apart from the code that reads
//! them: `.env.example` is kept in step with it (`tests/settings.rs` checks).

use crate::script::DATASTAR_CDN_URL;

/// Every variable the settings are read from: its name, its default (empty: unset), and what it
/// means in a line. `.env.example` is written from this; tests keep the three — this list, the
/// code that reads the variables, and the example file — in step.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "HOST",
        "127.0.0.1",
        "the address to listen on (0.0.0.0 in a container)",
    ),
    ("PORT", "3000", "the port to listen on; 0 picks a free one"),
    (
        "DATASTAR_URL",
        DATASTAR_CDN_URL,
        "where pages load Datastar from",
    ),
    (
        "DATASTAR_INTEGRITY",
        "",
        "the file's sha384-… hash (default: known for the default URL); none: no check",
    ),
    (
        "SSE_KEEP_ALIVE_SECS",
        "15",
        "how often quiet streams get a keep-alive comment (after 1–2 quiet periods)",
    ),
    (
        "ACTION_TIMEOUT_SECS",
        "10",
        "the longest an action may run before it answers 408",
    ),
    (
        "ACTION_RATE_PER_SEC",
        "10",
        "actions a second one client may keep sending (0.5: one every 2 s), per instance; off: no limit",
    ),
    (
        "ACTION_BURST",
        "50",
        "actions one client may send at once before ACTION_RATE_PER_SEC applies; beyond: a visible 429",
    ),
    (
        "SEND_TIMEOUT_SECS",
        "10",
        "how long a write to a client may stay blocked before it is disconnected",
    ),
    (
        "HEADER_READ_TIMEOUT_SECS",
        "10",
        "how long a connection may take to send a request head (also caps idle time)",
    ),
    (
        "KEEP_ALIVE_TIMEOUT_SECS",
        "5",
        "how long a connection may sit idle between requests",
    ),
    (
        "STREAM_COMPRESSION",
        "gzip",
        "gzip streams for clients that accept it, each event compressed once for all; off: never",
    ),
    (
        "STREAM_QUEUE_LIMIT",
        "1024",
        "ordinary events one stream may have queued before it is cut off",
    ),
    (
        "MAX_STREAMS",
        "10000",
        "open streams beyond which new ones are refused (and told when to retry)",
    ),
    (
        "MAX_STREAMS_PER_CLIENT",
        "256",
        "open streams one client network may hold (see CLIENT_IPV6_PREFIX)",
    ),
    (
        "CLIENT_IP_HEADER",
        "",
        "behind proxies: the header they add the client's address to (x-forwarded-for)",
    ),
    (
        "CLIENT_IP_HOPS",
        "1",
        "how many proxies add to CLIENT_IP_HEADER: the client is that many addresses from the end",
    ),
    (
        "CLIENT_IPV4_PREFIX",
        "32",
        "per-client limits count an IPv4 client by this many leading bits of its address",
    ),
    (
        "CLIENT_IPV6_PREFIX",
        "64",
        "per-client limits count an IPv6 client by this many leading bits (its /64)",
    ),
    (
        "MAX_CONNECTIONS_PER_CLIENT",
        "512",
        "open connections one client network may hold (not applied with CLIENT_IP_HEADER)",
    ),
    (
        "MAX_CONNECTIONS",
        "",
        "open connections beyond which new ones get 503 (default: the open-files limit less 512)",
    ),
    (
        "LISTEN_BACKLOG",
        "4096",
        "connections the kernel queues before they are accepted (an inherited socket's too)",
    ),
    (
        "SHUTDOWN_TIMEOUT_SECS",
        "15",
        "after SIGTERM, how long in-flight requests may take before the process exits",
    ),
    (
        "REDIS_URL",
        "",
        "Redis to share broadcasts through (needs the redis feature): redis://127.0.0.1:6379, rediss://user:password@host:port",
    ),
    (
        "REDIS_SECRET",
        "",
        "with REDIS_URL: the key messages between instances are signed with (32+ characters)",
    ),
    (
        "REDIS_CA",
        "",
        "with a rediss:// REDIS_URL: a PEM file of the CAs to trust instead of the system's",
    ),
    (
        "REDIS_PREFIX",
        "",
        "the namespace of this app's keys and channel in Redis (default: the app's name)",
    ),
    (
        "PRESENCE_EXPIRY_SECS",
        "15",
        "with REDIS_URL: how long a killed instance's tabs still count on the others' pages",
    ),
    (
        "PRESENCE_PER_CLIENT",
        "4",
        "how much one client address may add to a presence count (\"N people here\")",
    ),
    (
        "METRICS_ADDR",
        "",
        "serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9100; never public",
    ),
    (
        "TLS_CERT",
        "",
        "serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; SIGHUP re-reads it",
    ),
    (
        "TLS_KEY",
        "",
        "with TLS_CERT: the certificate's PEM private key",
    ),
    (
        "HTTP_REDIRECT_PORT",
        "",
        "with HTTPS: a plain-HTTP port (e.g. 80) that redirects every request to HTTPS",
    ),
    (
        "ACME_CHALLENGE_DIR",
        "",
        "the redirect port serves ACME HTTP-01 challenges from this folder (certbot --webroot)",
    ),
    (
        "ACME_DOMAINS",
        "",
        "get and renew HTTPS certificates for these names by ACME, comma-separated (feature acme)",
    ),
    (
        "ACME_CONTACT",
        "",
        "with ACME_DOMAINS: the ACME account's email address",
    ),
    (
        "ACME_CACHE_DIR",
        "acme-cache",
        "where the ACME account and certificates are kept between runs",
    ),
    (
        "ACME_DIRECTORY",
        crate::settings::LETS_ENCRYPT,
        "the ACME server (Let's Encrypt; its staging directory for trials)",
    ),
    (
        "ACME_DIRECTORY_CA",
        "",
        "testing or a private CA only: trust this PEM CA for the ACME server, not the public roots",
    ),
];
