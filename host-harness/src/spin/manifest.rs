//! `spin.toml` (manifest version 2), as far as `serve-spin` runs it: the HTTP trigger's
//! routes, each component's source, outbound hosts, SQLite databases and variables, and the
//! application variables. Anything it cannot honour the way Spin would (a remote source, a
//! route with parameters, a wildcard host) is refused when the manifest is read, so the app
//! never runs differently here than under `spin up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A Spin application as its manifest describes it.
#[derive(Debug)]
pub struct Manifest {
    /// The public routes of the HTTP trigger, in manifest order (private ones are left out:
    /// nothing outside the app may call them).
    pub routes: Vec<Route>,
    pub components: BTreeMap<String, Component>,
    /// The application's variables, by name.
    pub variables: BTreeMap<String, Variable>,
}

/// A route of the HTTP trigger and the component it runs.
#[derive(Debug, Clone)]
pub struct Route {
    /// As written: an exact path, or a prefix ending in `/...`.
    pub path: String,
    pub component: String,
}

impl Route {
    /// Whether a request path is this route's; `None`, or how specific the match is (a
    /// longer route wins, an exact one over a prefix of the same length).
    fn matches(&self, path: &str) -> Option<usize> {
        match self.path.strip_suffix("/...") {
            Some(prefix) => {
                let inside = path == prefix
                    || path
                        .strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'));
                inside.then_some(2 * prefix.len())
            }
            None => (path == self.path).then_some(2 * self.path.len() + 1),
        }
    }
}

/// A component of the application.
#[derive(Debug)]
pub struct Component {
    /// The `.wasm` file, resolved against the manifest's folder.
    pub source: PathBuf,
    /// Origins (`scheme://host[:port]`) the component may send HTTP requests to.
    pub allowed_outbound_hosts: Vec<String>,
    /// SQLite databases the component may open.
    pub sqlite_databases: Vec<String>,
    /// The component's variables: name → template (`"{{ app_variable }}"` or a literal).
    pub variables: BTreeMap<String, String>,
}

/// An application variable (`[variables]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(default)]
    pub default: Option<String>,
    /// Must be given (flag or environment) for the app to start.
    #[serde(default)]
    pub required: bool,
    /// Its value is never printed.
    #[serde(default)]
    pub secret: bool,
}

#[derive(Deserialize)]
struct Raw {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    /// A path, or `{ private = true }` for a route reachable only from inside the app.
    route: toml::Value,
    component: String,
}

#[derive(Deserialize)]
struct RawComponent {
    /// A file, or `{ url, digest }`.
    source: toml::Value,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

impl Manifest {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the Spin manifest {}", path.display()))?;
        let raw: Raw = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid Spin manifest", path.display()))?;
        if raw.spin_manifest_version != 2 {
            bail!(
                "{}: only spin_manifest_version = 2 is supported",
                path.display()
            );
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, variable) in &raw.variables {
            check_name(name)?;
            if variable.required && variable.default.is_some() {
                bail!("variable `{name}` cannot be both required and have a default");
            }
        }
        let mut components = BTreeMap::new();
        for (id, component) in raw.component {
            let Some(file) = component.source.as_str() else {
                bail!("component `{id}`: serve-spin runs local `source` files only");
            };
            let source = base.join(file);
            for host in &component.allowed_outbound_hosts {
                if crate::http::origin(host).as_deref() != Some(host.as_str()) {
                    bail!(
                        "component `{id}`: allowed_outbound_hosts entry `{host}` is not an exact \
                         lowercase `scheme://host[:port]` (serve-spin takes no wildcards or templates)"
                    );
                }
            }
            for (name, template) in &component.variables {
                check_name(name)?;
                for reference in references(template)? {
                    if !raw.variables.contains_key(reference) {
                        bail!("component `{id}`: variable `{name}` uses undeclared `{reference}`");
                    }
                }
            }
            components.insert(
                id,
                Component {
                    source,
                    allowed_outbound_hosts: component.allowed_outbound_hosts,
                    sqlite_databases: component.sqlite_databases,
                    variables: component.variables,
                },
            );
        }
        let mut routes = Vec::new();
        for trigger in raw.trigger.http {
            if !components.contains_key(&trigger.component) {
                bail!(
                    "a route names the unknown component `{}`",
                    trigger.component
                );
            }
            let path = match trigger.route {
                toml::Value::String(path) => path,
                toml::Value::Table(options) if options.get("private") == Some(&true.into()) => {
                    continue;
                }
                other => bail!("route {other:?} is neither a path nor `{{ private = true }}`"),
            };
            let fixed = path.strip_suffix("/...").unwrap_or(&path);
            if !path.starts_with('/') || fixed.contains(['*', ':']) {
                bail!("route `{path}`: serve-spin takes exact paths and `/...` prefixes only");
            }
            routes.push(Route {
                path,
                component: trigger.component,
            });
        }
        Ok(Manifest {
            routes,
            components,
            variables: raw.variables,
        })
    }

