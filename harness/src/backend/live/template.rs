//! Command templates: `python3 get_poetry.py {addrs}` with the placeholders
//! filled in for one case.

use indexmap::IndexMap;

/// Every placeholder a template may use, and what it becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "port",
        "the port the program must listen on (servers, proxy)",
    ),
    ("addr", "the first server address, 127.0.0.1:PORT (clients)"),
    (
        "addrs",
        "every server address, space-separated, in order (clients)",
    ),
    ("poem", "a file holding the poem to serve (servers)"),
    ("upstream", "the upstream server address (proxy)"),
    (
        "xform",
        "the transform server address (transforming client)",
    ),
    (
        "transform",
        "the transform name to request (transforming client)",
    ),
    (
        "timeout",
        "the idle timeout in seconds, scaled (same as {idle_timeout})",
    ),
    (
        "connect_timeout",
        "give up connecting after this many seconds, scaled (clients, proxy)",
    ),
    (
        "idle_timeout",
        "give up when no byte arrives for this many seconds, scaled (clients, proxy, transform server)",
    ),
    (
        "transform_timeout",
        "give up on the transform server's reply after this many seconds, scaled (transforming client)",
    ),
    (
        "num_bytes",
        "bytes per write (slow server); the poem's size when a case sets no pacing",
    ),
    (
        "delay",
        "seconds between writes, scaled (slow server); 0 when a case sets no pacing",
    ),
];

/// Quotes a value for `sh` when it is not plainly safe.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Checks that a template is not blank, names only known placeholders,
/// and that braces are balanced.
pub fn check(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("the command is empty".into());
    }
    expand(template, &IndexMap::new(), false).map(|_| ())
}

/// Fills in the placeholders from `values` (already shell-safe words, or
/// lists joined with spaces). A placeholder with no value is an error that
/// names it, unless `lenient`.
pub fn expand(
    template: &str,
    values: &IndexMap<&str, String>,
    strict: bool,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in command template '{template}'"))?;
        let name = &after[..close];
        if !PLACEHOLDERS.iter().any(|(p, _)| *p == name) {
            let known: Vec<_> = PLACEHOLDERS
                .iter()
                .map(|(p, _)| format!("{{{p}}}"))
                .collect();
            return Err(format!(
                "unknown placeholder '{{{name}}}' in command template (known: {})",
                known.join(" ")
            ));
        }
        match values.get(name) {
            Some(v) => out.push_str(v),
            None if strict => {
                return Err(format!(
                    "placeholder '{{{name}}}' has no value for this role"
                ))
            }
            None => {}
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_known_placeholders() {
        let mut v = IndexMap::new();
        v.insert("addrs", "127.0.0.1:1 127.0.0.1:2".to_string());
        let cmd = expand("python3 get_poetry.py {addrs}", &v, true).unwrap();
        assert_eq!(cmd, "python3 get_poetry.py 127.0.0.1:1 127.0.0.1:2");
    }

    #[test]
    fn unknown_placeholder_is_named() {
        let err = check("prog {prot}").unwrap_err();
        assert!(err.contains("'{prot}'"), "{err}");
    }

    #[test]
    fn missing_value_is_named_when_strict() {
        let err = expand("prog --port {port}", &IndexMap::new(), true).unwrap_err();
        assert!(err.contains("{port}"), "{err}");
    }

    #[test]
    fn blank_command_is_refused() {
        assert_eq!(check(" ").unwrap_err(), "the command is empty");
    }

    #[test]
    fn unclosed_brace_is_refused() {
        assert!(check("prog {port").is_err());
    }

    #[test]
    fn quoting_only_when_needed() {
        assert_eq!(shell_quote("/tmp/poem.txt"), "/tmp/poem.txt");
        assert_eq!(shell_quote("it's here"), "'it'\\''s here'");
    }
}
