//! The `[output]` section of the agent's configuration: where alerts go.

use driftwatch_event::Priority;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `[output]`: stdout (text or JSON lines), an optional JSON-lines file and HTTP outputs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Print alerts on stdout.
    pub stdout: bool,
    /// Print alerts on stdout as JSON lines instead of text lines.
    pub json: bool,
    /// Append alerts as JSON lines to this file (written in batches of whole lines).
    pub file: Option<PathBuf>,
    /// `[output.http]` (one table) or `[[output.http]]` (several): alerts POSTed to a
    /// Falcosidekick-compatible receiver or any webhook, through an on-disk spool.
    #[serde(deserialize_with = "one_or_many")]
    pub http: Vec<HttpOutputConfig>,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            stdout: true,
            json: false,
            file: None,
            http: Vec::new(),
        }
    }
}

/// What an HTTP output POSTs for each alert.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HttpFormat {
    /// The alert in Falco's JSON shape (`Alert::to_json_line`): what Falcosidekick and Falco
    /// Talon take.
    #[default]
    Falco,
    /// The document of the output's `template` file, filled from the alert.
    Template,
}

/// The default directory of an HTTP output's spool is this joined with the output's name.
pub const DEFAULT_SPOOL_ROOT: &str = "/var/lib/driftwatch/spool";

/// The smallest spool accepted (`spool_max_bytes`).
pub const MIN_SPOOL_BYTES: u64 = 64 * 1024;

/// One HTTP output (`[output.http]` or one `[[output.http]]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpOutputConfig {
    /// The output's name (metrics label, spool directory, [`crate::Outputs::http_handle`]);
    /// unique among the HTTP outputs.
    #[serde(default = "default_name")]
    pub name: String,
    /// Where alerts are POSTed: `http://` or `https://`.
    pub url: String,
    #[serde(default)]
    pub format: HttpFormat,
    /// The JSON template file (`format = "template"`); see the README's "Outputs".
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// A file holding the bearer token (re-read when it changes).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// PEM certificates of the CAs trusted for `https://` (else the bundled Mozilla roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Alerts below this Falco priority are not sent.
    #[serde(default = "default_minimum_priority")]
    pub minimum_priority: String,
    /// Only alerts with at least one of these tags are sent (every alert when empty).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Timeout of one request, connection included (`"5s"`, `"500ms"`).
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// Retries of an alert before it is dropped; unset: retried until delivered (or pushed
    /// out of a full spool).
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// The first wait after a failed attempt; doubled at each retry up to `retry_backoff_max`.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff: String,
    #[serde(default = "default_retry_backoff_max")]
    pub retry_backoff_max: String,
    /// The spool's directory (default `/var/lib/driftwatch/spool/<name>`).
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// The spool's bound: past it the oldest alerts are dropped (counted, and alerted).
    #[serde(default = "default_spool_max_bytes")]
    pub spool_max_bytes: u64,
}

fn default_name() -> String {
    "http".to_string()
}
fn default_minimum_priority() -> String {
    "debug".to_string()
}
fn default_timeout() -> String {
    "5s".to_string()
}
fn default_retry_backoff() -> String {
    "1s".to_string()
}
fn default_retry_backoff_max() -> String {
    "60s".to_string()
}
fn default_spool_max_bytes() -> u64 {
    64 * 1024 * 1024
}

impl HttpOutputConfig {
    /// An output of `url` with every default (tests, playbooks).
    pub fn new(name: &str, url: &str) -> HttpOutputConfig {
        HttpOutputConfig {
            name: name.to_string(),
            url: url.to_string(),
            format: HttpFormat::Falco,
            template: None,
            headers: BTreeMap::new(),
            bearer_token: None,
            bearer_token_file: None,
            ca_file: None,
            minimum_priority: default_minimum_priority(),
            tags: Vec::new(),
            timeout: default_timeout(),
            max_retries: None,
            retry_backoff: default_retry_backoff(),
            retry_backoff_max: default_retry_backoff_max(),
            spool_dir: None,
            spool_max_bytes: default_spool_max_bytes(),
        }
    }

    /// `minimum_priority`; Debug (everything) when it does not parse (`problems` says so).
    pub fn minimum_priority(&self) -> Priority {
        Priority::parse(&self.minimum_priority).unwrap_or(Priority::Debug)
    }

    /// `timeout`; 5 s when it does not parse.
    pub fn timeout(&self) -> Duration {
        parse_duration(&self.timeout).unwrap_or(Duration::from_secs(5))
    }

    /// `retry_backoff` and `retry_backoff_max`; 1 s and 60 s when they do not parse.
    pub fn backoff(&self) -> (Duration, Duration) {
        let first = parse_duration(&self.retry_backoff).unwrap_or(Duration::from_secs(1));
        let max = parse_duration(&self.retry_backoff_max).unwrap_or(Duration::from_secs(60));
        (first, max.max(first))
    }

