//! Tabs and windows beyond the first, and the flags that let Chromium reach a site under its
//! real name over HTTPS: a browser's many tabs on one site are what HTTP/1.1's six connections
//! per site and HTTP/2's one connection are about.

use fantoccini::wd::WindowHandle;
use serde_json::json;

use super::Browser;

impl Browser {
    /// A Chromium that accepts the certificate whose public key is `spki_der` (for a server
    /// whose certificate a test made), and no other that its own roots would not. Pages load
    /// over HTTPS — HTTP/2, as a browser speaks to a site it reaches over TLS.
    pub async fn launch_trusting(name: &'static str, spki_der: &[u8]) -> Browser {
        Browser::launch_with(name, true, &[Browser::trusting(spki_der)]).await
    }

    /// The flag that makes Chromium accept the certificate whose public key is `spki_der`.
    pub fn trusting(spki_der: &[u8]) -> String {
        use base64::Engine;
        use sha2::Digest;
        let pin = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(spki_der));
        format!("--ignore-certificate-errors-spki-list={pin}")
    }

    /// The flag that makes Chromium reach `names` at 127.0.0.1 (and nothing else but 127.0.0.1):
    /// a site served under its real name, say `example.org`, on this machine.
    pub fn resolving_to_loopback(names: &[&str]) -> String {
        let maps: Vec<String> = names
            .iter()
            .map(|name| format!("MAP {name} 127.0.0.1"))
            .collect();
        format!(
            "--host-resolver-rules={}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            maps.join(", ")
        )
    }

    /// Opens `url` in a new tab in the background, as a middle-click does: the tab loads,
    /// hidden, and the one in front stays in front. Returns the tab's handle (its target id).
    pub async fn open_in_background(&self, url: &str) -> WindowHandle {
        let created = self
            .cdp(
                "Target.createTarget",
                json!({ "url": url, "background": true }),
            )
            .await;
        let id = created["targetId"]
            .as_str()
            .expect("a target id")
            .to_owned();
        WindowHandle::try_from(id).expect("a window handle")
    }

    /// Opens `url` in a new window of its own (visible, as a window beside the others is), and
    /// makes it the one the helpers act on. Returns its handle.
    pub async fn open_window(&self, url: &str) -> WindowHandle {
        let window = self.client.new_window(false).await.unwrap().handle;
        self.show(&window).await;
        self.goto(url).await;
        window
    }

    /// Brings the tab `handle` to the front (it becomes visible and the one in front before it
    /// hidden, in the same window) and makes it the one the helpers act on.
    pub async fn show(&self, handle: &WindowHandle) {
        self.client.switch_to_window(handle.clone()).await.unwrap();
    }

    /// The title of the tab `handle`, read without bringing it to the front: a tab in the
    /// background that has loaded its page has the page's title.
    pub async fn title_of(&self, handle: &WindowHandle) -> Option<String> {
        let targets = self.cdp("Target.getTargets", json!({})).await;
        let id = String::from(handle.clone());
        targets["targetInfos"]
            .as_array()?
            .iter()
            .find(|target| target["targetId"].as_str() == Some(id.as_str()))
            .and_then(|target| target["title"].as_str())
            .map(str::to_owned)
    }

    /// Waits until the tab `handle` has a title containing `needle` (it has loaded its page),
    /// without bringing it to the front.
    pub async fn wait_for_title(&self, handle: &WindowHandle, needle: &str) {
        self.poll(&format!("a tab titled {needle:?}"), async || {
            self.title_of(handle)
                .await
                .is_some_and(|title| title.contains(needle))
        })
        .await;
    }
}
