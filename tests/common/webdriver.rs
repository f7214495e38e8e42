//! A minimal W3C WebDriver client for headless Chromium driven by `chromedriver`: a session,
//! navigation, scripts, clicks, screenshots and the browser's console log. Enough for the
//! dashboard's browser test, with no browser-automation crate in the build.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// Where Chromium and its driver are (`CHROMIUM`, `CHROMEDRIVER`, else Debian's paths).
pub fn browser_paths() -> (String, String) {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    (chromium, driver)
}

/// A running `chromedriver`; killed when dropped.
pub struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; ended when [`Session::end`] is called (or the driver dies).
pub struct Session {
    url: String,
    http: reqwest::Client,
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut req = http.request(method.clone(), url);
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}"));
    let status = response.status();
    let text = response.text().await.expect("WebDriver answer");
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("WebDriver {method} {url} answered non-JSON ({e}): {text}"));
    assert!(
        status.is_success(),
        "WebDriver {method} {url} failed ({status}): {text}"
    );
    value["value"].clone()
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it is ready.
    pub async fn start(driver: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver}: {e}"));
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..100 {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(text) = r.text().await
                && text.contains("\"ready\":true")
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready within 10 s");
    }

    /// A headless Chromium session (`binary` is Chromium's path), console messages recorded.
    pub async fn session(&self, binary: &str) -> Session {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1360,1000"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let value = send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await;
        let id = value["sessionId"].as_str().expect("a session id");
        Session {
            url: format!("{}/session/{id}", self.base),
            http: self.http.clone(),
        }
    }
}

impl Session {
    /// Loads `url`.
    pub async fn goto(&self, url: &str) {
        send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/url", self.url),
            Some(json!({"url": url})),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and answers what it returns.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/execute/sync", self.url),
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let element = send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/element", self.url),
            Some(json!({"using": "css selector", "value": css})),
        )
        .await;
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {element}"))
            .to_string();
        send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/element/{id}/click", self.url),
            Some(json!({})),
        )
        .await;
    }

    /// Polls `script` (returning a value) until `check` holds on it; panics after `secs`.
    pub async fn wait_for(
        &self,
        what: &str,
        secs: u64,
        script: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.run(script, json!([])).await;
            if check(&v) {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page did not show {what} within {secs} s (last: {v})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let data = send(
            &self.http,
            reqwest::Method::GET,
            &format!("{}/screenshot", self.url),
            None,
        )
        .await;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("a PNG")
    }

    /// The browser console's messages so far (chromedriver's log endpoint): `(level, message)`.
    pub async fn console(&self) -> Vec<(String, String)> {
        let entries = send(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/se/log", self.url),
            Some(json!({"type": "browser"})),
        )
        .await;
        entries
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or_default().to_string(),
                            e["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the session (closes the browser).
    pub async fn end(self) {
        send(&self.http, reqwest::Method::DELETE, &self.url, None).await;
    }
}
