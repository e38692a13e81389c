//! Implementation manifests: the roles a program plays, their commands,
//! output contract and profile, in one TOML file.
//!
//! ```toml
//! name = "alice"
//! profile = "tutorial"            # strict (default) or tutorial
//! lacks = ["timeouts"]            # features the programs do not have
//!
//! [client]
//! command = "python3 get_poetry.py {addrs}"
//! contract = "contains"           # exact (default) or contains
//!
//! [server]
//! command = "python3 poetry_server.py --port {port} --num-bytes {num_bytes} --delay {delay} {poem}"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::contract::Contract;
use super::template;
use crate::case::{Feature, Role};
use crate::verdict::Profile;

/// How one role is run.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleCommand {
    /// The command template (see `template::PLACEHOLDERS`).
    pub command: String,
    /// Clients: how stdout holds the poems.
    #[serde(default)]
    pub contract: Contract,
    /// Seconds to wait for a server to announce it is ready.
    #[serde(default = "default_startup")]
    pub startup_timeout: f64,
    /// Features this role's program lacks (added to the manifest's `lacks`).
    #[serde(default)]
    pub lacks: Vec<Feature>,
}

fn default_startup() -> f64 {
    10.0
}

/// A manifest file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Shown in reports.
    pub name: String,
    /// Profile to judge against.
    #[serde(default)]
    pub profile: Profile,
    /// Features the programs lack.
    #[serde(default)]
    pub lacks: Vec<Feature>,
    /// Delays and timeouts of the cases are multiplied by this.
    #[serde(default)]
    pub time_scale: Option<f64>,
    /// Poetry server.
    #[serde(default)]
    pub server: Option<RoleCommand>,
    /// Poetry client.
    #[serde(default)]
    pub client: Option<RoleCommand>,
    /// Transformation server.
    #[serde(default)]
    pub transform_server: Option<RoleCommand>,
    /// Transforming client.
    #[serde(default)]
    pub transform_client: Option<RoleCommand>,
    /// Caching proxy.
    #[serde(default)]
    pub proxy: Option<RoleCommand>,
}

impl Manifest {
    /// Reads and checks a manifest; errors name the file, line and field.
    pub fn load(path: &Path) -> Result<Manifest, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read manifest '{}': {e}", path.display()))?;
        Manifest::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks manifest text.
    pub fn parse(file: &str, text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            format!(
                "{file}{}: {}",
                line.map(|l| format!(":{l}")).unwrap_or_default(),
                e.message().trim()
            )
        })?;
        for role in Role::ALL {
            if let Some(rc) = m.role(role) {
                template::check(&rc.command)
                    .map_err(|e| format!("{file}: [{}] command: {e}", table(role)))?;
            }
        }
        if Role::ALL.iter().all(|r| m.role(*r).is_none()) {
            return Err(format!("{file}: declares no role (add [client], [server], [transform_server], [transform_client] or [proxy])"));
        }
        if let Some(s) = m.time_scale {
            if !(s > 0.0 && s <= 10.0) {
                return Err(format!(
                    "{file}: time_scale {s} must be above 0 and at most 10"
                ));
            }
        }
        Ok(m)
    }

    /// The command of a role, if the manifest declares it.
    pub fn role(&self, role: Role) -> Option<&RoleCommand> {
        match role {
            Role::Server => self.server.as_ref(),
            Role::Client => self.client.as_ref(),
            Role::TransformServer => self.transform_server.as_ref(),
            Role::TransformClient => self.transform_client.as_ref(),
            Role::Proxy => self.proxy.as_ref(),
        }
    }
}

/// The manifest table name of a role.
pub fn table(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Client => "client",
        Role::TransformServer => "transform_server",
        Role::TransformClient => "transform_client",
        Role::Proxy => "proxy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_manifest_parses() {
        let m = Manifest::parse(
            "m.toml",
            "name = \"a\"\n[client]\ncommand = \"prog {addrs}\"\n",
        )
        .unwrap();
        assert_eq!(m.client.unwrap().contract, Contract::Exact);
        assert_eq!(m.profile, Profile::Strict);
    }

    #[test]
    fn unknown_field_names_the_line() {
        let err = Manifest::parse(
            "m.toml",
            "name = \"a\"\n[client]\ncommand = \"p\"\ncontrakt = \"exact\"\n",
        )
        .unwrap_err();
        assert!(err.starts_with("m.toml:4:"), "{err}");
    }

    #[test]
    fn bad_placeholder_names_the_role() {
        let err = Manifest::parse("m.toml", "name = \"a\"\n[server]\ncommand = \"p {prot}\"\n")
            .unwrap_err();
        assert!(
            err.contains("[server] command") && err.contains("{prot}"),
            "{err}"
        );
    }

    #[test]
    fn no_role_is_an_error() {
        assert!(Manifest::parse("m.toml", "name = \"a\"\n")
            .unwrap_err()
            .contains("declares no role"));
    }
}
