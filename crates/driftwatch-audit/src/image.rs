//! Image references as the distribution spec (and Docker's normalisation) reads them:
//! `[domain/]path[:tag][@algorithm:hex]`; no domain means `docker.io`, and a single-component
//! path on `docker.io` means `library/<name>`.

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    /// The full name with its tag, without the digest (`docker.io/library/nginx:1.25`).
    pub fn name_with_tag(&self) -> String {
        match &self.tag {
            Some(t) => format!("{}/{}:{t}", self.domain, self.path),
            None => format!("{}/{}", self.domain, self.path),
        }
    }

    /// The repository: `domain/path` (`docker.io/library/nginx`).
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// No digest, and the tag is missing or `latest`: the reference names whatever is pushed
    /// next.
    pub fn mutable_tag(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref().is_none_or(|t| t == "latest")
    }
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or `-`+.
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn valid_tag(t: &str) -> bool {
    // [\w][\w.-]{0,127}
    (1..=128).contains(&t.len())
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let hex_ok = |len: usize| hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit());
    match alg {
        "sha256" => hex_ok(64) && !hex.bytes().any(|b| b.is_ascii_uppercase()),
        "sha512" => hex_ok(128) && !hex.bytes().any(|b| b.is_ascii_uppercase()),
        _ => {
            !alg.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
                && hex.len() >= 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b))
        }
    }
}

/// Parses `s`, or says what is wrong with it.
pub fn parse(s: &str) -> Result<ImageRef, String> {
    if s.is_empty() {
        return Err("empty image reference".into());
    }
    if s.len() > 4096 {
        return Err("image reference longer than 4096 bytes".into());
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => {
            if !valid_digest(d) {
                return Err(format!("invalid digest {d:?}"));
            }
            (r, Some(d.to_string()))
        }
        None => (s, None),
    };
    let (domain, path_tag) = match rest.split_once('/') {
        Some((first, more))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), more)
        }
        _ => ("docker.io".to_string(), rest),
    };
    if domain.is_empty()
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err(format!("invalid registry {domain:?}"));
    }
    let (path, tag) = match path_tag.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => {
            if !valid_tag(t) {
                return Err(format!("invalid tag {t:?}"));
            }
            (p, Some(t.to_string()))
        }
        _ => (path_tag, None),
    };
    if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
        return Err(format!(
            "invalid repository name component {bad:?} (lowercase letters, digits and separators)"
        ));
    }
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    Ok(ImageRef {
        domain,
        path,
        tag,
        digest,
    })
}

/// Parses a reference as a runtime reports it: `docker-pullable://` and `docker://` (the
/// kubelet's image ids) are stripped first.
pub fn parse_runtime(s: &str) -> Result<ImageRef, String> {
    let s = s
        .strip_prefix("docker-pullable://")
        .or_else(|| s.strip_prefix("docker://"))
        .unwrap_or(s);
    parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_as_docker_does() {
        let r = parse("nginx").expect("valid");
        assert_eq!(r.name_with_tag(), "docker.io/library/nginx");
        assert!(r.mutable_tag());
        let r = parse("bitnami/redis:7.2").expect("valid");
        assert_eq!(r.name_with_tag(), "docker.io/bitnami/redis:7.2");
        assert!(!r.mutable_tag());
        let r = parse("localhost:5000/a/b:latest").expect("valid");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str()),
            ("localhost:5000", "a/b")
        );
        assert!(r.mutable_tag());
        let r = parse(&format!("ghcr.io/o/i:latest@{D}")).expect("valid");
        assert_eq!(r.digest.as_deref(), Some(D));
        assert!(!r.mutable_tag());
        let r = parse(&format!("registry:5000/x@{D}")).expect("valid");
        assert_eq!(
            (r.domain.as_str(), r.tag.as_deref()),
            ("registry:5000", None)
        );
    }

    #[test]
    fn runtime_prefixes_are_stripped() {
        let r = parse_runtime(&format!("docker-pullable://nginx@{D}")).expect("valid");
        assert_eq!(r.repository(), "docker.io/library/nginx");
        assert_eq!(r.digest.as_deref(), Some(D));
        assert!(parse_runtime("docker-pullable://").is_err());
    }

    #[test]
    fn invalid_references_say_why() {
        assert!(parse("").is_err());
        assert!(parse("Nginx").expect_err("uppercase").contains("Nginx"));
        assert!(parse("nginx@sha256:abc")
            .expect_err("short")
            .contains("digest"));
        assert!(parse("nginx:").expect_err("empty tag").contains("tag"));
        assert!(parse("a//b").is_err());
    }
}
