//! The image side: the parts of the OCI image config the runtime configuration is compared
//! with, and the image `User` resolved with the image's `/etc/passwd`.

use super::{env_map, strs};
use serde_json::Value;
use std::collections::BTreeMap;

/// The parts of an OCI image config that the runtime config is compared with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
}

impl ImageConfig {
    /// From the image config blob (`{"config": {...}, "rootfs": …}`).
    pub fn parse(json: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        let v: Value = serde_json::from_slice(json)?;
        let c = &v["config"];
        let keys = |x: &Value| {
            x.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        Ok(ImageConfig {
            env: env_map(&strs(&c["Env"])),
            user: c["User"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            entrypoint: strs(&c["Entrypoint"]),
            cmd: strs(&c["Cmd"]),
            exposed_ports: keys(&c["ExposedPorts"]),
            volumes: keys(&c["Volumes"]),
        })
    }
}

/// Resolve an image `User` (`name`, `uid`, `name:group`, `uid:gid`) to a uid with the image's
/// `/etc/passwd`.
pub fn resolve_user(user: &str, passwd: Option<&str>) -> Option<u32> {
    let u = user.split(':').next().unwrap_or(user);
    if let Ok(n) = u.parse() {
        return Some(n);
    }
    passwd?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == u).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert_eq!(resolve_user("1000:1000", None), Some(1000));
        assert_eq!(
            resolve_user("app", Some("app:x:42:42::/:/bin/sh")),
            Some(42)
        );
        assert_eq!(resolve_user("nobody", Some("app:x:42:42::/:/bin/sh")), None);
    }
}