    /// The spool directory: `spool_dir`, else `/var/lib/driftwatch/spool/<name>`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_ROOT).join(&self.name))
    }

    fn problems(&self, key: &str, out: &mut Vec<String>) {
        let mut p = |field: &str, msg: String| out.push(format!("{key}.{field}: {msg}"));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || self.name.starts_with('.')
        {
            p(
                "name",
                format!(
                    "{:?}: letters, digits, '-', '_' and '.' only (it names a directory)",
                    self.name
                ),
            );
        }
        match url_scheme(&self.url) {
            Err(e) => p("url", format!("{:?}: {e}", self.url)),
            Ok(scheme) => {
                if self.ca_file.is_some() && scheme != "https" {
                    p("ca_file", "only used with an https:// url".to_string());
                }
            }
        }
        match (self.format, &self.template) {
            (HttpFormat::Template, None) => p(
                "template",
                "format = \"template\" needs a template file".to_string(),
            ),
            (HttpFormat::Falco, Some(_)) => p(
                "template",
                "a template is only used with format = \"template\"".to_string(),
            ),
            (HttpFormat::Template, Some(path)) => {
                if let Err(e) = crate::template::Template::load(path) {
                    p("template", e.to_string());
                }
            }
            (HttpFormat::Falco, None) => {}
        }
        for (name, value) in &self.headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                p("headers", format!("{name:?} is not a valid header name"));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                p("headers", format!("the value of {name:?} has a line break"));
            }
            if name.eq_ignore_ascii_case("authorization")
                && (self.bearer_token.is_some() || self.bearer_token_file.is_some())
            {
                p(
                    "headers",
                    "Authorization is set by bearer_token: give one of the two".to_string(),
                );
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            p(
                "bearer_token",
                "give bearer_token or bearer_token_file, not both".to_string(),
            );
        }
        if let Some(t) = &self.bearer_token {
            if t.trim().is_empty() || t.bytes().any(|b| b.is_ascii_control()) {
                p("bearer_token", "must be non-empty, on one line".to_string());
            }
        }
        if let Some(f) = &self.bearer_token_file {
            if let Err(e) = std::fs::metadata(f) {
                p("bearer_token_file", format!("{}: {e}", f.display()));
            }
        }
        if let Some(f) = &self.ca_file {
            if let Err(e) = crate::http::read_ca_file(f) {
                p("ca_file", e.to_string());
            }
        }
        if Priority::parse(&self.minimum_priority).is_none() {
            p(
                "minimum_priority",
                format!(
                    "{:?} is not a Falco priority (emergency, alert, critical, error, warning, \
                     notice, informational, debug)",
                    self.minimum_priority
                ),
            );
        }
        for (field, text) in [
            ("timeout", &self.timeout),
            ("retry_backoff", &self.retry_backoff),
            ("retry_backoff_max", &self.retry_backoff_max),
        ] {
            match parse_duration(text) {
                Err(e) => p(field, e),
                Ok(d) if d.is_zero() => p(field, "must be more than zero".to_string()),
                Ok(_) => {}
            }
        }
        if self.spool_max_bytes < MIN_SPOOL_BYTES {
            p(
                "spool_max_bytes",
                format!("at least {MIN_SPOOL_BYTES} bytes"),
            );
        }
        if let Some(dir) = &self.spool_dir {
            if dir.as_os_str().is_empty() {
                p("spool_dir", "must not be empty".to_string());
            } else if dir.exists() && !dir.is_dir() {
                p("spool_dir", format!("{} is not a directory", dir.display()));
            }
        }
    }
}

/// The scheme of an `http://` or `https://` URL with a host.
pub(crate) fn url_scheme(url: &str) -> Result<&'static str, &'static str> {
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("http", r)
    } else {
        return Err("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    if url
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("has a space or a control character");
    }
    Ok(scheme)
}

/// The URL as logs show it: no user information, query or fragment (they may hold secrets).
pub(crate) fn url_for_logs(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or("");
    format!("{scheme}://{host}{path}")
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub use driftwatch_event::parse_duration;

impl OutputConfig {
    /// Every problem of this section, each prefixed with its key (`output.file: …`,
    /// `output.http.url: …`, `output.http[1].url: …` when there are several).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(file) = &self.file {
            if file.as_os_str().is_empty() {
                problems.push("output.file: must not be empty".to_string());
            } else if file.is_dir() {
                problems.push(format!("output.file: {} is a directory", file.display()));
            } else if let Some(parent) = file.parent() {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    problems.push(format!(
                        "output.file: directory {} does not exist",
                        parent.display()
                    ));
                }
            }
        }
        let mut names = BTreeSet::new();
        let mut spools = BTreeSet::new();
        for (i, h) in self.http.iter().enumerate() {
            let key = if self.http.len() == 1 {
                "output.http".to_string()
            } else {
                format!("output.http[{i}]")
            };
            h.problems(&key, &mut problems);
            if !names.insert(h.name.as_str()) {
                problems.push(format!(
                    "{key}.name: {:?} names another HTTP output too",
                    h.name
                ));
            } else if !spools.insert(h.spool_dir()) {
                problems.push(format!(
                    "{key}.spool_dir: {} is another HTTP output's spool too",
                    h.spool_dir().display()
                ));
            }
        }
        problems
    }
}