    /// The component serving a request path, by the most specific matching route.
    pub fn route(&self, path: &str) -> Option<&str> {
        self.routes
            .iter()
            .filter_map(|route| route.matches(path).map(|rank| (rank, route)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, route)| route.component.as_str())
    }

    /// The values of the application variables, as Spin resolves them: a value given here
    /// (`--variable`), else `SPIN_VARIABLE_<NAME>` from the environment, else the default. A
    /// required variable without a value, or a value for an undeclared one, is an error.
    pub fn resolve_variables(
        &self,
        given: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        if let Some(unknown) = given.keys().find(|n| !self.variables.contains_key(*n)) {
            bail!("--variable {unknown}: the manifest declares no such variable");
        }
        let mut values = BTreeMap::new();
        for (name, variable) in &self.variables {
            let env = std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())).ok();
            match given
                .get(name)
                .cloned()
                .or(env)
                .or(variable.default.clone())
            {
                Some(value) => {
                    values.insert(name.clone(), value);
                }
                None if variable.required => bail!(
                    "variable `{name}` is required: pass --variable {name}=VALUE or set SPIN_VARIABLE_{}",
                    name.to_ascii_uppercase()
                ),
                None => {}
            }
        }
        Ok(values)
    }
}

/// Fills a component variable's template from the application variables; `None` when it
/// uses one that has no value.
pub(crate) fn render(template: &str, values: &BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}")? + start;
        out.push_str(&rest[..start]);
        out.push_str(values.get(rest[start + 2..end].trim())?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// The application variables a template refers to.
fn references(template: &str) -> anyhow::Result<Vec<&str>> {
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            bail!("`{template}` has an unclosed `{{{{`");
        };
        found.push(rest[start + 2..start + end].trim());
        rest = &rest[start + end + 2..];
    }
    Ok(found)
}

/// Spin's rule for variable names: lowercase letters, digits and `_`, starting with a letter.
pub(crate) fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if !valid_name(name) {
        bail!("`{name}` is not a valid Spin variable name (lowercase letters, digits, `_`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        Route {
            path: path.into(),
            component: path.into(),
        }
    }

    #[test]
    fn the_most_specific_route_wins() {
        let manifest = Manifest {
            routes: vec![route("/..."), route("/a/..."), route("/a/b")],
            components: BTreeMap::new(),
            variables: BTreeMap::new(),
        };
        assert_eq!(manifest.route("/a/b"), Some("/a/b"));
        assert_eq!(manifest.route("/a/c"), Some("/a/..."));
        assert_eq!(manifest.route("/a"), Some("/a/..."));
        assert_eq!(manifest.route("/ab"), Some("/..."));
    }

    #[test]
    fn templates_take_application_variables() {
        let values = BTreeMap::from([("token".to_owned(), "t0k".to_owned())]);
        assert_eq!(render("{{ token }}", &values).as_deref(), Some("t0k"));
        assert_eq!(render("a-{{token}}-b", &values).as_deref(), Some("a-t0k-b"));
        assert_eq!(render("{{ other }}", &values), None);
        assert_eq!(
            references("x {{ a }} {{b}}").expect("closed"),
            vec!["a", "b"]
        );
        assert!(references("{{ a").is_err());
    }
}
