//! `driftwatch containers`: the per-container drift summaries of a running agent, read from its
//! listener (`GET /containers`), as a table or as JSON. Exit codes: 0 ok, 1 no agent answered
//! (or it answered something else), 2 usage error.

use anyhow::{bail, Context as _};
use driftwatch_agent::config::{Config, DEFAULT_LISTEN};
use driftwatch_output::summary::{ContainerSummary, DriftKind};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// The largest answer read from the agent.
const MAX_BODY: u64 = 64 << 20;

#[derive(Debug, clap::Args)]
pub struct ContainersArgs {
    /// Address of the agent's listener: its `--listen`; an unspecified address (0.0.0.0 or ::)
    /// is reached on loopback [default: `agent.listen` of --config, else 127.0.0.1:9376].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The agent's configuration file: its `agent.listen` is the address to ask.
    #[arg(long, value_name = "FILE", conflicts_with = "listen")]
    config: Option<std::path::PathBuf>,
    /// Print the summaries as JSON (an array, as `GET /containers` returns it).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &ContainersArgs) -> anyhow::Result<ExitCode> {
    let listen = match (&args.listen, &args.config) {
        (Some(l), _) => l.clone(),
        (None, Some(path)) => match Config::from_file(path) {
            Ok(c) => c.agent.listen,
            Err(e) => {
                eprintln!("driftwatch: error: {}", one_line(&format!("{e:#}")));
                return Ok(ExitCode::from(2));
            }
        },
        (None, None) => DEFAULT_LISTEN.to_string(),
    };
    let Some(addr) = resolve(&listen) else {
        eprintln!(
            "driftwatch: error: {} is not an address such as {DEFAULT_LISTEN}",
            one_line(&format!("{listen:?}"))
        );
        return Ok(ExitCode::from(2));
    };
    let body = get(addr, "/containers")
        .with_context(|| format!("no driftwatch agent answers at {addr}"))?;
    let summaries: Vec<ContainerSummary> = serde_json::from_str(&body)
        .with_context(|| format!("the agent at {addr} answered something else than summaries"))?;
    let mut out = std::io::stdout().lock();
    let text = if args.json {
        serde_json::to_string_pretty(&summaries)? + "\n"
    } else {
        table(&summaries)
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn resolve(listen: &str) -> Option<SocketAddr> {
    let mut addr = listen.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Some(addr)
}

/// `GET http://ADDR/PATH`: the body of a 200 answer (at most [`MAX_BODY`] bytes).
pub(crate) fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut answer = agent
        .get(format!("http://{addr}{path}"))
        .header("Accept", "application/json")
        .call()?;
    let status = answer.status();
    if status != ureq::http::StatusCode::OK {
        bail!("HTTP answer {}", one_line(&status.to_string()));
    }
    Ok(answer
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()?)
}

/// One line of terminal text (the one escaper, `driftwatch-event`'s).
pub use driftwatch_event::text::escape_str as one_line;

/// At most `max` characters, the cut marked with `…`.
pub(crate) fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A 64-hex-digit id as its first 12 digits (as docker and nerdctl show them); other ids as
/// they are, escaped, at most 32 characters.
pub(crate) fn short_id(id: &str) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id.chars().take(12).collect()
    } else {
        fit(&one_line(id), 32)
    }
}

/// Last seen, to the second (`2026-11-29T22:30:01Z`).
fn short_time(t: Option<&str>) -> String {
    match t {
        Some(t) => match t.split_once('.') {
            Some((secs, _)) => format!("{secs}Z"),
            None => t.to_string(),
        },
        None => "-".to_string(),
    }
}

pub fn table(summaries: &[ContainerSummary]) -> String {
    let mut header: Vec<String> = ["ID", "NAME", "NAMESPACE", "IMAGE", "STATE"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    header.extend(DriftKind::ALL.iter().map(|k| k.as_str().to_uppercase()));
    header.extend(["LAST SEEN".to_string(), "TOP PATH".to_string()]);
    let mut rows = vec![header];
    for c in summaries {
        let mut row = vec![
            short_id(&c.id),
            fit(&one_line(&c.name), 32),
            fit(&one_line(&c.namespace), 16),
            fit(&one_line(&c.image), 48),
            c.state.as_str().to_string(),
        ];
        row.extend(DriftKind::ALL.iter().map(|k| c.counts.get(*k).to_string()));
        row.push(short_time(c.last_seen.as_deref()));
        row.push(c.top_paths.first().map_or("-".to_string(), |p| {
            format!("{} ({})", fit(&one_line(&p.path), 80), p.count)
        }));
        rows.push(row);
    }
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if summaries.is_empty() {
        out.push_str("(no containers)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on a broken fixture")]
    use super::*;
    use driftwatch_output::summary::{KindCounts, PathCount, State};

    #[test]
    fn table_escapes_hostile_strings() {
        let c = ContainerSummary {
            id: "abc\ndef".into(),
            name: "evil\u{1b}[2Jname\u{202e}".into(),
            namespace: "ns".into(),
            image: "img\r\n".into(),
            pod: None,
            state: State::Drifted,
            counts: KindCounts {
                binary: 2,
                ..KindCounts::default()
            },
            alerts: 2,
            first_seen: None,
            last_seen: Some("2026-11-29T22:30:01.123456789Z".into()),
            last_rule: None,
            top_paths: vec![PathCount {
                path: "/tmp/a\tb\u{fffd}\u{85}".into(),
                count: 2,
            }],
        };
        let t = table(&[c]);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(!t.contains('\u{1b}') && !t.contains('\r') && !t.contains('\u{202e}'));
        assert!(t.contains("abc\\ndef"), "{t}");
        assert!(t.contains("evil\\x1b[2Jname\\u{202e}"), "{t}");
        assert!(t.contains("/tmp/a\\tb\u{fffd}\\u{85} (2)"), "{t}");
        assert!(t.contains("2026-11-29T22:30:01Z"), "{t}");
        let header = t.lines().next().unwrap();
        assert!(header.starts_with("ID"), "{header}");
        assert!(header.contains("BINARY") && header.contains("TOP PATH"));
    }

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(
            resolve("0.0.0.0:9376"),
            Some("127.0.0.1:9376".parse().unwrap())
        );
        assert_eq!(resolve("[::]:1"), Some("[::1]:1".parse().unwrap()));
        assert_eq!(resolve("nonsense"), None);
    }
}
