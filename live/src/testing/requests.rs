//! The requests a live page makes, as a test makes them: its stream opened as `live_stream`
//! does, and its forms posted by Datastar and by a browser without JavaScript. One copy, for
//! every harness (the app's tests, the kit's, [`TestServer`](super::TestServer)).

use uuid::Uuid;

use super::sse_client::SseClient;

/// `GET url` as Datastar opens a stream, with `signals` (JSON) in `?datastar=` if given;
/// whatever it answers.
pub async fn stream_request(
    client: &reqwest::Client,
    url: &str,
    signals: Option<&str>,
) -> reqwest::Response {
    stream_get(client, url, signals)
        .send()
        .await
        .expect("the stream answers")
}

/// [`stream_request`], not yet sent: for a test that adds a header of its own (say,
/// `accept-encoding`).
pub fn stream_get(
    client: &reqwest::Client,
    url: &str,
    signals: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = client
        .get(url)
        .header("datastar-request", "true")
        .header("accept", "text/event-stream");
    match signals {
        Some(signals) => request.query(&[("datastar", signals)]),
        None => request,
    }
}

/// Opens the stream at `url` for tab `session_id`, as a page does. Fails the test unless it
/// answers 200 with an event stream.
pub async fn open_stream(client: &reqwest::Client, url: &str, session_id: Uuid) -> SseClient {
    let signals = serde_json::json!({ "sessionId": session_id, "connected": false });
    let response = stream_request(client, url, Some(&signals.to_string())).await;
    assert_eq!(response.status(), 200, "opening {url}");
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "an SSE response from {url}"
    );
    SseClient::new(response)
}

/// Opens the stream at `url` with `client` as a page's `live_stream` does, for a new tab: with
/// a fresh `sessionId` in the signals Datastar sends. Fails the test unless it answers 200.
pub async fn open_tab(client: &reqwest::Client, url: &str) -> SseClient {
    open_stream(client, url, Uuid::new_v4()).await
}

/// Posts `form` to `url` as Datastar's `@post(…, {contentType: 'form'})` does.
pub async fn post_with_datastar(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let request = client
        .post(url)
        .header("datastar-request", "true")
        .header("accept", "text/event-stream, text/html, application/json");
    send_form(request, form).await
}

/// Posts `form` to `url` as a browser without JavaScript does.
pub async fn post_with_form(
    client: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    send_form(client.post(url).header("accept", "text/html"), form).await
}

/// Sends `request` with `form` as its form-urlencoded body.
async fn send_form(request: reqwest::RequestBuilder, form: &[(&str, &str)]) -> reqwest::Response {
    request.form(form).send().await.expect("the action answers")
}
