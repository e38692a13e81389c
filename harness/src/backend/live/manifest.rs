//! Implementation manifests: the roles a program plays, their commands,
//! output contract and profile, in one TOML file.
//!
//! ```toml
//! name = "alice"
//! profile = "tutorial"            # strict (default) or tutorial
//! lacks = ["timeouts"]            # features the programs do not have
//! env = ["JAVA_OPTS"]             # extra variables the programs are given
//!
//! [client]
//! command = "python3 get_poetry.py {addrs}"
//! contract = "contains"           # exact (default) or contains
//!
//! [server]
//! command = "python3 poetry_server.py --port {port} --num-bytes {num_bytes} --delay {delay} {poem}"
//! ```
//!
//! Run under a grading policy (`run --policy`), a manifest can only narrow
//! what it claims: the policy's profile, time scale and case selection
//! hold, and a manifest asking for more (another profile, a lack the
//! policy does not allow, a longer start-up) is refused; see
//! [`crate::policy`].

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
    /// Variables passed from the harness's environment to this role's
    /// program (added to the manifest's `env`).
    #[serde(default)]
    pub env: Vec<String>,
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
    /// Profile to judge against (strict when it names none).
    #[serde(default)]
    pub profile: Option<Profile>,
    /// Features the programs lack.
    #[serde(default)]
    pub lacks: Vec<Feature>,
    /// Variables passed from the harness's environment to every program,
    /// beyond the allowlist (`process::ENV_ALLOWLIST`): names, not values.
    #[serde(default)]
    pub env: Vec<String>,
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
        for name in &m.env {
            check_env_name(name)
                .map_err(|e| format!("{file}{}: env: {e}", at(key_line(text, None, "env"))))?;
        }
        for role in Role::ALL {
            if let Some(rc) = m.role(role) {
                template::check(&rc.command)
                    .map_err(|e| format!("{file}: [{}] command: {e}", table(role)))?;
                for name in &rc.env {
                    check_env_name(name).map_err(|e| {
                        format!(
                            "{file}{}: [{}] env: {e}",
                            at(key_line(text, Some(table(role)), "env")),
                            table(role)
                        )
                    })?;
                }
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

    /// The profile the manifest asks for: strict when it names none.
    pub fn profile(&self) -> Profile {
        self.profile.unwrap_or_default()
    }

    /// The variables a role's program is given from the harness's
    /// environment: the manifest's `env`, then the role's.
    pub fn env_of(&self, role: Role) -> Vec<String> {
        let mut names = self.env.clone();
        for n in self.role(role).map(|rc| rc.env.as_slice()).unwrap_or(&[]) {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
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

/// Checks a variable name of an `env` list: not empty, no `=`, no NUL
/// (none of them can be passed to a program).
pub fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a variable name is empty".into())
    } else if name.contains('=') {
        Err(format!(
            "'{}' holds '=': list names, not NAME=value (the value comes from the harness's environment)",
            name.escape_debug()
        ))
    } else if name.contains('\0') {
        Err(format!("'{}' holds a NUL byte", name.escape_debug()))
    } else {
        Ok(())
    }
}

/// `:LINE` when there is a line, for `file:line: ...` messages.
pub fn at(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

/// The line (from 1) of `key` in a TOML file's `[table]`, or among its
/// top-level keys when `table` is `None`, for error messages.
pub fn key_line(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let header = table.map(|t| format!("[{t}]"));
    let mut inside = header.is_none();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = header.as_deref() == Some(line);
        } else if inside
            && line
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return Some(i + 1);
        }
    }
    None
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
        assert_eq!(m.client.as_ref().unwrap().contract, Contract::Exact);
        assert_eq!(m.profile(), Profile::Strict);
        assert_eq!(m.profile, None);
    }

    #[test]
    fn env_names_are_merged_per_role() {
        let m = Manifest::parse(
            "m.toml",
            "name = \"a\"\nenv = [\"A\", \"B\"]\n[client]\ncommand = \"p\"\nenv = [\"B\", \"C\"]\n[server]\ncommand = \"s\"\n",
        )
        .unwrap();
        assert_eq!(m.env_of(Role::Client), ["A", "B", "C"]);
        assert_eq!(m.env_of(Role::Server), ["A", "B"]);
    }

    #[test]
    fn bad_env_names_name_the_line() {
        for (text, want) in [
            (
                "name = \"a\"\nenv = [\"\"]\n[client]\ncommand = \"p\"\n",
                "m.toml:2: env: a variable name is empty",
            ),
            (
                "name = \"a\"\nenv = [\"A=1\"]\n[client]\ncommand = \"p\"\n",
                "m.toml:2: env: 'A=1' holds '='",
            ),
            (
                "name = \"a\"\n[client]\ncommand = \"p\"\nenv = [\"A\\u0000B\"]\n",
                "m.toml:4: [client] env: 'A\\0B' holds a NUL byte",
            ),
        ] {
            let err = Manifest::parse("m.toml", text).unwrap_err();
            assert!(err.starts_with(want), "{err}");
        }
    }

    #[test]
    fn key_line_finds_top_level_and_table_keys() {
        let text = "name = \"a\"\nenv = []\n[client]\nenv = []\n";
        assert_eq!(key_line(text, None, "env"), Some(2));
        assert_eq!(key_line(text, Some("client"), "env"), Some(4));
        assert_eq!(key_line(text, Some("server"), "env"), None);
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