/// `[output.http]` (a table: one output) or `[[output.http]]` (an array of tables).
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HttpOutputConfig>, D::Error> {
    struct OneOrMany;
    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<HttpOutputConfig>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of one HTTP output or an array of them")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            HttpOutputConfig::deserialize(de::value::MapAccessDeserializer::new(map))
                .map(|one| vec![one])
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::deserialize(de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(OneOrMany)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> HttpOutputConfig {
        let mut h = HttpOutputConfig::new("http", url);
        h.spool_dir = Some(PathBuf::from("/nonexistent-dw-spool"));
        h
    }

    #[test]
    fn urls_need_a_scheme_and_a_host() {
        assert_eq!(url_scheme("http://127.0.0.1:2801/"), Ok("http"));
        assert_eq!(url_scheme("https://sidekick.example/x?y"), Ok("https"));
        assert!(url_scheme("ftp://x").is_err());
        assert!(url_scheme("http://").is_err());
        assert!(url_scheme("http://:80/").is_err());
        assert!(url_scheme("http://a b/").is_err());
    }

    #[test]
    fn logs_show_no_secrets_of_a_url() {
        assert_eq!(
            url_for_logs("https://user:pw@siem.example:8443/in?token=x#f"),
            "https://siem.example:8443/in"
        );
        assert_eq!(
            url_for_logs("http://127.0.0.1:2801"),
            "http://127.0.0.1:2801"
        );
    }

    #[test]
    fn a_valid_output_has_no_problems() {
        let cfg = OutputConfig {
            http: vec![http("http://127.0.0.1:2801/")],
            ..OutputConfig::default()
        };
        assert_eq!(cfg.problems(), Vec::<String>::new());
    }

    #[test]
    fn every_problem_of_an_http_output_is_reported_with_its_key() {
        let mut h = http("ftp://x");
        h.name = "a/b".into();
        h.format = HttpFormat::Template;
        h.headers.insert("Bad Name".into(), "v".into());
        h.headers.insert("X-Ok".into(), "line\nbreak".into());
        h.bearer_token = Some("t".into());
        h.bearer_token_file = Some("/nonexistent-dw-token".into());
        h.ca_file = Some("/nonexistent-dw-ca.pem".into());
        h.minimum_priority = "loud".into();
        h.timeout = "soon".into();
        h.retry_backoff = "0s".into();
        h.spool_max_bytes = 10;
        let cfg = OutputConfig {
            http: vec![h],
            ..OutputConfig::default()
        };
        let p = cfg.problems();
        for key in [
            "output.http.name:",
            "output.http.url:",
            "output.http.template:",
            "output.http.headers: \"Bad Name\"",
            "output.http.headers: the value of \"X-Ok\"",
            "output.http.bearer_token:",
            "output.http.bearer_token_file:",
            "output.http.ca_file:",
            "output.http.minimum_priority:",
            "output.http.timeout:",
            "output.http.retry_backoff:",
            "output.http.spool_max_bytes:",
        ] {
            assert!(p.iter().any(|l| l.starts_with(key)), "{key} in {p:#?}");
        }
    }

    #[test]
    fn several_outputs_need_distinct_names_and_spools() {
        let a = http("http://127.0.0.1:1/");
        let b = http("http://127.0.0.1:2/");
        let cfg = OutputConfig {
            http: vec![a.clone(), b],
            ..OutputConfig::default()
        };
        let p = cfg.problems();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("output.http[1].name:"), "{p:?}");
        let mut c = a.clone();
        c.name = "other".into();
        let cfg = OutputConfig {
            http: vec![a, c],
            ..OutputConfig::default()
        };
        let p = cfg.problems();
        assert!(p[0].starts_with("output.http[1].spool_dir:"), "{p:?}");
    }

    #[test]
    fn defaults_and_accessors() {
        let h = HttpOutputConfig::new("siem", "https://x/");
        assert_eq!(h.minimum_priority(), Priority::Debug);
        assert_eq!(h.timeout(), Duration::from_secs(5));
        assert_eq!(
            h.backoff(),
            (Duration::from_secs(1), Duration::from_secs(60))
        );
        assert_eq!(
            h.spool_dir(),
            PathBuf::from("/var/lib/driftwatch/spool/siem")
        );
    }
}
